"""Alerts: problems a person must see (a copy failed, a tier is down or filling up, copies below the minimum).

Each alert is a coded finding (bilingual message from preserve/data/codes.yaml) appended as one JSON line to
the repository's alert log (preserve.toml [alerts] log, default alerts.log) and written to stderr through the
`preserve.alerts` logger. The audit issue adds e-mail and webhook delivery on top of this log.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .findings import Finding

log = logging.getLogger("preserve.alerts")


@dataclass
class Alert:
    finding: Finding
    at: str
    tier: str | None = None
    aip: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "tier": self.tier, "aip": self.aip, **self.finding.to_dict()}


@dataclass
class Alerter:
    """Raises alerts to the log file; keeps those raised by this object (for reports and tests)."""

    log_path: Path | None
    timezone: str = "+07:00"
    raised: list[Alert] = field(default_factory=list)

    @classmethod
    def for_settings(cls, settings) -> "Alerter":
        rel = (settings.data.get("alerts") or {}).get("log") or "alerts.log"
        return cls(settings.path(rel), settings.timezone)

    def alert(self, finding: Finding, *, tier: str | None = None, aip: str | None = None) -> Alert:
        from .ingest import now_iso

        a = Alert(finding, now_iso(self.timezone), tier, aip)
        self.raised.append(a)
        log.warning("ALERT %s: %s / %s", finding.code, finding.message_vi, finding.message_en)
        if self.log_path is not None:
            line = json.dumps(a.to_dict(), ensure_ascii=False) + "\n"
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        return a


def read_alerts(path: Path) -> list[dict[str, Any]]:
    """Every alert in a log file, oldest first (a torn last line is skipped)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
