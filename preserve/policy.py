"""Storage policies: which tiers hold a full copy, how many copies, and how each tier is audited.

A policy is a YAML file `<name>.yaml`. A bare name is looked up in the repository's own `storage_policies/`
folder first, then in the policies shipped with preserve (`shipped_policies_dir()`, package data in
preserve/data/storage_policies/; the project's top-level storage_policies/ holds an identical copy, kept equal
by a test). preserve.toml names the policy with `[policy] name = "default"`.

Schema (every key optional except copies.tiers):

    description: "free text"
    copies:
      tiers: [primary, secondary, offsite]   # tiers declared in preserve.toml [tiers.NAME]
      required: 3                            # default: the number of copy tiers
      minimum: 2                             # default: min(2, required)
    verify_after_write: true
    auto_repair: true
    tiers:
      NAME:
        audit_interval: 30d                  # s m h d w, combinable: 1d12h
        io_budget: 100MiB/s                  # 0 or "unlimited" = no limit
        min_free: 10%                        # or a size: 50GiB
        check_parts: 12                      # restic tiers only

`load_policy` never raises for bad content: it returns `(policy, findings)`, with `policy` None when any
finding is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from .findings import Finding, bilingual

POLICY_DIR = "storage_policies"
DEFAULT_POLICY = "default"

DEFAULT_AUDIT_INTERVAL = timedelta(days=30)
DEFAULT_MIN_FREE_PERCENT = 10.0
DEFAULT_CHECK_PARTS = 12

# Tier kinds whose copy is away from the building (see preserve/storage). A tier may also say `offsite = true`.
OFFSITE_KINDS = frozenset({"restic", "s3", "sftp"})

_TOP_KEYS = {"description", "copies", "verify_after_write", "auto_repair", "tiers"}
_COPIES_KEYS = {"tiers", "required", "minimum"}
_TIER_KEYS = {"audit_interval", "io_budget", "min_free", "check_parts"}


# --- the policy ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TierPolicy:
    name: str
    audit_interval: timedelta = DEFAULT_AUDIT_INTERVAL
    io_budget: int | None = None          # bytes per second; None = unlimited
    min_free_bytes: int | None = None     # alert below this many free bytes …
    min_free_percent: float | None = DEFAULT_MIN_FREE_PERCENT  # … or below this share of the tier (one is set)
    check_parts: int = DEFAULT_CHECK_PARTS  # restic: a full read-data cycle is split into this many parts


@dataclass
class Policy:
    name: str
    copy_tiers: list[str]
    copies_required: int
    copies_minimum: int
    verify_after_write: bool = True
    auto_repair: bool = True
    tiers: dict[str, TierPolicy] = field(default_factory=dict)
    source: str = ""  # the file it was read from
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "description": self.description,
                "copy_tiers": list(self.copy_tiers), "copies_required": self.copies_required,
                "copies_minimum": self.copies_minimum, "verify_after_write": self.verify_after_write,
                "auto_repair": self.auto_repair,
                "tiers": {n: {"audit_interval_seconds": int(t.audit_interval.total_seconds()),
                              "io_budget_bytes_per_second": t.io_budget, "min_free_bytes": t.min_free_bytes,
                              "min_free_percent": t.min_free_percent, "check_parts": t.check_parts}
                          for n, t in ((n, self.tier(n)) for n in dict.fromkeys([*self.copy_tiers, *self.tiers]))}}

    def tier(self, name: str) -> TierPolicy:
        """The tier's settings; a tier the policy does not list gets the defaults (30d, unlimited, 10%, 12)."""
        return self.tiers.get(name) or TierPolicy(name)


# --- value parsers (raise ValueError with an English reason) ---------------------------------------------
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_DURATION = re.compile(r"(?:\d+\s*[smhdw]\s*)+")


def parse_duration(text: Any) -> timedelta:
    """'30d', '12h', '90m', '2w', '45s', or combined ('1d12h'). A bare number has no unit and is refused."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError("expected a duration with a unit, such as 30d, 12h, 90m, 2w or 45s")
    s = text.strip().lower()
    if not s or not _DURATION.fullmatch(s):
        raise ValueError("expected a duration with a unit, such as 30d, 12h, 90m, 2w or 45s")
    return timedelta(seconds=sum(int(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(s)))


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([kmgtp])(i?)(b)|(b))?", re.IGNORECASE)
_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def _parse_bytes(s: str) -> int:
    m = _SIZE.fullmatch(s.strip())
    if not m:
        raise ValueError("expected a size such as 50GiB, 500 GB or 1048576")
    number, prefix, binary, b, plain_b = m.groups()
    if (b or plain_b or "B") != "B":
        raise ValueError("'b' means bits; write B for bytes (MB, MiB)")
    value = float(number)
    if prefix:
        value *= (1024 if binary else 1000) ** _POWERS[prefix.lower()]
    return int(round(value))


def format_bytes(n: int | None) -> str:
    """A size for people, in the binary units parse_size reads: 512 B, 3.4 MiB, 1.2 TiB; None → '?'."""
    if n is None:
        return "?"
    x = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if x < 1024 or unit == "TiB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return str(n)


class Size(NamedTuple):
    """A free-space threshold: either an absolute size or a percentage of the tier (the other is None)."""

    bytes: int | None
    percent: float | None


def parse_size(text: Any) -> Size:
    """'50GiB', '500 GB', '1048576' → Size(bytes, None); '10%' → Size(None, 10.0). Percent must be 0–100."""
    if isinstance(text, bool):
        raise ValueError("expected a size such as 50GiB or a percentage such as 10%")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("a size cannot be negative")
        return Size(text, None)
    if not isinstance(text, str) or not text.strip():
        raise ValueError("expected a size such as 50GiB or a percentage such as 10%")
    s = text.strip()
    if s.endswith("%"):
        try:
            pct = float(s[:-1].strip())
        except ValueError:
            raise ValueError("expected a percentage such as 10%") from None
        if not 0 <= pct <= 100:
            raise ValueError("a percentage must be between 0 and 100")
        return Size(None, pct)
    return Size(_parse_bytes(s), None)


def parse_rate(text: Any) -> int | None:
    """'100MiB/s', '20 MB/s' → bytes per second; 0, '0' or 'unlimited' → None (no limit)."""
    if isinstance(text, bool):
        raise ValueError("expected a rate such as 100MiB/s, or 0 / unlimited")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("a rate cannot be negative")
        return text or None
    if not isinstance(text, str):
        raise ValueError("expected a rate such as 100MiB/s, or 0 / unlimited")
    s = text.strip()
    if s.lower() in ("0", "unlimited"):
        return None
    if not s.lower().endswith("/s"):
        raise ValueError("expected a rate per second such as 100MiB/s, or 0 / unlimited")
    rate = _parse_bytes(s[:-2])
    return rate or None


# --- where policies are -----------------------------------------------------------------------------------
def shipped_policies_dir() -> Path:
    """The policies shipped with preserve (package data: preserve/data/storage_policies/)."""
    return Path(str(resources.files("preserve").joinpath("data", POLICY_DIR)))


def policy_search_dirs(repo_root: Path) -> list[Path]:
    """The repository's own storage_policies/ first, then the shipped ones."""
    return [Path(repo_root) / POLICY_DIR, shipped_policies_dir()]


def _is_path(name_or_path: str) -> bool:
    return "/" in name_or_path or "\\" in name_or_path or name_or_path.endswith((".yaml", ".yml"))


# --- loading and validation -------------------------------------------------------------------------------
class _Collector:
    def __init__(self, source: str) -> None:
        self.source = source
        self.findings: list[Finding] = []

    def add(self, code: str, key: str = "", **params: Any) -> None:
        where = f"{self.source}: {key}" if key else self.source
        self.findings.append(Finding(code, where, {"key": key, **params} if key else params))

    def value(self, key: str, value: Any, expected_vi: str, expected_en: str) -> None:
        self.add("E-POL-VALUE", key, value=_show(value), expected=bilingual(expected_vi, expected_en))

    def unknown(self, section: dict, allowed: set[str], prefix: str) -> None:
        for k in section:
            if k not in allowed:
                key = f"{prefix}{k}"
                self.add("W-POL-KEY-UNKNOWN", key, allowed=", ".join(sorted(allowed)))


def _show(value: Any) -> str:
    if value is None:
        return "(trống / empty)"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


_UNSET = object()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def load_policy(name_or_path: str, declared_tiers: dict[str, dict], search_dirs: list[Path] | None = None
                ) -> tuple[Policy | None, list[Finding]]:
    """Find, read and validate a policy. Returns (policy, findings); policy is None if any finding is an error.

    A bare name ("default") is looked up as <name>.yaml in search_dirs in order (default: only the shipped
    policies); anything with a slash or a .yaml/.yml suffix is a path. `declared_tiers` is preserve.toml's
    [tiers] table (name → {kind, …}).
    """
    declared_tiers = declared_tiers or {}
    if _is_path(name_or_path):
        candidates = [Path(name_or_path)]
    else:
        dirs = list(search_dirs) if search_dirs is not None else [shipped_policies_dir()]
        candidates = [Path(d) / f"{name_or_path}.yaml" for d in dirs]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        f = Finding("E-POL-NOT-FOUND", name_or_path,
                    {"name": name_or_path, "searched": ", ".join(str(p) for p in candidates) or "-"})
        return None, [f]

    out = _Collector(str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        out.add("E-POL-UNREADABLE", detail=" ".join(str(e).split()))
        return None, out.findings
    if not isinstance(data, dict):
        out.add("E-POL-UNREADABLE", detail=f"the top level is a {type(data).__name__}, not a mapping of keys")
        return None, out.findings

    name = path.stem
    out.unknown(data, _TOP_KEYS, "")
    description = data.get("description") or ""
    if not isinstance(description, str):
        out.value("description", description, "văn bản", "text")
        description = ""

    # copies
    copies = data.get("copies")
    if copies is None:
        copies = {}
    if not isinstance(copies, dict):
        out.value("copies", copies, "một nhóm khóa tiers, required, minimum", "a mapping with tiers, required, minimum")
        copies = {}
    out.unknown(copies, _COPIES_KEYS, "copies.")
    copy_tiers: list[str] = []
    tiers_ok = True
    if "tiers" not in copies:
        out.add("E-POL-KEY-MISSING", "copies.tiers")
        tiers_ok = False
    else:
        raw = copies["tiers"]
        if not isinstance(raw, list) or not all(isinstance(t, str) and t.strip() for t in raw):
            out.value("copies.tiers", raw, "danh sách tên tầng lưu trữ", "a list of tier names")
            tiers_ok = False
        else:
            seen: set[str] = set()
            for t in raw:
                t = t.strip()
                if t in seen:
                    out.add("E-POL-TIER-DUPLICATE", "copies.tiers", tier=t)
                    continue
                seen.add(t)
                copy_tiers.append(t)
                if t not in declared_tiers:
                    out.add("E-POL-TIER-UNDECLARED", "copies.tiers", tier=t,
                            declared=", ".join(declared_tiers) or "-")

    count = len(copy_tiers)
    required = copies["required"] if "required" in copies else (max(1, count) if tiers_ok else _UNSET)
    minimum = copies["minimum"] if "minimum" in copies else (
        min(2, required) if _is_int(required) and required >= 1 else _UNSET)
    numbers_ok = True
    for key, v in (("copies.required", required), ("copies.minimum", minimum)):
        if v is _UNSET:  # its default depends on a value already reported
            numbers_ok = False
        elif not _is_int(v):
            out.value(key, v, "số nguyên", "a whole number")
            numbers_ok = False
        elif v < 1:
            out.add("E-POL-COPIES-NOT-POSITIVE", key, value=v)
            numbers_ok = False
    if numbers_ok:
        if minimum > required:
            out.add("E-POL-MINIMUM-EXCEEDS-REQUIRED", "copies.minimum", minimum=minimum, required=required)
        if tiers_ok:
            if count < minimum:
                out.add("E-POL-TIERS-BELOW-MINIMUM", "copies.tiers", count=count, minimum=minimum,
                        tiers=", ".join(copy_tiers) or "-")
            elif count < required:
                out.add("E-POL-COPIES-EXCEED-TIERS", "copies.required", required=required, count=count,
                        tiers=", ".join(copy_tiers) or "-")
    if tiers_ok and count < 2:
        out.add("W-POL-SINGLE-COPY", "copies.tiers", count=count, tiers=", ".join(copy_tiers) or "-")
    if tiers_ok and copy_tiers and all(t in declared_tiers for t in copy_tiers):
        if not any(_is_offsite(declared_tiers[t]) for t in copy_tiers):
            out.add("W-POL-NO-OFFSITE", "copies.tiers", tiers=", ".join(copy_tiers))

    # switches
    switches = {}
    for key in ("verify_after_write", "auto_repair"):
        v = data.get(key, True)
        if not isinstance(v, bool):
            out.value(key, v, "true hoặc false", "true or false")
            v = True
        switches[key] = v
    if switches["verify_after_write"] is False:
        out.add("W-POL-NO-VERIFY", "verify_after_write")

    # tiers
    tier_policies: dict[str, TierPolicy] = {}
    raw_tiers = data.get("tiers")
    if raw_tiers is None:
        raw_tiers = {}
    if not isinstance(raw_tiers, dict):
        out.value("tiers", raw_tiers, "một nhóm khóa theo tên tầng", "a mapping of tier names")
        raw_tiers = {}
    for tname, spec in raw_tiers.items():
        tname = str(tname)
        prefix = f"tiers.{tname}"
        if tname not in declared_tiers:
            out.add("E-POL-TIER-UNDECLARED", prefix, tier=tname, declared=", ".join(declared_tiers) or "-")
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            out.value(prefix, spec, "một nhóm khóa", "a mapping of keys")
            continue
        out.unknown(spec, _TIER_KEYS, prefix + ".")
        tier_policies[tname] = _tier_policy(tname, spec, declared_tiers.get(tname), out, prefix)

    if any(f.is_error for f in out.findings):
        return None, out.findings
    policy = Policy(name=name, copy_tiers=copy_tiers, copies_required=required, copies_minimum=minimum,
                    verify_after_write=switches["verify_after_write"], auto_repair=switches["auto_repair"],
                    tiers=tier_policies, source=str(path), description=description)
    return policy, out.findings


def _is_offsite(decl: dict) -> bool:
    return bool(decl.get("offsite")) or decl.get("kind") in OFFSITE_KINDS


def _tier_policy(name: str, spec: dict, decl: dict | None, out: _Collector, prefix: str) -> TierPolicy:
    tp: dict[str, Any] = {}
    if "audit_interval" in spec:
        v = spec["audit_interval"]
        try:
            d = parse_duration(v)
            if d <= timedelta(0):
                raise ValueError("an audit interval must be longer than zero")
            tp["audit_interval"] = d
        except ValueError as e:
            out.add("E-POL-DURATION", prefix + ".audit_interval", tier=name, value=_show(v), detail=str(e))
    if "io_budget" in spec:
        v = spec["io_budget"]
        try:
            tp["io_budget"] = parse_rate(v)
        except ValueError as e:
            out.add("E-POL-RATE", prefix + ".io_budget", tier=name, value=_show(v), detail=str(e))
    if "min_free" in spec:
        v = spec["min_free"]
        try:
            size = parse_size(v)
            tp["min_free_bytes"], tp["min_free_percent"] = size.bytes, size.percent
        except ValueError as e:
            code = "E-POL-PERCENT" if isinstance(v, str) and v.strip().endswith("%") else "E-POL-SIZE"
            out.add(code, prefix + ".min_free", tier=name, value=_show(v), detail=str(e))
    if "check_parts" in spec:
        v = spec["check_parts"]
        if not _is_int(v) or v < 1:
            out.add("E-POL-CHECK-PARTS", prefix + ".check_parts", tier=name, value=_show(v))
        else:
            tp["check_parts"] = v
            if decl is not None and decl.get("kind") != "restic":
                out.add("W-POL-CHECK-PARTS-UNUSED", prefix + ".check_parts", tier=name, kind=decl.get("kind", "-"))
    return TierPolicy(name, **tp)
