"""A local tier: a folder on this machine, a second disk or a NAS mount.

An absent folder is an unmounted disk: the tier is unreachable, and it is never created here (creating it would
fill the mount point's parent disk and hide the fault). Trees are staged in `<root>/.staging/<random>/`, on the
same filesystem as their destination, fsynced, then published with one rename: a reader sees the whole tree or
nothing. Free space comes from psutil.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

import psutil

from ..atomic import fsync_dir, fsync_tree
from ..digest import CHUNK, copy_and_hash
from ..errors import ConfigError, StorageError
from .base import AIPS_PREFIX, FileDigest, FileInfo, Tier, TierConflict, TierFull, TierUnreachable, clean_rel

STAGING = ".staging"
MARKER = ".preserve-tier"   # written when the tier is set up; an empty folder without it is an unmounted disk


def check_local_root(name: str, root: Path) -> None:
    """Raise TierUnreachable unless `root` is a usable tier folder.

    Absent: an unmounted disk or NAS. Present but empty and without the marker: the bare mount point of an
    unmounted disk (writing there would fill the system disk and hide the fault). A folder with content but no
    marker (made before markers existed) is accepted."""
    if not root.is_dir():
        raise TierUnreachable(f"Tier '{name}' is not reachable: the folder {root} is absent "
                              "(an unmounted disk or NAS?).",
                              hint="Mount the disk or fix the tier's path in preserve.toml, then run the command "
                                   "again (`preserve replicate` catches up the copies).")
    if not os.access(root, os.R_OK | os.W_OK | os.X_OK):
        raise TierUnreachable(f"Tier '{name}': the folder {root} is not readable and writable by this user "
                              "(mounted read-only?).", hint="Check its mount and permissions, then run the command "
                                                            "again.")
    if not (root / MARKER).is_file() and not any(os.scandir(root)):
        raise TierUnreachable(f"Tier '{name}' is not reachable: {root} is an empty folder without the {MARKER} "
                              "marker (the mount point of an unmounted disk?).",
                              hint=f"Mount the disk. If this is a new, empty disk for the tier, run "
                                   f"`preserve tiers init {name}` first.")


def write_marker(name: str, root: Path) -> None:
    """Mark a folder as the tier `name` (the folder must exist)."""
    from ..atomic import write_text

    write_text(root / MARKER, json.dumps({"tier": name, "software": "preserve"}) + "\n")


class LocalTier(Tier):
    kind = "local"
    atomic_publish = True

    def __init__(self, name: str, root: Path, fsync: bool = True):
        super().__init__(name)
        self.root_path = Path(root)
        self.fsync = fsync

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any], repo_root: Path) -> "LocalTier":
        path = spec.get("path")
        if not isinstance(path, str) or not path.strip():
            raise ConfigError(f"Tier '{name}' (kind local) has no path.",
                              hint=f'Set path = "/mnt/nas/preserve" (or a path relative to the repository) in '
                                   f"[tiers.{name}] of preserve.toml.")
        p = Path(path)
        return cls(name, p if p.is_absolute() else Path(repo_root) / p, bool(spec.get("fsync", True)))

    @property
    def location(self) -> str:
        return str(self.root_path)

    def url(self, rel: str) -> str:
        return str(self.root_path / clean_rel(rel))

    def _p(self, rel: str) -> Path:
        return self.root_path / clean_rel(rel)

    # --- reachability and capacity ------------------------------------------------------------------------
    def check(self) -> None:
        check_local_root(self.name, self.root_path)

    def initialise(self) -> None:
        """Create the tier's folder (its parent must exist: a missing mount is not papered over) and its marker."""
        if not self.root_path.parent.is_dir():
            raise TierUnreachable(f"Tier '{self.name}': {self.root_path.parent} is absent.",
                                  hint="Mount the disk first, then run `preserve tiers init` again.")
        self.root_path.mkdir(exist_ok=True)
        if not (self.root_path / MARKER).is_file():
            write_marker(self.name, self.root_path)

    def free_space(self) -> int | None:
        self.check()
        return psutil.disk_usage(str(self.root_path)).free

    def total_space(self) -> int | None:
        self.check()
        return psutil.disk_usage(str(self.root_path)).total

    # --- reading ------------------------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        self.check()
        return self._p(rel).exists()

    def stat(self, rel: str) -> FileInfo | None:
        p = self._p(rel)
        try:
            st = p.stat()
        except FileNotFoundError:
            self.check()
            return None
        return FileInfo(clean_rel(rel), st.st_size) if p.is_file() else None

    def list(self, rel: str = "") -> Iterator[FileInfo]:
        self.check()
        rel = clean_rel(rel)
        top = self._p(rel)
        if top.is_file():
            yield FileInfo(rel, top.stat().st_size)
            return
        if not top.is_dir():
            return
        yield from self._walk(top, rel)

    def _walk(self, folder: Path, rel: str) -> Iterator[FileInfo]:
        """Sorted, depth first, one directory in memory at a time; the staging area is not part of the tier."""
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for e in entries:
            if not rel and e.name in (STAGING, MARKER):  # the tier's own bookkeeping, not its content
                continue
            child = f"{rel}/{e.name}" if rel else e.name
            if e.is_dir(follow_symlinks=False):
                yield from self._walk(Path(e.path), child)
            elif e.is_file(follow_symlinks=False):
                yield FileInfo(child, e.stat(follow_symlinks=False).st_size)

    def aip_paths(self) -> set[str]:
        """Walk the five fan-out levels only (aips/ab/cd/<uuid>/vN) and look for each version's bagit.txt: one
        directory listing per AIP, not one entry per file."""
        self.check()
        found: set[str] = set()
        top = self.root_path / AIPS_PREFIX
        for a in _subdirs(top):
            for b in _subdirs(a):
                for u in _subdirs(b):
                    for v in _subdirs(u):
                        if v.name.startswith("v") and (v / "bagit.txt").is_file():
                            found.add(v.relative_to(self.root_path).as_posix())
        return found

    def open(self, rel: str) -> BinaryIO:
        p = self._p(rel)
        if not p.is_file():
            self.check()
            raise FileNotFoundError(f"{self.name}:{clean_rel(rel)}")
        return open(p, "rb")

    def get(self, rel: str, dest: Path) -> None:
        with self.open(rel) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)

    # --- writing ------------------------------------------------------------------------------------------
    def clean_staging(self) -> list[str]:
        """Remove what interrupted writes left in the staging area (call only while no write runs: the
        replication lock). Returns the names removed."""
        stage = self.root_path / STAGING
        if not stage.is_dir():
            return []
        gone = []
        for p in stage.iterdir():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            gone.append(p.name)
        return gone

    def _staging(self) -> Path:
        d = self.root_path / STAGING / uuid.uuid4().hex
        d.mkdir(parents=True)
        return d

    def put_file(self, src: Path, rel: str) -> FileDigest:
        self.check()
        rel = clean_rel(rel)
        size = Path(src).stat().st_size
        self.ensure_room(size)
        stage = self._staging()
        try:
            tmp = stage / "file"
            d = copy_and_hash(Path(src), tmp, ("sha256",), self.fsync)
            final = self._p(rel)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            if self.fsync:
                fsync_dir(final.parent)
            return FileDigest(rel, d.size, dict(d.values))
        except OSError as e:
            raise _os_error(self, e) from e
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def put_tree(self, base: Path, rel: str, algorithms: Iterable[str] = ("sha256",),
                 progress=None) -> list[FileDigest]:
        self.check()
        rel = clean_rel(rel)
        src = Path(base) / rel
        final = self._p(rel)
        if final.exists():
            raise TierConflict(f"Tier '{self.name}' already holds {rel}; a copy is never overwritten.",
                               hint="Delete the existing copy first if it is damaged (`preserve repair`).")
        files = sorted(p for p in src.rglob("*") if p.is_file())
        self.ensure_room(sum(p.stat().st_size for p in files))
        algorithms = tuple(algorithms)
        stage = self._staging()
        out: list[FileDigest] = []
        try:
            tree = stage / "tree"
            tree.mkdir()
            for p in sorted(d for d in src.rglob("*") if d.is_dir()):
                (tree / p.relative_to(src)).mkdir(parents=True, exist_ok=True)
            for p in files:
                name = p.relative_to(src).as_posix()
                d = copy_and_hash(p, tree / name, algorithms, False, progress)  # fsync_tree below syncs them
                out.append(FileDigest(name, d.size, dict(d.values)))
            if self.fsync:
                fsync_tree(tree)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tree, final)
            if self.fsync:
                fsync_dir(final.parent)
        except OSError as e:
            raise _os_error(self, e) from e
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return out

    def delete(self, rel: str) -> None:
        rel = clean_rel(rel)
        if not rel:
            raise StorageError(f"Refusing to delete the whole of tier '{self.name}'.")
        p = self._p(rel)
        try:
            if p.is_dir() and not p.is_symlink():
                # rename first, so that a crash mid-delete never leaves a half tree under its real name
                trash = self.root_path / STAGING / f"delete-{uuid.uuid4().hex}"
                trash.parent.mkdir(parents=True, exist_ok=True)
                os.rename(p, trash)
                shutil.rmtree(trash)
            else:
                p.unlink(missing_ok=True)
        except FileNotFoundError:
            return
        except OSError as e:
            raise _os_error(self, e) from e


def _subdirs(folder: Path) -> list[Path]:
    """Sub-folders whose names do not start with "." (staging and partial copies are never AIPs)."""
    try:
        return [Path(e.path) for e in os.scandir(folder)
                if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _os_error(tier: LocalTier, e: OSError) -> StorageError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return TierFull(f"Tier '{tier.name}' ran out of space while writing ({e.strerror}); nothing was left "
                        "behind.", hint=f"Free space on {tier.root_path}, then run `preserve replicate`.")
    if not tier.reachable()[0]:
        return TierUnreachable(f"Tier '{tier.name}' went away while writing: {tier.root_path} is absent.",
                               hint="Mount the disk again, then run `preserve replicate` to catch up.")
    return StorageError(f"Tier '{tier.name}': {e.strerror or e} ({e.filename or tier.root_path}).",
                        hint="Check the disk and its permissions, then run `preserve replicate`.")
