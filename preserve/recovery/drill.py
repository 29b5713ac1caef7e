"""Restore drills: restore a random sample of AIPs from the off-site tier (or a named one) into scratch space,
verify every byte against the catalog, the manifests and the signature, record the outcome, raise an alert when
it fails, and clean up. Scheduled monthly by default (preserve.schedule: restore_drill)."""

from __future__ import annotations

import random
import shutil
import time
import uuid
from typing import Any

from ..aip.model import SOFTWARE_AGENT, Event
from ..errors import UsageError
from ..findings import Finding

DEFAULT_SAMPLE = 5


def default_source(repo) -> str:
    """The first restic tier of the policy (the off-site copy), else its last copy tier."""
    tiers = list(repo.policy().copy_tiers)
    return next((t for t in tiers if repo.tier(t).kind == "restic"), tiers[-1])


def drill(repo, source: str | None = None, sample: int | None = None, progress=None,
          rng: random.Random | None = None) -> dict[str, Any]:
    from .restore import Restorer

    source = source or default_source(repo)
    sample = DEFAULT_SAMPLE if sample is None else sample
    if sample < 1:
        raise UsageError(f"--sample {sample}: at least 1.", hint="e.g. --sample 5")
    tier = repo.tier(source)
    started, when = time.monotonic(), repo.now()
    held = sorted({r["aip"] for r in repo.catalog.replicas(tier=source) if r["status"] == "ok"})
    picked = sorted((rng or random.SystemRandom()).sample(held, min(sample, len(held))))
    out: dict[str, Any] = {"tier": source, "started": when, "sample": len(picked), "held": len(held),
                           "aips": [], "ok": False}
    if not picked:
        finding = Finding("E-DRILL-FAILED", source, {"tier": source, "failed": 0, "sample": 0,
                                                      "detail": "no AIP with a verified copy on this tier"})
        repo.alerter().alert(finding, tier=source)
        out["problem"] = finding.to_dict()
        _summary(repo, out, time.monotonic() - started)
        return out
    scratch = repo.settings.staging / f"drill-{uuid.uuid4().hex}"
    scratch.mkdir(parents=True)
    try:
        tier.check()
        restorer = Restorer(tier, repo.catalog, repo.signature_checker(), repo.now, repo.settings.staging,
                            repo.root / "state" / "recovery-events.jsonl", to=scratch, progress=progress,
                            label="restore drill")
        paths = {a: repo.catalog.aip_row(a)["path"] for a in picked}
        result = restorer.run([paths[a] for a in picked])
        out["aips"] = result.aips
        out["bytes"] = sum(a["bytes"] for a in result.aips)
        out["ok"] = result.ok
    except Exception as e:  # noqa: BLE001 - a drill that cannot run is a failed drill: it must alert
        out["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    out["cleaned"] = not scratch.exists()
    if not out["ok"]:
        bad = [a for a in out["aips"] if a["status"] != "restored"]
        detail = out.get("error") or "; ".join(f"{a['aip']}: {a['detail']}" for a in bad[:3])
        finding = Finding("E-DRILL-FAILED", source, {"tier": source, "failed": len(bad) or len(picked),
                                                      "sample": len(picked), "detail": detail})
        repo.alerter().alert(finding, tier=source)
        out["problem"] = finding.to_dict()
    else:
        resolve = getattr(repo.alerter(), "resolve", None)
        if resolve is not None:
            resolve("E-DRILL-FAILED", tier=source)
    _summary(repo, out, time.monotonic() - started)
    return out


def _summary(repo, out: dict[str, Any], seconds: float) -> None:
    out["seconds"] = round(seconds, 2)
    good = sum(1 for a in out["aips"] if a["status"] == "restored")
    detail = (f"restore drill from tier '{out['tier']}': {good} of {out['sample']} AIP(s) sampled from "
              f"{out['held']} restored into scratch space and verified byte for byte (catalog digests, manifests, "
              f"signature); scratch space removed; {out['seconds']} s"
              + (f"; {out['error']}" if out.get("error") else ""))
    repo.catalog.append_event(Event(f"uuid-{uuid.uuid4()}", "recovery", repo.now(),
                                    "success" if out["ok"] else "failure", detail, [SOFTWARE_AGENT],
                                    [out["tier"], *(a["aip"] for a in out["aips"])]), None)
