"""Alert channels (mail, webhook), their preserve.toml settings, and the message each one sends.

    [alerts]
    min_severity = "warning"    # info | warning | error | critical
    remind_every = "24h"        # 45s 90m 12h 30d 2w; "off" = never remind
    [alerts.mail]               # host, from and to required
    host = "127.0.0.1"
    port = 25                   # default 25 (587 with starttls)
    starttls = false
    user = "..."                # login only when user and password_file are both given
    password_file = "keys/smtp-password"   # relative to the repository, or absolute
    from = "preserve@luutru.local"
    to = ["phong.luutru@luutru.local"]     # or a single string
    min_severity = "error"      # default: the [alerts] one
    timeout = 10                # seconds
    [alerts.webhook]            # also accepted: webhook = "http://..." (a bare URL)
    url = "http://127.0.0.1:8099/hook"
    min_severity = "warning"
    timeout = 10

Repositories made before these existed have `email = []` and `webhook = ""`: both mean "not configured".

Webhook body (stable; new keys may be added, none removed or renamed): a JSON object
    {"source": "preserve", "version": 1, "kind": "alert" | "reminder" | "resolved" | "test",
     "repository": organisation, "root": repository folder, "code", "severity", "problem": the code of the problem
     (= code, except for "resolved": the code resolved; null for "test"), "tier", "aip", "where",
     "message_vi", "message_en", "hint_vi", "hint_en" (null when the code has no hint), "params", "at",
     "first_seen", "last_seen", "count"}
POSTed with Content-Type: application/json; charset=utf-8. Any answer but 2xx (redirects included) is a failure.
"""

from __future__ import annotations

import http.client
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, Callable, Protocol

from ..findings import SEVERITY_RANK, Finding

DEFAULT_MIN_SEVERITY = "warning"
DEFAULT_REMIND = "24h"
DEFAULT_TIMEOUT = 10.0
SEVERITY_LABEL = {"critical": ("NGHIÊM TRỌNG", "CRITICAL"), "error": ("LỖI", "ERROR"),
                  "warning": ("CẢNH BÁO", "WARNING"), "info": ("THÔNG TIN", "INFO")}
KIND_LABEL = {"alert": ("cảnh báo", "alert"), "reminder": ("nhắc lại", "reminder"),
              "resolved": ("đã khắc phục", "resolved"), "test": ("thử", "test")}


class ChannelError(Exception):
    """A message that was not delivered: the error, and what to check, in both languages."""

    def __init__(self, error: str, check_vi: str, check_en: str):
        super().__init__(error)
        self.error, self.check_vi, self.check_en = error, check_vi, check_en


class Channel(Protocol):
    name: str
    min_severity: str

    @property
    def target(self) -> str: ...

    def send(self, payload: dict[str, Any]) -> None: ...


def meets(severity: str, minimum: str) -> bool:
    return SEVERITY_RANK[severity] >= SEVERITY_RANK[minimum]


# ---------------------------------------------------------------------- settings
def parse_min(table: dict[str, Any], where: str, default: str, errors: list[str]) -> str:
    value = table.get("min_severity", default)
    if value not in SEVERITY_RANK:
        errors.append(f"{where} min_severity = {value!r}: use one of {', '.join(SEVERITY_RANK)} "
                      f"(using {default!r})")
        return default
    return value


def parse_remind(table: dict[str, Any], errors: list[str]) -> timedelta | None:
    """None = never remind."""
    from ..policy import parse_duration

    value = table.get("remind_every", DEFAULT_REMIND)
    if value in ("off", "never", "", "0"):
        return None
    try:
        return parse_duration(value)
    except ValueError as e:
        errors.append(f"[alerts] remind_every = {value!r}: {e} (using {DEFAULT_REMIND})")
        return parse_duration(DEFAULT_REMIND)


def _timeout(table: dict[str, Any]) -> float:
    value = table.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"timeout = {value!r}: a number of seconds above 0")
    return float(value)


def _text(table: dict[str, Any], key: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} is missing (a non-empty string)")
    return value.strip()


def build_channels(table: dict[str, Any], base_min: str, path: Callable[[str], Path],
                   errors: list[str]) -> list[Channel]:
    """The configured channels. One that is set up wrongly becomes a BrokenChannel: it fails at each delivery
    with the configuration error, so the problem shows in the alert log instead of stopping the caller. A bad
    per-channel min_severity only falls back to the [alerts] one (and is added to `errors`)."""
    channels: list[Channel] = []
    mail, hook = table.get("mail"), table.get("webhook")
    if isinstance(hook, str):
        hook = {"url": hook} if hook.strip() else None
    for name, spec, build in (("mail", mail, _mail), ("webhook", hook, _webhook)):
        if not spec:
            continue
        if not isinstance(spec, dict):
            channels.append(BrokenChannel(name, base_min, f"[alerts.{name}] must be a table"))
            continue
        minimum = parse_min(spec, f"[alerts.{name}]", base_min, errors)
        try:
            channels.append(build(spec, minimum, path, table))
        except ValueError as e:
            channels.append(BrokenChannel(name, minimum, f"[alerts.{name}] {e}"))
    return channels


def _mail(spec: dict[str, Any], minimum: str, path: Callable[[str], Path], table: dict[str, Any]) -> "MailChannel":
    to = spec.get("to", table.get("email") or [])
    to = [to] if isinstance(to, str) else to
    if not isinstance(to, list) or not to or not all(isinstance(x, str) and x.strip() for x in to):
        raise ValueError("to is missing (an address or a list of addresses)")
    port = spec.get("port", 587 if spec.get("starttls") else 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port = {port!r}: a number from 1 to 65535")
    user, pw = spec.get("user") or None, spec.get("password_file") or None
    if bool(user) != bool(pw):
        raise ValueError("user and password_file go together: give both, or neither")
    return MailChannel(host=_text(spec, "host"), port=port, sender=_text(spec, "from"), to=[x.strip() for x in to],
                       min_severity=minimum, starttls=bool(spec.get("starttls", False)), user=user,
                       password_file=path(pw) if pw else None, timeout=_timeout(spec))


def _webhook(spec: dict[str, Any], minimum: str, _path: Callable[[str], Path],
             _table: dict[str, Any]) -> "WebhookChannel":
    url = _text(spec, "url")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url = {url!r}: an http:// or https:// address")
    return WebhookChannel(url=url, min_severity=minimum, timeout=_timeout(spec))


# ---------------------------------------------------------------------- the message
def hint_text(f: Finding, lang: str) -> str | None:
    return f.hint(lang)


def payload(kind: str, f: Finding, *, tier: str | None, aip: str | None, at: str,
            problem: dict[str, Any] | None, problem_code: str | None, repository: str,
            root: str) -> dict[str, Any]:
    """The webhook body (the shape in this module's docstring); mail is rendered from it too."""
    p = problem or {}
    return {"source": "preserve", "version": 1, "kind": kind, "repository": repository, "root": root,
            "code": f.code, "severity": f.severity, "problem": problem_code, "tier": tier, "aip": aip,
            "where": f.where, "message_vi": f.message_vi, "message_en": f.message_en, "hint_vi": hint_text(f, "vi"),
            "hint_en": hint_text(f, "en"), "params": f.to_dict()["params"], "at": at,
            "first_seen": p.get("first_seen", at), "last_seen": p.get("last_seen", at), "count": p.get("count", 1)}


def _short(text: str, limit: int = 140) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def subject(d: dict[str, Any]) -> str:
    """Vietnamese first: "[preserve] LỖI / ERROR E-REPL-FAILED: …"."""
    vi, en = SEVERITY_LABEL[d["severity"]]
    label, code, text = f"{vi} / {en}", d["code"], d["message_vi"]
    if d["kind"] == "reminder":
        label = f"NHẮC LẠI / REMINDER {label}"
    elif d["kind"] == "resolved":
        label, code = "ĐÃ KHẮC PHỤC / RESOLVED", d["problem"]
        text = (d["params"].get("message") or {}).get("vi", text)
    elif d["kind"] == "test":
        label = "THỬ / TEST"
    return f"[preserve] {label} {code}: {_short(text)}"


def body(d: dict[str, Any]) -> str:
    kind_vi, kind_en = KIND_LABEL[d["kind"]]
    sev_vi, sev_en = SEVERITY_LABEL[d["severity"]]
    lines = [d["message_vi"], d["message_en"], ""]
    if d["hint_vi"] or d["hint_en"]:
        lines += ["Cần làm / What to do:", f"  {d['hint_vi']}", f"  {d['hint_en']}", ""]
    lines += [f"Mã / Code: {d['code']} ({sev_vi.lower()} / {sev_en.lower()})",
              f"Loại tin / Kind: {kind_vi} / {kind_en}",
              f"Tầng lưu trữ / Tier: {d['tier'] or '-'}",
              f"AIP: {d['aip'] or '-'}",
              f"Vị trí / Where: {d['where'] or '-'}",
              f"Thời điểm / Time: {d['at']}",
              f"Lần đầu / First seen: {d['first_seen']}   Số lần / Count: {d['count']}",
              f"Kho lưu trữ / Repository: {d['repository']}",
              f"Thư mục kho / Root: {d['root']}", "",
              "-- ", "preserve: thư tự động, xin đừng trả lời / automatic message, please do not reply"]
    return "\n".join(lines) + "\n"


def mail_message(d: dict[str, Any], sender: str, to: list[str]) -> EmailMessage:
    """UTF-8 done by email.message: RFC 2047 subject, quoted-printable body (7-bit safe on any server)."""
    msg = EmailMessage()
    msg["Subject"] = subject(d)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(datetime.fromisoformat(d["at"]))  # the repository's timezone
    msg["Message-ID"] = make_msgid("preserve", domain=sender.rpartition("@")[2].strip("> ") or "preserve.local")
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Preserve-Kind"] = d["kind"]
    msg["X-Preserve-Code"] = d["problem"] or d["code"]
    msg.set_content(body(d), charset="utf-8", cte="quoted-printable")
    return msg


# ---------------------------------------------------------------------- channels
@dataclass
class MailChannel:
    host: str
    port: int
    sender: str
    to: list[str]
    min_severity: str = "error"
    starttls: bool = False
    user: str | None = None
    password_file: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    name: str = field(default="mail", init=False)

    @property
    def target(self) -> str:
        return f"smtp://{self.host}:{self.port} → {', '.join(self.to)}"

    def send(self, payload: dict[str, Any]) -> None:
        msg = mail_message(payload, self.sender, self.to)
        vi_srv, en_srv = f"máy chủ thư {self.host}:{self.port}", f"the SMTP server {self.host}:{self.port}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user and self.password_file:
                    smtp.login(self.user, self._password())
                smtp.send_message(msg)
        except smtplib.SMTPNotSupportedError as e:
            raise ChannelError(str(e), f"port và starttls trong [alerts.mail]: {vi_srv} không hỗ trợ STARTTLS "
                               "hoặc lệnh được yêu cầu", f"port and starttls in [alerts.mail]: {en_srv} does "
                               "not offer STARTTLS or what was asked") from None
        except smtplib.SMTPAuthenticationError as e:
            raise ChannelError(f"login refused: {e.smtp_code} {e.smtp_error!r}",
                               "user và password_file trong [alerts.mail]",
                               "user and password_file in [alerts.mail]") from None
        except smtplib.SMTPRecipientsRefused as e:
            raise ChannelError(f"recipients refused: {', '.join(e.recipients)}",
                               "các địa chỉ 'to' trong [alerts.mail]", "the 'to' addresses in [alerts.mail]") from None
        except ssl.SSLError as e:
            raise ChannelError(f"TLS: {e}", f"chứng thư TLS của {vi_srv} và cài đặt starttls",
                               f"the TLS certificate of {en_srv} and the starttls setting") from None
        except (smtplib.SMTPException, OSError) as e:  # refused, unreachable, timeout, dropped connection
            raise ChannelError(f"{type(e).__name__}: {e}",
                               f"{vi_srv} có đang chạy và truy cập được không (host, port trong [alerts.mail], "
                               "tường lửa)",
                               f"that {en_srv} is running and reachable (host and port in [alerts.mail], "
                               "firewall)") from None

    def _password(self) -> str:
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeError) as e:
            raise ChannelError(f"cannot read password_file {self.password_file}: {e}",
                               "password_file trong [alerts.mail] (đường dẫn, quyền đọc)",
                               "password_file in [alerts.mail] (path, permission to read)") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would arrive as a GET without its body: treat a redirect as the failure it is."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class WebhookChannel:
    url: str
    min_severity: str = DEFAULT_MIN_SEVERITY
    timeout: float = DEFAULT_TIMEOUT
    name: str = field(default="webhook", init=False)

    @property
    def target(self) -> str:
        return self.url

    def send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        req = urllib.request.Request(self.url, data, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "User-Agent": "preserve-alerts/1"})
        check_vi = f"dịch vụ nhận {self.url} có đang chạy và truy cập được không (url, timeout trong [alerts.webhook])"
        check_en = f"that the service at {self.url} is running and reachable (url and timeout in [alerts.webhook])"
        log_vi, log_en = f"nhật ký của dịch vụ nhận {self.url}", f"the log of the service at {self.url}"
        try:
            with urllib.request.build_opener(_NoRedirect).open(req, timeout=self.timeout) as resp:
                status, reason = resp.status, resp.reason
                resp.read()
        except urllib.error.HTTPError as e:
            e.close()
            raise ChannelError(f"HTTP {e.code} {e.reason}", log_vi, log_en) from None
        except urllib.error.URLError as e:
            why = e.reason if isinstance(e.reason, str) else f"{type(e.reason).__name__}: {e.reason}"
            raise ChannelError(why, check_vi, check_en) from None
        except (http.client.HTTPException, OSError) as e:  # TimeoutError, ssl.SSLError are OSErrors
            raise ChannelError(f"{type(e).__name__}: {e}", check_vi, check_en) from None
        except ValueError as e:  # a URL urllib cannot use
            raise ChannelError(f"bad url: {e}", "url trong [alerts.webhook]", "url in [alerts.webhook]") from None
        if not 200 <= status < 300:
            raise ChannelError(f"HTTP {status} {reason}", log_vi, log_en)


@dataclass
class BrokenChannel:
    """A channel whose settings are wrong: each delivery fails with the reason, so it shows in the alert log."""

    name: str
    min_severity: str
    error: str

    @property
    def target(self) -> str:
        return f"preserve.toml [alerts.{self.name}]"

    def send(self, payload: dict[str, Any]) -> None:
        raise ChannelError(self.error, f"[alerts.{self.name}] trong preserve.toml",
                           f"[alerts.{self.name}] in preserve.toml")
