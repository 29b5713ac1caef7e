"""User administration (pages /users and the JSON API /api/users), for administrators only, over the shared web
repository (tests/web/conftest.py). Each test adds its own users, so the order of tests does not matter."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

NEW_PASSWORD = "mot-cum-tu-rat-dai-2"
PAGE_ROUTES = [("get", "/users"), ("post", "/users"), ("get", "/users/reader"), ("post", "/users/reader/password"),
               ("post", "/users/reader/disable"), ("post", "/users/reader/enable"), ("post", "/users/reader/grant"),
               ("post", "/users/reader/revoke"), ("post", "/users/reader/token"),
               ("post", "/users/reader/tokens/revoke")]


@pytest.fixture
def other_client(web_app):
    """A second browser: another person's session at the same time."""
    with TestClient(web_app, follow_redirects=False) as c:
        yield c


def _page_csrf(client, csrf_of, path="/users"):
    page = client.get(path)
    assert page.status_code == 200, page.text
    return page, csrf_of(page.text)


def _add(client, csrf_of, name, role="reader", password=NEW_PASSWORD, fonds="", full_name="Nguyễn Văn Thử"):
    _, csrf = _page_csrf(client, csrf_of)
    return client.post("/users", data={"name": name, "full_name": full_name, "role": role, "fonds": fonds,
                                       "password": password, "csrf": csrf})


def _post(client, csrf_of, name, action, **data):
    _, csrf = _page_csrf(client, csrf_of, f"/users/{name}")
    return client.post(f"/users/{name}/{action}", data={**data, "csrf": csrf})


def _row(page: str, name: str) -> str:
    m = re.search(rf'<tr data-user="{re.escape(name)}".*?</tr>', page, re.DOTALL)
    assert m, f"no row for {name}"
    return m.group(0)


@pytest.mark.parametrize("role", ["archivist", "auditor", "reader"])
def test_other_roles_get_403_and_no_nav_link(client, signed_in, csrf_of, web_world, role):
    signed_in(client, role)
    home = client.get("/")
    assert home.status_code == 200
    assert 'href="/users"' not in home.text
    csrf = csrf_of(home.text)
    before = web_world.repo.users().list()
    for method, path in PAGE_ROUTES:
        resp = getattr(client, method)(path, **({"data": {"csrf": csrf, "name": "x-intruder", "role": "admin",
                                                          "password": NEW_PASSWORD, "fonds": "F"}}
                                                if method == "post" else {}))
        assert resp.status_code == 403, (path, resp.status_code)
    headers = {"X-CSRF-Token": csrf}
    assert client.get("/api/users").status_code == 403
    assert client.post("/api/users", json={"name": "x-intruder", "role": "admin", "password": NEW_PASSWORD},
                       headers=headers).status_code == 403
    assert client.post("/api/users/reader/disable", headers=headers).status_code == 403
    token = {"Authorization": f"Bearer {web_world.tokens[role]}"}
    assert client.get("/api/users", headers=token).status_code == 403
    assert web_world.repo.users().list() == before
    assert web_world.repo.users().get("reader").disabled is False


def test_signed_out_redirects_and_api_401(client):
    resp = client.get("/users")
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login")
    assert client.get("/api/users").status_code == 401


def test_admin_sees_users_and_nav(client, signed_in):
    signed_in(client, "admin")
    page = client.get("/users")
    assert page.status_code == 200
    assert 'href="/users"' in page.text and "Người dùng" in page.text
    row = _row(page.text, "reader")
    assert "Người đọc" in row and "hoạt động" in row and "Người dùng reader" in row
    assert 'id="add-user"' in page.text and 'id="new-name"' in page.text and 'id="new-password"' in page.text
    assert "Quản trị" in _row(page.text, "admin")


def test_admin_adds_reader_who_can_sign_in(client, other_client, signed_in, csrf_of, web_world):
    signed_in(client, "admin")
    resp = _add(client, csrf_of, "nguyenthu", fonds=f"{web_world.fonds}, F-KHAC")
    assert resp.status_code == 303, resp.text
    page = client.get(resp.headers["location"])
    row = _row(page.text, "nguyenthu")
    assert "Nguyễn Văn Thử" in row and "Người đọc" in row and web_world.fonds in row and "F-KHAC" in row
    assert web_world.repo.users().get("nguyenthu").grants == frozenset({web_world.fonds, "F-KHAC"})
    signed_in(other_client, "nguyenthu", NEW_PASSWORD)
    who = other_client.get("/")
    assert who.status_code == 200 and "Nguyễn Văn Thử" in who.text and "/login" not in who.headers.get("location", "")


@pytest.mark.parametrize("name,password,fragment", [
    ("ngan", "ngan123", "Mật khẩu quá ngắn"),
    ("Tên Có Dấu", NEW_PASSWORD, "Tên đăng nhập không hợp lệ"),
    ("reader", NEW_PASSWORD, "Người dùng đã tồn tại"),
])
def test_add_errors_are_shown_and_nothing_is_created(client, signed_in, csrf_of, web_world, name, password, fragment):
    signed_in(client, "admin")
    before = web_world.repo.users().list()
    resp = _add(client, csrf_of, name, password=password, full_name="Trần Thị Lỗi")
    assert resp.status_code == 400
    assert fragment in html.unescape(resp.text)
    assert 'id="add-error"' in resp.text and 'id="add-user"' in resp.text
    assert web_world.repo.users().list() == before
    assert web_world.repo.users().get(name) is None or web_world.repo.users().get(name).full_name != "Trần Thị Lỗi"


def test_disable_ends_the_open_session_and_enable_restores_sign_in(client, other_client, signed_in, csrf_of):
    signed_in(client, "admin")
    assert _add(client, csrf_of, "khoa-thu", role="archivist").status_code == 303
    signed_in(other_client, "khoa-thu", NEW_PASSWORD)
    assert other_client.get("/browse").status_code == 200
    resp = _post(client, csrf_of, "khoa-thu", "disable")
    assert resp.status_code == 303
    assert 'data-state="disabled"' in client.get("/users/khoa-thu").text
    after = other_client.get("/browse")
    assert after.status_code == 303 and after.headers["location"].startswith("/login")
    login = other_client.get("/login")
    refused = other_client.post("/login", data={"username": "khoa-thu", "password": NEW_PASSWORD,
                                                "csrf": csrf_of(login.text), "next": "/"})
    assert refused.status_code == 401
    assert _post(client, csrf_of, "khoa-thu", "enable").status_code == 303
    signed_in(other_client, "khoa-thu", NEW_PASSWORD)
    assert other_client.get("/browse").status_code == 200


def test_admin_cannot_disable_themself(client, signed_in, csrf_of, web_world):
    signed_in(client, "admin")
    page, csrf = _page_csrf(client, csrf_of, "/users/admin")
    assert 'id="disable"' not in page.text
    resp = client.post("/users/admin/disable", data={"csrf": csrf})
    assert resp.status_code == 400
    assert "không thể tự khóa" in html.unescape(resp.text)
    assert web_world.repo.users().get("admin").disabled is False
    assert client.get("/users").status_code == 200  # still signed in
    api = client.post("/api/users/admin/disable", headers={"X-CSRF-Token": csrf})
    assert api.status_code == 400 and "disable your own" in api.json()["error"]
    assert web_world.repo.users().get("admin").disabled is False


def test_grant_and_revoke_limit_what_the_reader_finds(client, other_client, signed_in, csrf_of, web_world):
    signed_in(client, "admin")
    assert _add(client, csrf_of, "doc-gia").status_code == 303
    signed_in(other_client, "doc-gia", NEW_PASSWORD)
    secret = set(web_world.docs[2])  # the Mật dossier's documents

    def found() -> set[str]:  # "ve" matches every document of the batch
        page = other_client.get("/search", params={"q": "ve"})
        assert page.status_code == 200
        return set(re.findall(r'data-doc="([^"]+)"', page.text))

    open_docs = found()
    assert open_docs and not open_docs & secret  # without a grant: every fonds, no secret records
    resp = _post(client, csrf_of, "doc-gia", "grant", fonds=web_world.fonds)
    assert resp.status_code == 303
    page = client.get("/users/doc-gia")
    assert f'data-fonds="{web_world.fonds}"' in page.text
    assert web_world.repo.users().get("doc-gia").grants == frozenset({web_world.fonds})
    assert secret <= found()  # granted the fonds: its secret records too
    assert _post(client, csrf_of, "doc-gia", "revoke", fonds=web_world.fonds).status_code == 303
    assert _post(client, csrf_of, "doc-gia", "grant", fonds="F-KHAC").status_code == 303
    assert web_world.repo.users().get("doc-gia").grants == frozenset({"F-KHAC"})
    assert found() == set()  # limited to another fonds: nothing of this one
    assert _post(client, csrf_of, "doc-gia", "grant", fonds=" ").status_code == 400  # no fonds named


def test_password_reset_and_tokens(client, other_client, signed_in, csrf_of, web_world):
    signed_in(client, "admin")
    assert _add(client, csrf_of, "doi-mat-khau").status_code == 303
    short = _post(client, csrf_of, "doi-mat-khau", "password", password="ngan")
    assert short.status_code == 400 and "Mật khẩu quá ngắn" in html.unescape(short.text)
    other = "mat-khau-moi-hoan-toan"
    assert _post(client, csrf_of, "doi-mat-khau", "password", password=other).status_code == 303
    assert web_world.repo.users().authenticate("doi-mat-khau", NEW_PASSWORD) is None
    signed_in(other_client, "doi-mat-khau", other)

    made = _post(client, csrf_of, "doi-mat-khau", "token", label="báo cáo")
    assert made.status_code == 200 and "một lần" in made.text
    token = re.search(r'<code id="new-token">([^<]+)</code>', made.text).group(1)
    assert web_world.repo.users().token_user(token).name == "doi-mat-khau"
    assert token not in client.get("/users/doi-mat-khau").text  # shown once only
    assert other_client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()["name"] == "doi-mat-khau"
    assert _post(client, csrf_of, "doi-mat-khau", "tokens/revoke").status_code == 303
    assert web_world.repo.users().token_user(token) is None


def test_changes_are_events_naming_the_admin(client, signed_in, csrf_of, web_world):
    from preserve.access.events import user_agent

    signed_in(client, "admin")
    assert _add(client, csrf_of, "su-kien").status_code == 303
    assert _post(client, csrf_of, "su-kien", "disable").status_code == 303
    events = [e for e in web_world.repo.events() if e.get("type") == "user administration"
              and "su-kien" in (e.get("detail") or "")]
    assert len(events) >= 2, events
    for e in events:
        agents = {(a["id"], a["role"]) for a in e["agents"]}
        assert (user_agent("admin"), "implementer") in agents, e
        assert (user_agent("su-kien"), "subject") in agents, e
    assert any("disabled" in e["detail"] for e in events)


def test_missing_csrf_is_refused(client, signed_in, csrf_of, web_world):
    signed_in(client, "admin")
    for path, data in [("/users", {"name": "khong-csrf", "role": "reader", "password": NEW_PASSWORD}),
                       ("/users/reader/disable", {}), ("/users/reader/grant", {"fonds": "F-X"}),
                       ("/users/reader/token", {}), ("/users/reader/password", {"password": NEW_PASSWORD})]:
        assert client.post(path, data=data).status_code == 403, path
        assert client.post(path, data={**data, "csrf": "sai"}).status_code == 403, path
    assert client.post("/api/users", json={"name": "khong-csrf", "role": "reader"}).status_code == 403
    assert client.post("/api/users/reader/disable").status_code == 403
    assert web_world.repo.users().get("khong-csrf") is None
    assert web_world.repo.users().get("reader").disabled is False
    assert web_world.repo.users().get("reader").grants == frozenset()


def test_api_users(client, signed_in, web_world):
    token = {"Authorization": f"Bearer {web_world.tokens['admin']}"}
    listed = client.get("/api/users", headers=token)
    assert listed.status_code == 200
    assert {"admin", "reader"} <= {u["name"] for u in listed.json()["users"]}
    made = client.post("/api/users", headers=token, json={"name": "api-user", "role": "auditor",
                                                          "full_name": "Lê Văn API", "fonds": [web_world.fonds],
                                                          "password": NEW_PASSWORD})
    assert made.status_code == 201, made.text
    assert made.json()["role"] == "auditor" and made.json()["fonds"] == [web_world.fonds]
    dup = client.post("/api/users", headers=token, json={"name": "api-user", "role": "reader"})
    assert dup.status_code == 400 and "đã tồn tại" in dup.json()["error"]
    short = client.post("/api/users", headers=token, json={"name": "api-ngan", "role": "reader", "password": "x"})
    assert short.status_code == 400 and web_world.repo.users().get("api-ngan") is None
    assert client.post("/api/users/api-user/disable", headers=token).json()["disabled"] is True
    assert client.post("/api/users/api-user/enable", headers=token).json()["disabled"] is False
    assert client.post("/api/users/khong-co/disable", headers=token).status_code == 404
    # with the session, the CSRF header is needed and enough
    signed_in(client, "admin")
    csrf = client.get("/api/me").json()["csrf"]
    assert client.post("/api/users/api-user/disable", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert web_world.repo.users().get("api-user").disabled is True
    paths = client.get("/api/openapi.json").json()["paths"]
    assert "/api/users" in paths and "/users" not in paths
