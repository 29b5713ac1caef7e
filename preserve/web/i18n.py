"""Labels in Vietnamese (the default) and English, and dates as officers write them (dd/mm/yyyy)."""

from __future__ import annotations

import re
from typing import Any

LANGS = ("vi", "en")

TEXT: dict[str, tuple[str, str]] = {  # key -> (Vietnamese, English)
    "app": ("Kho lưu trữ số", "Digital archive"),
    "sign_in": ("Đăng nhập", "Sign in"),
    "sign_out": ("Đăng xuất", "Sign out"),
    "user_name": ("Tên đăng nhập", "User name"),
    "password": ("Mật khẩu", "Password"),
    "bad_login": ("Sai tên đăng nhập hoặc mật khẩu, hoặc tài khoản đã bị khóa.",
                  "Wrong user name or password, or the account is disabled."),
    "too_many": ("Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau {seconds} giây.",
                 "Too many failed sign-ins. Try again in {seconds} seconds."),
    "csrf": ("Biểu mẫu đã hết hạn hoặc không hợp lệ. Vui lòng tải lại trang và thử lại.",
             "The form has expired or is not valid. Reload the page and try again."),
    "forbidden": ("Bạn không có quyền dùng chức năng này.", "You may not use this function."),
    "not_found": ("Không tìm thấy.", "Not found."),
    "dashboard": ("Tổng quan", "Dashboard"),
    "browse": ("Tra cứu", "Browse"),
    "search": ("Tìm kiếm", "Search"),
    "ingest": ("Nộp lưu", "Ingest"),
    "access": ("Khai thác", "Access"),
    "audits": ("Kiểm tra", "Audits"),
    "fonds": ("Phông", "Fonds"),
    "dossiers": ("Hồ sơ", "Dossiers"),
    "documents": ("Tài liệu", "Documents"),
    "pages": ("Trang", "Pages"),
    "aips": ("Gói AIP", "AIPs"),
    "tiers": ("Tầng lưu trữ", "Storage tiers"),
    "tier": ("Tầng", "Tier"),
    "copies": ("Bản sao", "Copies"),
    "free": ("Còn trống", "Free"),
    "last_audit": ("Kiểm tra gần nhất", "Last audit"),
    "reachable": ("Truy cập được", "Reachable"),
    "alerts": ("Cảnh báo đang mở", "Open alerts"),
    "no_alerts": ("Không có cảnh báo.", "No open alerts."),
    "events": ("Sự kiện gần đây", "Recent events"),
    "when": ("Thời gian", "When"),
    "type": ("Loại", "Type"),
    "outcome": ("Kết quả", "Outcome"),
    "detail": ("Chi tiết", "Detail"),
    "role": ("Vai trò", "Role"),
    "role_admin": ("Quản trị", "Administrator"),
    "role_archivist": ("Lưu trữ viên", "Archivist"),
    "role_auditor": ("Kiểm tra viên", "Auditor"),
    "role_reader": ("Người đọc", "Reader"),
    "language": ("English", "Tiếng Việt"),
    "yes": ("có", "yes"),
    "no": ("không", "no"),
}


EVENTS: dict[str, tuple[str, str]] = {  # PREMIS event types (LoC vocabulary) and outcomes, as shown
    "ev.validation": ("kiểm tra hợp lệ", "validation"),
    "ev.format identification": ("nhận dạng định dạng", "format identification"),
    "ev.message digest calculation": ("tính mã băm", "message digest calculation"),
    "ev.ingestion": ("nộp lưu", "ingestion"),
    "ev.creation": ("tạo lập", "creation"),
    "ev.replication": ("sao chép", "replication"),
    "ev.fixity check": ("kiểm tra toàn vẹn", "fixity check"),
    "ev.dissemination": ("cung cấp bản sao", "dissemination"),
    "ev.recovery": ("khôi phục", "recovery"),
    "ev.access request": ("yêu cầu khai thác", "access request"),
    "ev.access refusal": ("từ chối khai thác", "access refusal"),
    "ev.access approval": ("duyệt khai thác", "access approval"),
    "ev.access denial": ("không duyệt khai thác", "access denial"),
    "ev.user administration": ("quản lý người dùng", "user administration"),
    "ev.success": ("thành công", "success"),
    "ev.failure": ("thất bại", "failure"),
    "ev.warning": ("cảnh báo", "warning"),
}
TEXT.update(EVENTS)


def t(key: str, lang: str = "vi", **params: Any) -> str:
    """The label for `key`; an unknown "prefix.value" key shows the value itself (e.g. a new event type)."""
    fallback = key.split(".", 1)[1] if key.startswith("ev.") else key
    vi, en = TEXT.get(key, (fallback, fallback))
    text = en if lang == "en" else vi
    return text.format(**params) if params else text


_ISO = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:[T ](\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?)?")


def vndate(value: Any, with_time: bool = False) -> str:
    """ISO dates and date-times as dd/mm/yyyy (with hh:mm when asked); partial dates as mm/yyyy or yyyy."""
    if value in (None, ""):
        return ""
    m = _ISO.match(str(value))
    if not m:
        return str(value)
    y, mo, d, hh, mm = m.groups()
    out = f"{d}/{mo}/{y}" if d else f"{mo}/{y}" if mo else y
    if with_time and hh:
        out += f" {hh}:{mm}"
    return out


def size(n: Any) -> str:
    try:
        v = float(n)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if v < 1024 or unit == "TB":
            return f"{v:,.0f} {unit}" if unit == "B" else f"{v:,.1f} {unit}"
        v /= 1024
    return str(n)
