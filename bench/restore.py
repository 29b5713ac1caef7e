"""Restoring the off-site copy, against restic's own restore, in one run.

    .venv/bin/python bench/restore.py [--dossiers 12] [--docs 4] [--pages 2 4] [--rounds 3]

One data set, made with the project's sample generator and ingested into a repository with the default policy
(so every AIP is in the local restic off-site repository), then, best of --rounds, in the same run:

  preserve   Repository.restore("offsite", to=DIR): every AIP streamed out of restic (one `restic dump` per
             snapshot), each file hashed (SHA-256 and SHA-512) while written, every AIP judged against its own
             manifests, its CMS signature and the catalog's digests, then published by a rename;
  restic     `restic restore latest --target DIR` of each snapshot: the bytes come back, but restic compares
             nothing with the original (restic issue #2332);
  restic+v   the same, then `sha256sum -c` of every AIP's manifest-sha256.txt: the least a careful officer
             would add by hand, and still no signature or tag-manifest check.

The ratio preserve / restic+v says what full verification costs against the manual procedure.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from preserve.repository import Repository  # noqa: E402
from preserve.sip.sample import make_sample  # noqa: E402


def restic(repo: Repository, *args: str) -> bytes:
    tier = repo.tier("offsite")
    return subprocess.run(tier.restic._argv(list(args)), capture_output=True, check=True, env=tier.restic.env).stdout


def run_preserve(repo: Repository, out: Path) -> float:
    t0 = time.perf_counter()
    res = repo.restore("offsite", to=out)
    seconds = time.perf_counter() - t0
    assert res.ok, res.to_dict()
    return seconds


def run_restic(repo: Repository, out: Path, verify: bool) -> float:
    snaps = [s["id"] for s in json.loads(restic(repo, "snapshots", "--json", "--tag", "preserve"))
             if not any(t == "eventlog" for t in s.get("tags", []))]
    t0 = time.perf_counter()
    for snap in snaps:
        restic(repo, "restore", snap, "--target", str(out))
    if verify:
        for manifest in sorted(out.rglob("manifest-sha256.txt")):
            subprocess.run(["sha256sum", "--quiet", "-c", manifest.name], cwd=manifest.parent, check=True,
                           capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dossiers", type=int, default=12)
    ap.add_argument("--docs", type=int, default=4)
    ap.add_argument("--pages", type=int, nargs=2, default=(2, 4))
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if shutil.which("restic") is None or shutil.which("sha256sum") is None:
        sys.exit("restic and sha256sum are needed (make setup installs restic)")
    with tempfile.TemporaryDirectory(prefix="bench-restore-") as tmp:
        tmp = Path(tmp)
        repo = Repository.init(tmp / "repo", "Bench")
        batch = make_sample(tmp / "lo", dossiers=a.dossiers, docs=a.docs, seed=5, pages=tuple(a.pages)).root
        repo.ingest(batch)
        size = sum(p.stat().st_size for p in (tmp / "repo/tiers/primary/aips").rglob("*") if p.is_file())
        times: dict[str, list[float]] = {"preserve": [], "restic": [], "restic+v": []}
        for i in range(a.rounds):
            for name in times:
                out = tmp / f"out-{name}-{i}"
                times[name].append(run_preserve(repo, out) if name == "preserve" else
                                   run_restic(repo, out, verify=name == "restic+v"))
                shutil.rmtree(out)
        repo.close()
    best = {k: min(v) for k, v in times.items()}
    print(f"{platform.node()}: {a.dossiers} AIPs, {size / 2**20:.1f} MiB, best of {a.rounds}")
    for k, v in best.items():
        print(f"  {k:<9} {v:7.3f} s   (rounds: {', '.join(f'{x:.3f}' for x in times[k])})")
    print(f"  ratio preserve / restic+v = {best['preserve'] / best['restic+v']:.2f}; "
          f"preserve / restic = {best['preserve'] / best['restic']:.2f}")


if __name__ == "__main__":
    main()
