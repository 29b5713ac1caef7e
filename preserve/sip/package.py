"""Open a submission as a folder to read: a folder, a .zip of one, or a BagIt bag (either), safely.

Zips are checked (paths, links, bombs) before anything is extracted, into a scratch folder that `close()`
removes. A bag is validated first and its bag-info kept; the batch is its payload. Nothing here writes to
storage or the catalog.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..findings import Finding

SYSTEM_FILES = {".ds_store", "thumbs.db", "desktop.ini", "__macosx"}


@dataclass
class Package:
    source: Path
    kind: str = "folder"          # folder | zip | bag | zip+bag
    root: Path | None = None      # the batch root: where the workbook is
    bag_info: dict = field(default_factory=dict)
    bag_root: Path | None = None
    findings: list[Finding] = field(default_factory=list)
    scratch: Path | None = None

    @property
    def readable(self) -> bool:
        return self.root is not None

    def close(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def __enter__(self) -> "Package":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _descend(root: Path) -> Path:
    """Officers zip the batch folder itself: step into a single top-level folder that holds everything."""
    while True:
        entries = [p for p in root.iterdir() if p.name.lower() not in SYSTEM_FILES]
        if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
            root = entries[0]
        else:
            return root


def open_package(source: Path, scratch_parent: Path | None = None, *, allow_holey: bool = False,
                 limits=None, check_bag_digests: bool = True) -> Package:
    from . import bagcheck, safety

    source = Path(source)
    if not source.exists():
        raise UsageError(f"No such file or folder: {source}", hint="Give the path of a scan batch folder, a .zip or a BagIt bag.")
    pkg = Package(source=source.resolve())
    if source.is_file():
        if not zipfile.is_zipfile(source):
            pkg.findings.append(Finding("E-SIP-UNSUPPORTED", source.name, {"detail": "not a folder and not a .zip file"}))
            return pkg
        pkg.kind = "zip"
        if scratch_parent is not None:
            scratch_parent.mkdir(parents=True, exist_ok=True)
        pkg.scratch = Path(tempfile.mkdtemp(prefix="sip-", dir=scratch_parent))
        dest = pkg.scratch / "x"
        dest.mkdir()
        kwargs = {"limits": limits} if limits is not None else {}
        pkg.findings.extend(safety.extract_zip(source, dest, **kwargs))
        if any(f.is_error for f in pkg.findings):
            return pkg
        root = _descend(dest)
    else:
        pkg.findings.extend(safety.check_tree(source))
        if any(f.code in ("E-PATH-LINK", "E-PATH-SPECIAL") for f in pkg.findings):
            # never follow links out of a batch: read nothing further
            return pkg
        root = _descend(pkg.source)
    if bagcheck.is_bag(root):
        pkg.kind = "zip+bag" if pkg.kind == "zip" else "bag"
        pkg.bag_root = root
        result = bagcheck.check_bag(root, allow_holey=allow_holey, fast=not check_bag_digests)
        pkg.findings.extend(result.findings)
        pkg.bag_info = result.bag_info
        if not (root / "data").is_dir():
            return pkg
        root = _descend(root / "data")
    pkg.root = root
    return pkg
