"""Audit speed against the machine's limit, and audit memory against the number of files, in one run each.

    .venv/bin/python bench/audit.py [--dossiers 24] [--docs 10] [--pages 5 7] [--rounds 3]
    .venv/bin/python bench/audit.py --files 10000 100000 [--per-aip 1000]

Speed (the default): one data set made with the project's own sample generator and ingest (no replication),
then, on the primary tier, in the same run and the same (warm) page-cache state, best of --rounds:

  audit   the façade: Repository.open + audit(tier="primary", due=False), i.e. `preserve audit --all --tier
          primary` without the CLI's start-up (that one is timed too, as a subprocess, for reference);
  ideal   multiprocessing.Pool(os.cpu_count()): one process per core, each file read once in 4 MiB reads into
          SHA-256 and SHA-512 (the audit's digests) and nothing else: the machine's limit for this work;
  bagit   `bagit.py --validate --processes <cores> BAG...` (Library of Congress bagit-python; one call, every
          AIP folder; it also reads every file once for both digests).

The audit is run with an I/O budget of 0 (unlimited) in the bench repository's own policy: the shipped
policies cap an audit at 100 MiB/s per tier, by design, which would measure the cap and not the engine.
Each is run once to warm the cache, then the rounds interleave the three.

Memory (--files N ...): for each N, a repository whose primary tier holds N tiny files (64 bytes each), in
two shapes: N/--per-aip AIPs of --per-aip files ("many AIPs"), and one AIP of N files ("one AIP"). The bags
are made with bagit-python (SHA-256 and SHA-512 manifests), signed with the repository's key and registered in
its catalog like ingested AIPs (a dossier record copied from a real ingest), so that `preserve audit --all
--tier primary` audits them end to end; its peak RSS is the child's own high-water mark (VmHWM in
/proc/self/status: Linux only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

VENV_BIN = Path(sys.executable).parent
PROJECT = Path(__file__).resolve().parents[1]
READ = 4 << 20


# --- speed ---------------------------------------------------------------------------------------------------
def _hash_file(path: str) -> tuple[str, int, str, str]:
    h256, h512 = hashlib.sha256(), hashlib.sha512()
    buf = bytearray(READ)
    view = memoryview(buf)
    size = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            chunk = view[:n]
            h256.update(chunk)
            h512.update(chunk)
            size += n
    return path, size, h256.hexdigest(), h512.hexdigest()


def ideal(files: list[str], procs: int) -> tuple[float, list[tuple[str, int, str, str]]]:
    t = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        out = list(pool.imap_unordered(_hash_file, files, chunksize=1))   # biggest first: balanced to the end
    return time.perf_counter() - t, out


def audit_facade(root: Path) -> tuple[float, dict[str, Any]]:
    from preserve.repository import Repository

    t = time.perf_counter()
    with Repository.open(root) as repo:
        res = repo.audit("primary", due=False)
    el = time.perf_counter() - t
    return el, res.to_dict()


def audit_cli(root: Path) -> tuple[float, dict[str, Any]]:
    t = time.perf_counter()
    p = subprocess.run([str(VENV_BIN / "preserve"), "audit", "--all", "--tier", "primary", "--json", "--repo",
                        str(root)], capture_output=True, text=True)
    el = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"preserve audit failed ({p.returncode}): {p.stderr[-2000:]}")
    return el, json.loads(p.stdout)


def bagit_validate(bags: list[Path], procs: int) -> float:
    t = time.perf_counter()
    p = subprocess.run([str(VENV_BIN / "bagit.py"), "--validate", "--quiet", "--processes", str(procs),
                        *map(str, bags)], capture_output=True, text=True)
    el = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"bagit.py --validate failed ({p.returncode}): {p.stderr[-2000:]}")
    return el


def unthrottled(root: Path) -> None:
    """The bench repository's own copy of its policy, with no I/O budget (0 = unlimited)."""
    import tomllib

    name = tomllib.loads((root / "preserve.toml").read_text(encoding="utf-8"))["policy"]["name"]
    text = (PROJECT / "storage_policies" / f"{name}.yaml").read_text(encoding="utf-8")
    (root / "storage_policies").mkdir(exist_ok=True)
    (root / "storage_policies" / f"{name}.yaml").write_text(text.replace("io_budget: 100MiB/s", "io_budget: 0"),
                                                            encoding="utf-8")


def check_ideal_digests(out: list[tuple[str, int, str, str]], primary: Path) -> None:
    """The ideal pool computes what the audit checks: its digests equal the bags' own manifests."""
    by_path = {p: (h256, h512) for p, _, h256, h512 in out}
    checked = 0
    for bag in primary.glob("aips/*/*/*/v*"):
        for alg, i in (("sha256", 0), ("sha512", 1)):
            for line in (bag / f"manifest-{alg}.txt").read_text(encoding="utf-8").splitlines():
                digest, _, rel = line.partition("  ")
                assert by_path[str(bag / rel)][i] == digest, (bag, rel, alg)
                checked += 1
    assert checked, "no manifest entries were checked"


def speed(a: argparse.Namespace) -> None:
    from preserve.repository import Repository
    from preserve.sip.sample import make_sample

    procs = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-audit-", dir=a.work) as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        info = make_sample(work / "batch", dossiers=a.dossiers, docs=a.docs, seed=77, pages=tuple(a.pages))
        made = time.perf_counter() - t
        root = work / "repo"
        Repository.init(root, "Bench", offsite=False).close()
        unthrottled(root)
        t = time.perf_counter()
        with Repository.open(root) as repo:
            res = repo.ingest(info.root, replicate=False)
            assert not res.refused and len(res.aips) == a.dossiers, res.to_dict()
        ingested = time.perf_counter() - t
        shutil.rmtree(work / "batch")
        primary = root / "tiers" / "primary"
        bags = sorted(primary.glob("aips/*/*/*/v*"))
        files = sorted((str(p) for p in primary.glob("aips/**/*") if p.is_file()),
                       key=lambda p: os.stat(p).st_size, reverse=True)
        total = sum(os.stat(p).st_size for p in files)
        mib = total / 2**20
        print(f"machine: {procs} cores, {platform.processor() or platform.machine()}, Python "
              f"{platform.python_version()}, {_openssl()}; one core: {_one_core()}; "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"data set: {len(bags)} AIPs, {len(files)} files, {mib:.1f} MiB on the primary tier "
              f"(sample {made:.1f} s, ingest {ingested:.1f} s)")
        # warm the page cache and every code path once
        _, out = ideal(files, procs)
        check_ideal_digests(out, primary)
        _, data = audit_facade(root)
        assert data["ok"] and data["replicas"] == len(bags), data
        bagit_validate(bags, procs)
        audit_cli(root)
        times: dict[str, list[float]] = {"audit": [], "ideal": [], "bagit": [], "cli": []}
        for _ in range(a.rounds):
            times["ideal"].append(ideal(files, procs)[0])
            el, data = audit_facade(root)
            assert data["ok"] and data["bytes"] == total, data
            times["audit"].append(el)
            times["bagit"].append(bagit_validate(bags, procs))
            el, data = audit_cli(root)
            times["cli"].append(el)
            times.setdefault("cli-engine", []).append(data["seconds"])
        best = {k: min(v) for k, v in times.items()}
        rows = [("ideal: Pool(%d) sha256+sha512, 4 MiB reads" % procs, best["ideal"]),
                ("preserve audit (façade, in-process)", best["audit"]),
                ("  same, `preserve audit --all --tier primary` (its JSON seconds)", best["cli-engine"]),
                ("  same, as a subprocess (CLI start-up included)", best["cli"]),
                ("bagit.py --validate --processes %d (one call, all bags)" % procs, best["bagit"])]
        print(f"\nbest of {a.rounds} rounds (all warm):")
        print(f"| {'what':<66} | {'seconds':>8} | {'MiB/s':>7} |")
        print(f"| {'-' * 66} | {'-' * 8} | {'-' * 7} |")
        for name, s in rows:
            print(f"| {name:<66} | {s:8.3f} | {mib / s:7.0f} |")
        print(f"\nratio audit/ideal: {best['audit'] / best['ideal']:.2f}   "
              f"(CLI engine/ideal {best['cli-engine'] / best['ideal']:.2f}, "
              f"CLI wall/ideal {best['cli'] / best['ideal']:.2f})")
        print(f"ratio bagit/ideal: {best['bagit'] / best['ideal']:.2f}")
        print(f"ratio audit/bagit: {best['audit'] / best['bagit']:.2f}")
        print("all rounds: " + ", ".join(f"{k} " + "/".join(f"{x:.3f}" for x in v) for k, v in times.items()))


def _one_core() -> str:
    """hashlib's speed on one core, for scale (64 MiB buffer, best of 3)."""
    data = os.urandom(64 << 20)
    out = []
    for alg in ("sha256", "sha512"):
        best = min(_timed(lambda: hashlib.new(alg, data).digest()) for _ in range(3))
        out.append(f"{alg.upper()} {64 / best:.0f} MiB/s")
    return ", ".join(out)


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _openssl() -> str:
    try:
        return subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "no openssl"


# --- memory --------------------------------------------------------------------------------------------------
def _template_dossier(work: Path) -> dict[str, Any]:
    """A real dossier record (what ingest registers), to copy for the synthetic AIPs."""
    from preserve.repository import Repository
    from preserve.sip.sample import make_sample

    info = make_sample(work / "tpl-batch", dossiers=1, docs=1, seed=78, pages=(1, 1))
    with Repository.init(work / "tpl-repo", "Bench", offsite=False) as repo:
        (aip,) = repo.ingest(info.root, replicate=False).aips
        dossier = dict(repo.show_aip(aip["id"])["dossier"])
    shutil.rmtree(work / "tpl-batch")
    shutil.rmtree(work / "tpl-repo")
    dossier.pop("fondsName", None)
    return dossier


def _tiny_aip(repo, dossier: dict[str, Any], n: int, k: int, signer) -> None:
    """One AIP of n files of 64 bytes under data/representations/original/data/, bagged with bagit-python
    (SHA-256 + SHA-512), its tag manifest signed, registered in the catalog on the primary tier."""
    import bagit

    from preserve.aip.build import SIGNATURE_NAME, aip_rel_path, new_aip_id
    from preserve.aip.inventory import parse_manifest
    from preserve.aip.model import Aip, AipFile
    from preserve.aip.sign import sign_detached
    from preserve.ingest import now_iso

    aip_id = new_aip_id()
    rel = aip_rel_path(aip_id)
    bag = repo.settings.tier_path("primary") / rel
    payload = bag / "representations" / "original" / "data"
    for d in range((n + 999) // 1000):           # at most 1,000 files per folder
        (payload / f"{d:04d}").mkdir(parents=True)
    for i in range(n):
        (payload / f"{i // 1000:04d}" / f"f{i:06d}.txt").write_bytes(f"{k:06d}:{i:09d}:".encode().ljust(64, b"x"))
    bagit.make_bag(str(bag), checksums=["sha256", "sha512"], processes=os.cpu_count() or 1)
    tm = (bag / "tagmanifest-sha256.txt").read_bytes()
    (bag / SIGNATURE_NAME).write_bytes(sign_detached(tm, *signer))
    m256 = parse_manifest((bag / "manifest-sha256.txt").read_bytes())
    m512 = parse_manifest((bag / "manifest-sha512.txt").read_bytes())
    files = [AipFile(p.removeprefix("data/"), 64, m256[p], m512[p], "original") for p in sorted(m256)]
    d = {**dossier, "fileCode": f"BENCH.{k}.{n}", "fileNo": str(k)}
    aip = Aip(aip_id, 1, now_iso("+07:00"), "vn-party-archive", d, [], files, organisation="Bench")
    repo.catalog.register_aip(aip, rel, "primary", hashlib.sha256(tm).hexdigest(), now_iso("+07:00"))


# The child reports its own high-water mark (VmHWM of its address space). Not the child's rusage: its
# ru_maxrss starts at the parent's RSS at fork time (Linux keeps the pre-exec maximum), i.e. this bench's.
_REPORT_HWM = """
import atexit, sys
def _hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("VmHWM " + line.split()[1] + "\\n")
atexit.register(_hwm)
from preserve.cli.main import main
sys.argv = ["preserve", *sys.argv[1:]]
sys.exit(main())
"""


def _peak_rss_of_audit(root: Path) -> tuple[int, dict[str, Any], float]:
    """(peak RSS in bytes of `preserve audit --all --tier primary --json`, its JSON, wall seconds)."""
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", _REPORT_HWM, "audit", "--all", "--tier", "primary", "--json",
                        "--repo", str(root)], capture_output=True, text=True)
    el = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"preserve audit exited {p.returncode}: {p.stdout[-1000:]} {p.stderr[-2000:]}")
    kib = int(next(line.split()[1] for line in p.stderr.splitlines() if line.startswith("VmHWM ")))
    return kib * 1024, json.loads(p.stdout), el


def memory(a: argparse.Namespace) -> None:
    from preserve.keys import load_signer
    from preserve.repository import Repository

    with tempfile.TemporaryDirectory(prefix="bench-audit-mem-", dir=a.work) as tmp:
        work = Path(tmp)
        dossier = _template_dossier(work)
        empty = work / "empty"
        Repository.init(empty, "Bench", offsite=False).close()
        unthrottled(empty)
        base_rss, _, _ = _peak_rss_of_audit(empty)
        print(f"machine: {os.cpu_count()} cores; peak RSS of `preserve audit` on an empty repository: "
              f"{base_rss / 2**20:.0f} MiB")
        print(f"| {'shape':<28} | {'files':>7} | {'AIPs':>5} | {'build s':>7} | {'audit s':>7} | "
              f"{'peak RSS MiB':>12} | {'over empty':>10} |")
        print(f"| {'-' * 28} | {'-' * 7} | {'-' * 5} | {'-' * 7} | {'-' * 7} | {'-' * 12} | {'-' * 10} |")
        for n in a.files:
            for shape, per in ((f"many AIPs ({a.per_aip} files each)", a.per_aip), ("one AIP", n)):
                root = work / f"repo-{n}-{per}"
                Repository.init(root, "Bench", offsite=False).close()
                unthrottled(root)
                t = time.perf_counter()
                with Repository.open(root) as repo:
                    signer = load_signer(repo.settings.keys_dir)
                    for k in range(n // per):
                        _tiny_aip(repo, dossier, per, k, signer)
                built = time.perf_counter() - t
                rss, data, el = _peak_rss_of_audit(root)
                assert data["ok"] and data["replicas"] == n // per, data
                assert data["tiers"]["primary"]["files"] >= n, data["tiers"]
                print(f"| {shape:<28} | {n:>7} | {n // per:>5} | {built:7.1f} | {el:7.1f} | {rss / 2**20:12.0f} | "
                      f"{(rss - base_rss) / 2**20:10.0f} |", flush=True)
                shutil.rmtree(root)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dossiers", type=int, default=24, help="AIPs in the speed data set")
    ap.add_argument("--docs", type=int, default=10, help="documents (scans) per dossier")
    ap.add_argument("--pages", type=int, nargs=2, default=(5, 7), metavar=("MIN", "MAX"), help="pages per scan")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", type=int, nargs="+", help="memory mode: these numbers of tiny files")
    ap.add_argument("--per-aip", type=int, default=1000, help="memory mode: files per AIP in the many-AIPs shape")
    ap.add_argument("--work", type=Path, default=None, help="where to build the data (default: the temp dir)")
    a = ap.parse_args()
    if a.files:
        memory(a)
    else:
        speed(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
