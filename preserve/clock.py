"""The repository's clock: ISO 8601 times with the repository's offset (+07:00 in Vietnam)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def now_iso(tz: str = "+07:00") -> str:
    sign = -1 if tz.startswith("-") else 1
    hh, mm = tz.lstrip("+-").split(":")
    zone = timezone(sign * timedelta(hours=int(hh), minutes=int(mm)))
    return datetime.now(zone).isoformat(timespec="seconds")
