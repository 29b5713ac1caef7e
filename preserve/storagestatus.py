"""`preserve tiers status`: for each tier, what it is, whether it answers, what it holds and what it lacks."""

from __future__ import annotations

from typing import Any

from .errors import StorageError
from .replication import check_free_space

MISSING_LISTED = 50  # AIP ids listed per tier; the count is always complete


def tiers_status(tiers: dict[str, Any], policy, catalog, alerter) -> list[dict[str, Any]]:
    state = catalog.replication_state()
    by_path = {a["path"]: a for a in state}
    out = []
    for name, tier in tiers.items():
        row: dict[str, Any] = {"tier": name, "kind": tier.kind, "location": tier.location,
                               "copy_tier": name in policy.copy_tiers, "reachable": False, "reason": "",
                               "aips": None, "bytes": None, "free": None, "total": None, "low_space": False,
                               "missing": None, "missing_aips": [], "replicas": {}}
        for a in state:
            st = a["replicas"].get(name)
            if st:
                row["replicas"][st] = row["replicas"].get(st, 0) + 1
        ok, why = tier.reachable()
        row["reachable"], row["reason"] = ok, why
        if ok:
            try:
                held = tier.aip_paths()
            except (StorageError, OSError) as e:
                row["reachable"], row["reason"] = False, str(e).split("\n")[0]
                held = None
            if held is not None:
                row["aips"] = len(held)
                row["bytes"] = sum(by_path[p]["bytes"] for p in held if p in by_path)
                row["unknown_aips"] = len([p for p in held if p not in by_path])
                if row["copy_tier"]:
                    missing = [a for a in state if a["path"] not in held]
                    row["missing"] = len(missing)
                    row["missing_aips"] = [a["id"] for a in missing[:MISSING_LISTED]]
            cap = check_free_space(tier, policy, lambda f, **kw: alerter.alert(f, **kw), _resolver(alerter))
            row.update(free=cap["free"], total=cap["total"], low_space=cap["low"], threshold=cap["threshold"])
        elif row["copy_tier"]:
            alerter.alert(_unreachable(name, why), tier=name)
        if ok and _resolver(alerter):
            _resolver(alerter)("E-TIER-UNREACHABLE", tier=name)
        out.append(row)
    return out


def _unreachable(name: str, why: str):
    from .findings import Finding

    return Finding("E-TIER-UNREACHABLE", name, {"tier": name, "detail": why})


def _resolver(alerter):
    return getattr(alerter, "resolve", None)
