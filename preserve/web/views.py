"""What the pages and the API show, gathered from the Repository façade (shared by both, so they agree)."""

from __future__ import annotations

from typing import Any


def dashboard_data(repo) -> dict[str, Any]:
    """Counts, each tier's copies, free space and last audit, open alerts, recent events."""
    counts = repo.counts()
    try:
        tiers = repo.tiers_status()
    except Exception as e:  # noqa: BLE001 - a broken policy or tier must not hide the rest of the dashboard
        tiers = [{"tier": "?", "kind": "", "reachable": False, "detail": str(e)}]
    last = repo.last_verified_by_tier()
    for row in tiers:
        row["last_audit"] = last.get(row.get("tier"))
    alerts = repo.alerter().open_problems()
    events = list(reversed(repo.events(limit=15)))
    return {"counts": counts, "tiers": tiers, "alerts": alerts, "events": events}
