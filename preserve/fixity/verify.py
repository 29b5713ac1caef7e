"""Verify one replica of an AIP: every byte re-read once, every digest computed in that pass, and compared with
the bag's own manifests, the catalog's digests, and the CMS signature over tagmanifest-sha256.txt.

The chain of trust runs: catalog (SHA-256 of tagmanifest-sha256.txt, digests of every payload file) →
signature over tagmanifest-sha256.txt → tag manifests (digests of bagit.txt, bag-info.txt, the payload
manifests) → payload manifests (digests of every payload file). A random change breaks the first link it
touches; a *consistent* edit of a payload file and every manifest still breaks the signature and the catalog.

`read_replica` gives one FileDigest (sha256 + sha512, and the bytes of the small tag files) per file, from a
local folder (in parallel, in a thread pool, throttled) or from any tier's `read_tree`. `judge` turns what was
read into coded findings.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..aip.build import SIGNATURE_NAME
from ..aip.inventory import parse_manifest
from ..findings import Finding
from ..storage.base import FileDigest, hash_keeping

ALGORITHMS = ("sha256", "sha512")
READ = 4 << 20                      # bytes per read: large enough that hashlib releases the GIL for long
WINDOW = 64                         # files of one AIP in flight in the pool
METADATA_PREFIXES = ("data/METS.xml", "data/metadata/")


def is_tag_file(name: str) -> bool:
    """Files at the bag's root (not under data/): bagit.txt, bag-info.txt, manifests, the signature."""
    return "/" not in name


class Throttle:
    """An I/O budget shared by the threads reading one tier: sleep so that bytes/second stays under `rate`."""

    def __init__(self, rate: int | None):
        self.rate = rate
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._bytes = 0

    def take(self, n: int) -> None:
        if not self.rate:
            return
        with self._lock:
            self._bytes += n
            ahead = self._bytes / self.rate - (time.monotonic() - self._start)
        if ahead > 0:
            time.sleep(ahead)


def hash_local_file(path: Path, name: str, throttle: Throttle) -> FileDigest:
    """One file read once: sha256 and sha512 together; the bytes kept when it is a tag file."""
    with open(path, "rb", buffering=0) as f:
        size, digests, content = hash_keeping(f, ALGORITHMS, is_tag_file(name), READ, throttle.take)
    return FileDigest(name, size, digests, content)


def local_files(bag: Path) -> Iterator[tuple[Path, str]]:
    """Every regular file of a local bag folder, with its path in the bag (sorted, depth first)."""
    for dirpath, dirs, files in os.walk(bag):
        dirs.sort()
        for f in sorted(files):
            p = Path(dirpath, f)
            yield p, p.relative_to(bag).as_posix()


def read_local(bag: Path, pool: Executor, throttle: Throttle) -> list[FileDigest]:
    """All files of a local bag hashed in parallel in `pool` (parallel across files; callers run several
    bags at once for parallelism across AIPs)."""
    out: list[FileDigest] = []
    window: deque = deque()
    for p, name in local_files(bag):  # a bounded window of files in flight: memory flat in files per AIP
        window.append(pool.submit(hash_local_file, p, name, throttle))
        if len(window) >= WINDOW:
            out.append(window.popleft().result())
    out.extend(f.result() for f in window)
    return out


def read_tier(tier, rel: str, throttle: Throttle) -> list[FileDigest]:
    """All files of a replica on any tier, through its streaming read_tree (restic: one `restic dump`)."""
    out = []
    for d in tier.read_tree(rel, ALGORITHMS, keep=is_tag_file):
        throttle.take(d.size)
        out.append(d)
    return out


# --- judging ------------------------------------------------------------------------------------------------
@dataclass
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    bytes: int = 0

    @property
    def intact(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class Expected:
    """What the catalog knows of one AIP version."""

    aip_id: str
    rel: str                                  # its path on a tier (aips/ab/cd/<uuid>/v1)
    tagmanifest_sha256: str | None
    files: dict[str, dict[str, Any]]          # "data/…" -> {size, sha256, sha512}


def judge(exp: Expected, tier: str, got: Iterable[FileDigest], verify_signature: Callable[[bytes, bytes], Any]
          ) -> Verdict:
    """Every problem of one replica, as findings with the file and both digests."""
    got = {d.path: d for d in got}
    v = Verdict(files=len(got), bytes=sum(d.size for d in got.values()))
    where = f"{tier}:{exp.rel}"

    def add(code: str, path: str = "", **params: Any) -> None:
        v.findings.append(Finding(code, f"{where}/{path}" if path else where,
                                  {"aip": exp.aip_id, "tier": tier, "path": path, **params}))

    tm = got.get("tagmanifest-sha256.txt")
    tm_bytes = tm.content if tm is not None else None
    if tm is None or tm_bytes is None:
        add("E-AUDIT-FILE-MISSING", "tagmanifest-sha256.txt", expected=exp.tagmanifest_sha256 or "", found="")
    else:
        if exp.tagmanifest_sha256 and tm.digests["sha256"] != exp.tagmanifest_sha256:
            add("E-AUDIT-TAGMANIFEST-CHANGED", "tagmanifest-sha256.txt", expected=exp.tagmanifest_sha256,
                found=tm.digests["sha256"])
        sig = got.get(SIGNATURE_NAME)
        if sig is None or sig.content is None:
            add("E-AUDIT-FILE-MISSING", SIGNATURE_NAME, expected="", found="")
        else:
            check = verify_signature(tm_bytes, sig.content)
            if not check.ok:
                add("E-AUDIT-SIGNATURE", SIGNATURE_NAME, detail=check.detail)

    listed: set[str] = {"tagmanifest-sha256.txt", SIGNATURE_NAME}
    # tag manifests first: a payload manifest they find edited is not used to judge payload files (the other
    # algorithm's manifest and the catalog still judge them)
    distrusted: set[str] = set()
    for alg in ALGORITHMS:
        entries = _manifest(got, f"tagmanifest-{alg}.txt", add, listed)
        if entries is not None:
            before = len(v.findings)
            _check_entries(entries, alg, "tag", got, add, listed)
            distrusted |= {f.params["path"] for f in v.findings[before:]}
    for alg in ALGORITHMS:
        name = f"manifest-{alg}.txt"
        entries = _manifest(got, name, add, listed)
        if entries is not None and name not in distrusted:
            _check_entries(entries, alg, "payload", got, add, listed)
        elif entries is not None:
            listed.update(entries)
    for name in sorted(got):
        if name in listed or name in ("bagit.txt", "bag-info.txt"):
            continue
        if name.startswith("data/"):
            continue  # payload files: judged against the manifests above
        add("E-AUDIT-FILE-UNEXPECTED", name, expected="", found=got[name].digests["sha256"])
    _check_catalog(exp, got, add)
    v.findings = _one_per_problem(v.findings)
    return v


def _manifest(got: dict[str, FileDigest], name: str, add: Callable[..., None], listed: set[str]
              ) -> dict[str, str] | None:
    """The entries of one manifest of the replica, or None (reported) when it is missing or unreadable. Every
    AIP preserve makes has all four (manifest- and tagmanifest-, SHA-256 and SHA-512)."""
    listed.add(name)
    man = got.get(name)
    if man is None:
        add("E-AUDIT-FILE-MISSING", name, expected="", found="")
        return None
    try:
        if man.content is None:
            raise ValueError("too large to be a manifest")
        return parse_manifest(man.content)
    except (UnicodeDecodeError, ValueError):
        add("E-AUDIT-TAG-EDITED", name, expected="", found=man.digests["sha256"])
        return None


def _check_entries(entries: dict[str, str], alg: str, kind: str, got: dict[str, FileDigest],
                   add: Callable[..., None], listed: set[str]) -> None:
    for path, want in entries.items():
        listed.add(path)
        d = got.get(path)
        if d is None:
            add("E-AUDIT-FILE-MISSING", path, expected=want, found="")
        elif d.digests[alg] != want:
            code = ("E-AUDIT-TAG-EDITED" if kind == "tag" else
                    "E-AUDIT-METADATA-EDITED" if path.startswith(METADATA_PREFIXES) else "E-AUDIT-FILE-CORRUPTED")
            add(code, path, expected=f"{alg}:{want}", found=f"{alg}:{d.digests[alg]}")
    if kind == "payload":
        for path in sorted(p for p in got if p.startswith("data/") and p not in entries):
            if path not in listed:
                listed.add(path)
                add("E-AUDIT-FILE-UNEXPECTED", path, expected="", found=got[path].digests["sha256"])


def _check_catalog(exp: Expected, got: dict[str, FileDigest], add: Callable[..., None]) -> None:
    """The catalog's digests of the payload: a file the manifests were edited to match is still caught here;
    a short file is reported as truncated."""
    for path, rec in exp.files.items():
        d = got.get(path)
        if d is None:
            continue  # reported as missing from the manifests (or, if unlisted there too, below)
        if d.size < rec["size"]:
            add("E-AUDIT-FILE-TRUNCATED", path, expected=f"{rec['size']} bytes", found=f"{d.size} bytes",
                size=d.size, expected_size=rec["size"])
        elif d.digests["sha256"] != rec["sha256"]:
            add("E-AUDIT-CATALOG-MISMATCH", path, expected=f"sha256:{rec['sha256']}",
                found=f"sha256:{d.digests['sha256']}")
    for path in sorted(set(exp.files) - set(got)):
        add("E-AUDIT-FILE-MISSING", path, expected=f"sha256:{exp.files[path]['sha256']}", found="")


_REDUNDANT = {  # when a path has the key finding, these say nothing more about it
    "E-AUDIT-FILE-TRUNCATED": {"E-AUDIT-FILE-CORRUPTED", "E-AUDIT-CATALOG-MISMATCH", "E-AUDIT-METADATA-EDITED"},
    "E-AUDIT-FILE-CORRUPTED": {"E-AUDIT-CATALOG-MISMATCH"},
    "E-AUDIT-METADATA-EDITED": {"E-AUDIT-CATALOG-MISMATCH"},
}


def _one_per_problem(findings: list[Finding]) -> list[Finding]:
    """One finding per (code, path) (the sha512 mismatch repeats the sha256 one), and none that a stronger
    finding on the same path already says."""
    by_path: dict[str, set[str]] = {}
    for f in findings:
        by_path.setdefault(f.params.get("path", ""), set()).add(f.code)
    out, seen = [], set()
    for f in findings:
        path = f.params.get("path", "")
        key = (f.code, path)
        if key in seen or any(f.code in _REDUNDANT.get(c, ()) for c in by_path[path]):
            continue
        seen.add(key)
        out.append(f)
    return out
