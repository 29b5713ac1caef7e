"""What an AIP must hold, from its own manifests: the expected SHA-256 of every file of the bag.

The chain of trust: the catalog keeps the SHA-256 of tagmanifest-sha256.txt (and the signature covers it);
the tag manifest gives the digests of bagit.txt, bag-info.txt and the payload manifests; manifest-sha256.txt
gives the digest of every payload file. Only the signature and the tag manifests of other algorithms
(tagmanifest-sha512.txt) are in no SHA-256 manifest: a copy of those is compared with its source instead
(`UNLISTED`, `add_unlisted`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .build import SIGNATURE_NAME

TAGMANIFEST = "tagmanifest-sha256.txt"
MANIFEST = "manifest-sha256.txt"
UNLISTED = frozenset({SIGNATURE_NAME})
_OTHER_TAGMANIFEST = re.compile(r"tagmanifest-(?!sha256\.txt$)[a-z0-9]+\.txt")


def is_unlisted(name: str) -> bool:
    """A file at the root of an AIP that no SHA-256 manifest lists, by design."""
    return name in UNLISTED or bool(_OTHER_TAGMANIFEST.fullmatch(name))


@dataclass
class Inventory:
    expected: dict[str, str] = field(default_factory=dict)   # path in the bag -> sha256
    problems: list[str] = field(default_factory=list)        # why the manifests themselves cannot be trusted

    @property
    def ok(self) -> bool:
        return not self.problems


def _decode(path: str) -> str:
    return path.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")


def parse_manifest(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in data.decode("utf-8").splitlines():
        if not line.strip():
            continue
        digest, _, rel = line.partition(" ")
        out[_decode(rel.lstrip(" *"))] = digest.lower()
    return out


def expected_inventory(read: Callable[[str], bytes], tagmanifest_sha256: str | None) -> Inventory:
    """Read the manifests through `read(path_in_bag) -> bytes` and check them against the catalog's digest of
    the tag manifest (None: no catalog to check against)."""
    inv = Inventory()
    try:
        tm = read(TAGMANIFEST)
    except (OSError, FileNotFoundError) as e:
        inv.problems.append(f"{TAGMANIFEST}: cannot be read ({e})")
        return inv
    tm_digest = hashlib.sha256(tm).hexdigest()
    if tagmanifest_sha256 and tm_digest != tagmanifest_sha256:
        inv.problems.append(f"{TAGMANIFEST}: SHA-256 {tm_digest} differs from the catalog's {tagmanifest_sha256}")
        return inv
    try:
        tags = parse_manifest(tm)
    except (UnicodeDecodeError, ValueError) as e:
        inv.problems.append(f"{TAGMANIFEST}: unreadable ({e})")
        return inv
    inv.expected.update(tags)
    inv.expected[TAGMANIFEST] = tm_digest
    if MANIFEST not in tags:
        inv.problems.append(f"{TAGMANIFEST} does not list {MANIFEST}")
        return inv
    try:
        m = read(MANIFEST)
    except (OSError, FileNotFoundError) as e:
        inv.problems.append(f"{MANIFEST}: cannot be read ({e})")
        return inv
    if hashlib.sha256(m).hexdigest() != tags[MANIFEST]:
        inv.problems.append(f"{MANIFEST}: SHA-256 differs from the tag manifest")
        return inv
    inv.expected.update(parse_manifest(m))
    return inv


def compare(expected: dict[str, str], got: Iterable[tuple[str, str]],
            unlisted: frozenset[str] = frozenset()) -> list[dict[str, str]]:
    """Differences between the expected digests and what was read: [{path, problem, expected, found}].
    problem is one of: corrupted, missing, unexpected. Files in `unlisted` are not judged here."""
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    for path, digest in got:
        seen.add(path)
        if path in unlisted:
            continue
        want = expected.get(path)
        if want is None:
            out.append({"path": path, "problem": "unexpected", "expected": "", "found": digest})
        elif want != digest:
            out.append({"path": path, "problem": "corrupted", "expected": want, "found": digest})
    for path in sorted(set(expected) - seen):
        out.append({"path": path, "problem": "missing", "expected": expected[path], "found": ""})
    return out


def root_digests(bag: Path) -> dict[str, str]:
    """{name: sha256} of the files at a local bag's root (the small tag files), for `add_unlisted`."""
    from ..digest import hash_file

    return {p.name: hash_file(p, ("sha256",))["sha256"] for p in bag.iterdir() if p.is_file()}


def add_unlisted(inv: Inventory, root_digests: dict[str, str]) -> None:
    """Complete `inv` with the files at the bag's root that no SHA-256 manifest lists, from the source's own
    digests ({name: sha256}): the signature and other tag manifests are expected as they are in the source.
    Any other unlisted file at the root is a problem of the source."""
    for name, digest in root_digests.items():
        if name in inv.expected:
            continue
        if is_unlisted(name):
            inv.expected[name] = digest
        else:
            inv.problems.append(f"{name}: a file at the root of the bag that no manifest lists")
