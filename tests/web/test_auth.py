"""Sign-in and sessions on a shared network: rate-limited sign-in, signed HTTP-only SameSite cookies, CSRF on
the sign-in form too, no open redirect, disabled accounts and revoked tokens cut off at once."""

from __future__ import annotations

import time

from preserve.web.security import SignInLimiter

PASSWORD = "mat-khau-du-dai-1"


def _login(client, name, password, csrf_of, next_="/"):
    page = client.get("/login")
    return client.post("/login", data={"username": name, "password": password, "csrf": csrf_of(page.text),
                                       "next": next_})


def test_the_session_cookie_is_signed_http_only_and_same_site(client, csrf_of):
    resp = _login(client, "reader", PASSWORD, csrf_of)
    assert resp.status_code == 303
    cookie = next(v for k, v in resp.headers.multi_items() if k == "set-cookie" and "preserve_session=" in v)
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    value = cookie.split("preserve_session=", 1)[1].split(";", 1)[0]
    assert client.get("/api/me").json()["name"] == "reader"
    client.cookies.set("preserve_session", value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
    assert client.get("/api/me").status_code == 401, "a tampered cookie is not a session"


def test_the_sign_in_form_needs_its_csrf_token(client):
    resp = client.post("/login", data={"username": "reader", "password": PASSWORD, "csrf": "x", "next": "/"})
    assert resp.status_code == 403
    assert client.get("/api/me").status_code == 401


def test_no_open_redirect_after_sign_in(client, csrf_of):
    for target in ("//evil.example/", "https://evil.example/", "javascript:alert(1)", "/\\evil.example/",
                   "/\tevil"):
        resp = _login(client, "reader", PASSWORD, csrf_of, target)
        assert resp.status_code == 303 and resp.headers["location"] == "/"


def test_failed_sign_ins_are_limited(web_app, client, csrf_of):
    old = web_app.state.limiter
    web_app.state.limiter = SignInLimiter(limit=3, window=1.5)
    try:
        for _ in range(3):
            resp = _login(client, "archivist", "sai-mat-khau-roi", csrf_of)
            assert resp.status_code == 401 and "Sai tên đăng nhập" in resp.text
        resp = _login(client, "archivist", PASSWORD, csrf_of)  # even the right password waits now
        assert resp.status_code == 429 and "thử lại sau" in resp.text
        assert client.get("/api/me").status_code == 401
        time.sleep(1.6)
        assert _login(client, "archivist", PASSWORD, csrf_of).status_code == 303
        assert client.get("/api/me").json()["name"] == "archivist"
    finally:
        web_app.state.limiter = old


def test_one_answer_for_unknown_users_wrong_passwords_and_disabled_accounts(web_app, client, csrf_of):
    users = web_app.state.repo.users()
    users.add("tamkhoa", "reader", password=PASSWORD)
    users.set_disabled("tamkhoa", True)
    texts = {_login(client, n, p, csrf_of).text.count("Sai tên đăng nhập")
             for n, p in (("khongco", PASSWORD), ("reader", "sai-mat-khau-roi"), ("tamkhoa", PASSWORD))}
    assert texts == {1}


def test_a_disabled_account_loses_its_session_and_a_revoked_token_its_access(web_app, client, csrf_of):
    users = web_app.state.repo.users()
    users.add("sebikhoa", "reader", password=PASSWORD)
    assert _login(client, "sebikhoa", PASSWORD, csrf_of).status_code == 303
    assert client.get("/").status_code == 200
    users.set_disabled("sebikhoa", True)
    resp = client.get("/")
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login")
    token = users.create_token("auditor", "test")
    h = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/aips", headers=h).status_code == 200
    assert users.revoke_tokens("auditor") >= 1
    assert client.get("/api/aips", headers=h).status_code == 401


def test_the_api_is_described_and_closed_without_credentials(client):
    spec = client.get("/api/openapi.json").json()
    assert "/api/aips" in spec["paths"] and "/api/search" in spec["paths"]
    assert client.get("/api/aips").status_code == 401
    assert client.get("/api/aips").json() == {"error": "sign in"}


def test_preserve_users_token_makes_a_token_the_api_accepts(web_world, client):
    import json
    import subprocess
    import sys
    from pathlib import Path

    preserve = str(Path(sys.executable).parent / "preserve")
    p = subprocess.run([preserve, "users", "token", "auditor", "--label", "báo cáo", "--repo", str(web_world.root),
                        "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    token = json.loads(p.stdout)["token"]
    assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()["role"] == "auditor"
    p = subprocess.run([preserve, "users", "token", "nobody", "--repo", str(web_world.root)], capture_output=True,
                       text=True)
    assert p.returncode == 2 and "nobody" in p.stderr


def test_pages_carry_security_headers(client):
    resp = client.get("/login")
    csp = resp.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert client.get("/static/upload.js").status_code == 200
    assert resp.headers["x-frame-options"] == "DENY" and resp.headers["x-content-type-options"] == "nosniff"
    assert client.get("/api/aips").headers["cache-control"] == "no-store"
