"""Ingest speed against a peer: `preserve ingest` vs the Library of Congress bagit (make_bag with sha256 and
sha512) plus a copy, on the same generated batch, in one run. Prints both times and their ratio.

    .venv/bin/python bench/ingest.py [--dossiers 8] [--docs 5] [--rounds 3]

The peer does less than ingest (no validation, no PDF inspection, no PRONOM identification, no METS/PREMIS,
no signature, no catalog): the ratio says what all of that costs on top of copying and hashing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bagit

from preserve.repository import Repository
from preserve.sip.sample import make_sample


def peer(batch: Path, work: Path) -> float:
    dest = work / "peer"
    t = time.perf_counter()
    shutil.copytree(batch, dest)
    bagit.make_bag(str(dest), checksums=["sha256", "sha512"])
    el = time.perf_counter() - t
    shutil.rmtree(dest)
    return el


def ours(batch: Path, work: Path) -> float:
    repo = Repository.init(work / "repo", offsite=False)
    t = time.perf_counter()
    res = repo.ingest(batch)
    el = time.perf_counter() - t
    assert not res.refused, res.to_dict()
    repo.close()
    shutil.rmtree(work / "repo")
    return el


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dossiers", type=int, default=8)
    ap.add_argument("--docs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        info = make_sample(work / "batch", dossiers=a.dossiers, docs=a.docs, seed=99, pages=(2, 6))
        size = sum(p.stat().st_size for p in info.root.rglob("*") if p.is_file())
        pages = sum(info.pages.values())
        p_times, o_times = [], []
        for _ in range(a.rounds):  # interleaved, so both see the same cache state and machine load
            p_times.append(peer(info.root, work))
            o_times.append(ours(info.root, work))
        p, o = statistics.median(p_times), statistics.median(o_times)
        mb = size / 2**20
        print(f"batch: {a.dossiers} dossiers, {len(info.doc_codes)} documents, {pages} pages, {mb:.1f} MiB")
        print(f"bagit make_bag(sha256+sha512)+copy: median {p:.3f} s ({mb / p:.0f} MiB/s) over {a.rounds} rounds")
        print(f"preserve ingest (validate+AIP+sign+catalog): median {o:.3f} s ({mb / o:.0f} MiB/s)")
        print(f"ratio preserve/bagit: {o / p:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
