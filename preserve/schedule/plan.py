"""The plan: which jobs the scheduler runs and when, derived from the storage policy and preserve.toml
[scheduler] (keys and defaults: see preserve.schedule). Reading it never raises for bad values: `make_plan`
returns coded findings; `load_plan` raises ConfigError when any is an error."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ..errors import ConfigError
from ..findings import Finding, bilingual
from ..policy import Policy, parse_duration

SECTION = "scheduler"
DEFAULTS: dict[str, Any] = {
    "audit": "cron: 0 1 * * *",          # each copy tier's due audit, nightly at 01:00
    "audit_window": "5h",                # the audit stops starting replicas after this; the next night resumes
    "replicate": "interval: 1h",         # catch up under-replicated AIPs
    "offsite_backup": "cron: 0 23 * * *",  # only when the policy has a restic tier
    "offsite_check": "auto",             # every audit_interval / check_parts of the restic tier
    "capacity": "interval: 6h",          # tiers status: reachable, free space, missing AIPs
    "restore_drill": "cron: 0 3 1 * *",  # the restore drill: a sample from the off-site tier, monthly
    "restore_drill_sample": 5,           # AIPs per drill
    "misfire_grace": "1h",               # a run later than this is missed (alert), not run late
    "timezone": "",                      # empty: [repository] timezone
}
TIER_KEYS = ("audit", "audit_window")    # [scheduler.tiers.NAME] overrides
_KEYS = set(DEFAULTS) | {"tiers"}
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
TRIGGER_FORMS = bilingual('"cron: phút giờ ngày tháng thứ" (vd. "cron: 0 1 * * *"), "interval: 1h" hoặc "off"',
                          '"cron: minute hour day month weekday" (e.g. "cron: 0 1 * * *"), "interval: 1h" or "off"')


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job. `fingerprint` names the trigger as written (and the time zone): a stored job whose
    fingerprint is unchanged keeps its next run time when the scheduler restarts."""

    id: str                        # stable: "audit:primary", "replicate", "offsite-backup", …
    kind: str
    trigger_text: str
    trigger: BaseTrigger
    tz_name: str
    tier: str | None = None
    window: timedelta | None = None
    sample: int | None = None      # restore-drill: AIPs per drill

    @property
    def fingerprint(self) -> str:
        return f"{self.trigger_text} [{self.tz_name}]"


@dataclass
class Plan:
    jobs: list[JobSpec]
    tz: tzinfo
    tz_name: str
    grace: timedelta
    findings: list[Finding] = field(default_factory=list)

    def job(self, job_id: str) -> JobSpec | None:
        return next((j for j in self.jobs if j.id == job_id), None)


# --- values ------------------------------------------------------------------------------------------------
def parse_timezone(text: str) -> tzinfo:
    """"+07:00" (a fixed offset, as [repository] timezone) or an IANA name ("Asia/Ho_Chi_Minh")."""
    m = re.fullmatch(r"([+-])(\d{2}):(\d{2})", text.strip())
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    try:
        return ZoneInfo(text.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an offset such as +07:00 or a zone name such as Asia/Ho_Chi_Minh") from None


def crontab_weekdays(field_text: str) -> str:
    """A crontab weekday field (0 or 7 = Sunday, names allowed) as APScheduler 3 names: APScheduler 3 counts
    0 as Monday, so numbers must not be passed through."""
    if field_text == "*":
        return "*"
    days: set[int] = set()
    for part in field_text.lower().split(","):
        rng, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"bad step in the weekday field: {part!r}")
        lo, _, hi = rng.partition("-")
        first = 0 if lo == "*" else _weekday(lo)
        last = 6 if lo == "*" else (_weekday(hi) if hi else (6 if step else first))
        if last < first:
            raise ValueError(f"the weekday range {rng!r} runs backwards")
        days.update(d % 7 for d in range(first, last + 1, step or 1))
    return ",".join(_WEEKDAYS[d] for d in sorted(days))


def _weekday(token: str) -> int:
    if token.isdigit() and int(token) <= 7:
        return int(token)
    if token in _WEEKDAYS:
        return _WEEKDAYS.index(token)
    raise ValueError(f"{token!r} is not a weekday (0–7 or sun…sat)")


def parse_trigger(text: Any, tz: tzinfo) -> tuple[str, BaseTrigger] | None:
    """'cron: M H DOM MON DOW' (standard crontab: weekday 0 = Sunday), 'interval: 1h' or 'off' (None).
    Returns (canonical text, trigger); raises ValueError with an English reason."""
    if not isinstance(text, str):
        raise ValueError("expected text such as \"cron: 0 1 * * *\", \"interval: 1h\" or \"off\"")
    s = " ".join(text.split())
    if s.lower() == "off":
        return None
    kind, sep, rest = s.partition(":")
    kind, rest = kind.strip().lower(), rest.strip()
    if not sep or kind not in ("cron", "interval") or not rest:
        raise ValueError("a trigger starts with \"cron:\" or \"interval:\", or is \"off\"")
    if kind == "interval":
        every = parse_duration(rest)
        if every <= timedelta(0):
            raise ValueError("an interval must be longer than zero")
        return f"interval: {rest}", IntervalTrigger(seconds=int(every.total_seconds()), timezone=tz)
    fields = rest.split()
    if len(fields) != 5:
        raise ValueError(f"a cron trigger has 5 fields (minute hour day month weekday), not {len(fields)}")
    minute, hour, day, month, weekday = fields
    trigger = CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=crontab_weekdays(weekday),
                          timezone=tz)
    return f"cron: {rest}", trigger


def trigger_period(trigger: BaseTrigger, tz: tzinfo) -> timedelta | None:
    """The longest gap between the next few runs (an interval's own length): how often a job really runs."""
    if isinstance(trigger, IntervalTrigger):
        return trigger.interval
    t = trigger.get_next_fire_time(None, datetime.now(tz))
    gaps = []
    for _ in range(4):
        if t is None:
            return None
        nxt = trigger.get_next_fire_time(t, t + timedelta(microseconds=1))
        if nxt is None:
            return None
        gaps.append(nxt - t)
        t = nxt
    return max(gaps)


def duration_text(d: timedelta) -> str:
    """A timedelta in the policy's duration notation (1d12h, 15d, 90m)."""
    secs, out = int(d.total_seconds()), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size:
            out.append(f"{secs // size}{unit}")
            secs %= size
    return "".join(out) or "0s"


# --- the plan ----------------------------------------------------------------------------------------------
class _Reader:
    """Reads [scheduler] values, collecting a finding for each bad one (and using the default instead)."""

    def __init__(self, section: dict[str, Any]) -> None:
        self.section = section
        self.findings: list[Finding] = []

    def where(self, key: str) -> str:
        return f"preserve.toml [{SECTION}] {key}"

    def bad(self, code: str, key: str, value: Any, detail: str) -> None:
        """Once per key and value: a global key read for every tier is reported once."""
        f = Finding(code, self.where(key), {"key": key, "value": str(value), "detail": detail, "forms": TRIGGER_FORMS})
        if f not in self.findings:
            self.findings.append(f)

    def duration(self, key: str, value: Any, default: str) -> timedelta:
        try:
            d = parse_duration(value)
            if d <= timedelta(0):
                raise ValueError("it must be longer than zero")
            return d
        except ValueError as e:
            self.bad("E-SCHED-VALUE", key, value, str(e))
            return parse_duration(default)

    def trigger(self, key: str, value: Any, tz: tzinfo) -> tuple[str, BaseTrigger] | None:
        try:
            return parse_trigger(value, tz)
        except ValueError as e:
            self.bad("E-SCHED-TRIGGER", key, value, str(e))
            return None


def make_plan(data: dict[str, Any], policy: Policy, tiers: dict[str, dict[str, Any]]) -> Plan:
    """The jobs for this policy and preserve.toml (`data` is the whole file as a dict; `tiers` its [tiers])."""
    section = data.get(SECTION) or {}
    rd = _Reader(section if isinstance(section, dict) else {})
    if not isinstance(section, dict):
        rd.bad("E-SCHED-VALUE", "", section, "[scheduler] must be a table of keys")
    for key in rd.section:
        if key not in _KEYS:
            rd.findings.append(Finding("W-SCHED-KEY-UNKNOWN", rd.where(key),
                                       {"key": key, "allowed": ", ".join(sorted(_KEYS))}))

    def get(key: str) -> Any:
        return rd.section.get(key, DEFAULTS[key])

    tz_name = get("timezone") or (data.get("repository") or {}).get("timezone") or "+07:00"
    try:
        tz = parse_timezone(str(tz_name))
    except ValueError as e:
        rd.bad("E-SCHED-VALUE", "timezone", tz_name, str(e))
        tz_name, tz = "+07:00", parse_timezone("+07:00")
    grace = rd.duration("misfire_grace", get("misfire_grace"), DEFAULTS["misfire_grace"])
    jobs = _audit_jobs(rd, policy, tz, str(tz_name))
    restic = [t for t in policy.copy_tiers if (tiers.get(t) or {}).get("kind") == "restic"]
    for key, kind, needs_restic in (("replicate", "replicate", False), ("offsite_backup", "offsite-backup", True),
                                    ("capacity", "capacity", False)):
        if needs_restic and not restic:
            continue
        trig = rd.trigger(key, get(key), tz)
        if trig is not None:
            jobs.append(JobSpec(kind, kind, trig[0], trig[1], str(tz_name)))
    if restic:
        spec = _offsite_check_job(rd, policy, restic, get("offsite_check"), tz, str(tz_name))
        if spec is not None:
            jobs.append(spec)
    trig = rd.trigger("restore_drill", get("restore_drill"), tz)
    sample = get("restore_drill_sample")
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        rd.bad("E-SCHED-VALUE", "restore_drill_sample", sample, "a whole number of AIPs, at least 1")
        sample = DEFAULTS["restore_drill_sample"]
    if trig is not None:
        jobs.append(JobSpec("restore-drill", "restore-drill", trig[0], trig[1], str(tz_name), sample=int(sample)))
    return Plan(jobs, tz, str(tz_name), grace, rd.findings)


def _audit_jobs(rd: _Reader, policy: Policy, tz: tzinfo, tz_name: str) -> list[JobSpec]:
    overrides = rd.section.get("tiers") or {}
    if not isinstance(overrides, dict):
        rd.bad("E-SCHED-VALUE", "tiers", overrides, "[scheduler.tiers] must hold one table per tier")
        overrides = {}
    for name, spec in overrides.items():
        if name not in policy.copy_tiers:
            rd.findings.append(Finding("W-SCHED-KEY-UNKNOWN", rd.where(f"tiers.{name}"),
                                       {"key": f"tiers.{name}", "allowed": ", ".join(policy.copy_tiers)}))
        elif not isinstance(spec, dict):
            rd.bad("E-SCHED-VALUE", f"tiers.{name}", spec, "expected a table with audit and audit_window")
        else:
            for key in spec:
                if key not in TIER_KEYS:
                    rd.findings.append(Finding("W-SCHED-KEY-UNKNOWN", rd.where(f"tiers.{name}.{key}"),
                                               {"key": f"tiers.{name}.{key}", "allowed": ", ".join(TIER_KEYS)}))
    jobs = []
    for tier in policy.copy_tiers:
        own = overrides.get(tier) if isinstance(overrides.get(tier), dict) else {}
        key = f"tiers.{tier}.audit" if "audit" in own else "audit"
        trig = rd.trigger(key, own.get("audit", rd.section.get("audit", DEFAULTS["audit"])), tz)
        wkey = f"tiers.{tier}.audit_window" if "audit_window" in own else "audit_window"
        window = rd.duration(wkey, own.get("audit_window", rd.section.get("audit_window", DEFAULTS["audit_window"])),
                             DEFAULTS["audit_window"])
        if trig is None:
            if not any(f.code == "E-SCHED-TRIGGER" and f.params["key"] == key for f in rd.findings):
                rd.findings.append(Finding("W-SCHED-AUDIT-OFF", rd.where(key), {"tier": tier, "key": key}))
            continue
        jobs.append(JobSpec(f"audit:{tier}", "audit", trig[0], trig[1], tz_name, tier=tier, window=window))
    return jobs


def _offsite_check_job(rd: _Reader, policy: Policy, restic: list[str], value: Any, tz: tzinfo,
                       tz_name: str) -> JobSpec | None:
    """'auto': often enough that a full cycle of check_parts parts ends within the tier's audit interval.
    An explicit trigger slower than that is allowed, with a warning."""
    needed = min(policy.tier(t).audit_interval / policy.tier(t).check_parts for t in restic)
    needed = timedelta(seconds=max(60, int(needed.total_seconds())))
    if isinstance(value, str) and value.strip().lower() == "auto":
        every = duration_text(needed)
        return JobSpec("offsite-check", "offsite-check", f"interval: {every} (auto)",
                       IntervalTrigger(seconds=int(needed.total_seconds()), timezone=tz), tz_name)
    trig = rd.trigger("offsite_check", value, tz)
    if trig is None:
        return None
    period = trigger_period(trig[1], tz)
    if period is not None and period > needed:
        tier = min(restic, key=lambda t: policy.tier(t).audit_interval / policy.tier(t).check_parts)
        rd.findings.append(Finding("W-SCHED-OFFSITE-CHECK-SLOW", rd.where("offsite_check"), {
            "tier": tier, "value": trig[0], "period": duration_text(period), "needed": duration_text(needed),
            "parts": policy.tier(tier).check_parts, "interval": duration_text(policy.tier(tier).audit_interval)}))
    return JobSpec("offsite-check", "offsite-check", trig[0], trig[1], tz_name)


def load_plan(repo: Any) -> Plan:
    """The plan of an open Repository; ConfigError listing the error findings (warnings stay in .findings)."""
    plan = make_plan(repo.settings.data, repo.policy(), repo.settings.tiers)
    errors = [f for f in plan.findings if f.is_error]
    if errors:
        lines = "; ".join(f"{f.code} {f.where}: {f.message_en}" for f in errors)
        raise ConfigError(f"The [scheduler] settings cannot be used: {lines}",
                          hint="Fix [scheduler] in preserve.toml: triggers are \"cron: 0 1 * * *\", "
                               "\"interval: 1h\" or \"off\"; durations 45s, 90m, 12h, 30d, 2w (docs/codes.md).")
    return plan
