"""The one storage interface every tier kind implements (local, memory, sftp, s3 through fsspec; restic).

Paths on a tier are relative POSIX paths ("aips/ab/cd/<uuid>/v1/bagit.txt"), never absolute, never with "..".
An AIP is a tree: it is written with `put_tree` (staged, then published in one step where the kind allows),
read back with `read_tree` (every file streamed and hashed in one pass), and removed with `delete`.

Errors:
- `TierUnreachable`: the tier cannot be reached at all (absent mount, host down, bad credentials, restic
  repository missing). Its copies are *unknown*, never "missing".
- `TierFull`: a write was not started because it cannot fit.
- `TierConflict`: the target already exists.
- any other `StorageError`: the operation failed; nothing partial is left behind by `put_*`.
"""

from __future__ import annotations

import posixpath
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

from ..errors import StorageError

AIPS_PREFIX = "aips"


class TierUnreachable(StorageError):
    """The tier cannot be reached (unmounted, host down, repository missing, wrong password…)."""


class TierFull(StorageError):
    """A write was refused before it started because the tier has not enough free space."""


class TierConflict(StorageError):
    """The target path already exists on the tier."""


@dataclass(frozen=True)
class FileInfo:
    path: str   # relative to the tier root (list) or to the tree (read_tree)
    size: int


KEEP_MAX = 64 << 20  # the most bytes of one file `read_tree(keep=…)` hands back (tag files are small)


@dataclass(frozen=True)
class FileDigest:
    path: str                  # relative to the tree that was read or written
    size: int
    digests: dict[str, str]    # algorithm -> hex
    content: bytes | None = None  # the file's bytes, when read_tree was asked to keep them


def hash_keeping(stream: BinaryIO, algorithms: Iterable[str], keep: bool, chunk_size: int | None = None,
                 on_read: Callable[[int], None] | None = None, sink: BinaryIO | None = None
                 ) -> tuple[int, dict[str, str], bytes | None]:
    """Hash a stream in one pass; with `keep`, also return its bytes (up to KEEP_MAX, else None).
    `on_read(n)` is told of every read (an I/O budget); `sink` gets every byte written to it (a copy hashed
    while it is made)."""
    from ..digest import CHUNK, MultiHasher

    mh = MultiHasher(algorithms)
    kept: bytearray | None = bytearray() if keep else None
    buf = bytearray(chunk_size or CHUNK)
    view = memoryview(buf)
    readinto = getattr(stream, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(buf)
            chunk = view[:n] if n else b""
        else:
            chunk = stream.read(len(buf))
            n = len(chunk)
        if not n:
            break
        mh.update(chunk)
        if sink is not None:
            sink.write(chunk)
        if kept is not None:
            kept += chunk
            if len(kept) > KEEP_MAX:
                kept = None
        if on_read is not None:
            on_read(n)
    d = mh.result()
    return d.size, dict(d.values), bytes(kept) if kept is not None else None


def clean_rel(rel: str) -> str:
    """Normalise a tier-relative path; refuse absolute paths and '..'."""
    given = rel
    rel = rel.replace("\\", "/")
    if rel.startswith("/"):
        raise StorageError(f"unsafe path on a tier: {given!r} (absolute)")
    rel = rel.strip("/")
    norm = posixpath.normpath(rel) if rel else ""
    if norm in (".", ""):
        return ""
    if norm.startswith("../") or norm == "..":
        raise StorageError(f"unsafe path on a tier: {given!r}")
    return norm


class Tier(ABC):
    """A named storage location. Subclasses set `kind` and `atomic_publish`."""

    kind: str = "?"
    atomic_publish: bool = True   # put_tree makes the whole tree appear in one step

    def __init__(self, name: str):
        self.name = name

    # --- identity -----------------------------------------------------------------------------------------
    @property
    @abstractmethod
    def location(self) -> str:
        """Where the tier is, for people and replica rows (a path or URL; never a secret)."""

    def url(self, rel: str) -> str:
        """Where one path on the tier is (for replica rows)."""
        return f"{self.location.rstrip('/')}/{clean_rel(rel)}"

    # --- reachability and capacity ------------------------------------------------------------------------
    @abstractmethod
    def check(self) -> None:
        """Raise TierUnreachable (with a hint) when the tier cannot be used now; never create the tier."""

    def reachable(self) -> tuple[bool, str]:
        try:
            self.check()
        except StorageError as e:
            return False, str(e).split("\n")[0]
        return True, ""

    @abstractmethod
    def free_space(self) -> int | None:
        """Bytes free for new data, or None when the kind cannot tell (S3)."""

    def ensure_room(self, nbytes: int, margin: int = 0) -> None:
        """Refuse (TierFull) a write of `nbytes` that cannot fit; `margin` bytes must stay free afterwards."""
        free = self.free_space()
        if free is not None and nbytes + margin > free:
            raise TierFull(f"Tier '{self.name}' has {free} bytes free; writing {nbytes} bytes "
                           f"(keeping {margin} free) does not fit.",
                           hint=f"Free space on tier '{self.name}' or add capacity, then run "
                                "`preserve replicate` to catch up.")

    # --- reading ------------------------------------------------------------------------------------------
    @abstractmethod
    def exists(self, rel: str) -> bool:
        """A file or a tree exists at rel."""

    @abstractmethod
    def stat(self, rel: str) -> FileInfo | None:
        """The file at rel, or None."""

    @abstractmethod
    def list(self, rel: str = "") -> Iterator[FileInfo]:
        """Every file under rel, recursively, paths relative to the tier root, sorted."""

    @abstractmethod
    def open(self, rel: str) -> BinaryIO:
        """A binary reader of one file. Raise FileNotFoundError when it is not there."""

    def get(self, rel: str, dest: Path) -> None:
        """Copy one file to a local path."""
        import shutil

        with self.open(rel) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)

    def get_tree(self, rel: str, dest: Path) -> None:
        """Copy the tree at rel to dest/rel on local disk (a source for writing it elsewhere)."""
        for info in self.list(rel):
            target = Path(dest) / info.path
            target.parent.mkdir(parents=True, exist_ok=True)
            self.get(info.path, target)

    def fetch_tree(self, rel: str, dest: Path, algorithms: Iterable[str] = ("sha256",),
                   keep: Callable[[str], bool] | None = None) -> list[FileDigest]:
        """Copy the tree at rel into the local folder dest (dest/<path in the tree>), hashing every file as it is
        written: the digests are those of the bytes now on local disk, from one read of the tier. `dest` must
        not hold the files yet. Paths in the result are relative to the tree, as in read_tree."""
        rel = clean_rel(rel)
        out = []
        for info in self.list(rel):
            name = info.path[len(rel) + 1:] if rel else info.path
            out.append(self.copy_hashed(self.open(info.path), name, Path(dest), tuple(algorithms), keep))
        if not out:
            raise FileNotFoundError(f"{self.name}:{rel}")
        return out

    @staticmethod
    def copy_hashed(src: BinaryIO, name: str, dest: Path, algorithms: tuple[str, ...],
                    keep: Callable[[str], bool] | None) -> FileDigest:
        """One file of a tree, from an open stream, to dest/<name>, hashed as it is written (closes `src`)."""
        target = dest / clean_rel(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with src, open(target, "xb") as out:
            size, digests, content = hash_keeping(src, algorithms, bool(keep and keep(name)), sink=out)
        return FileDigest(name, size, digests, content)

    def read_tree(self, rel: str, algorithms: Iterable[str] = ("sha256",),
                  keep: Callable[[str], bool] | None = None) -> Iterator[FileDigest]:
        """Stream every file of the tree at rel, hashing each in one pass; paths relative to the tree.
        `keep(path)` names the (small) files whose bytes are handed back too, read in that same pass.
        Raises FileNotFoundError when the tree is not there."""
        rel = clean_rel(rel)
        algorithms = tuple(algorithms)
        files = list(self.list(rel))
        if not files and not self.exists(rel):
            raise FileNotFoundError(rel)
        for info in files:
            name = info.path[len(rel) + 1:] if rel else info.path
            with self.open(info.path) as f:
                size, digests, content = hash_keeping(f, algorithms, bool(keep and keep(name)))
            yield FileDigest(name, size, digests, content)

    def aip_paths(self) -> set[str]:
        """Relative paths of the AIP versions held: {"aips/ab/cd/<uuid>/v1", …}."""
        found: set[str] = set()
        for info in self.list(AIPS_PREFIX):
            parts = info.path.split("/")
            # a tree counts once its bagit.txt is there (kinds without atomic publish write it last); names
            # starting with "." are staging or partial copies, never AIPs
            if (len(parts) == 6 and parts[5] == "bagit.txt" and parts[4].startswith("v")
                    and not any(p.startswith(".") for p in parts[:5])):
                found.add("/".join(parts[:5]))
        return found

    # --- writing ------------------------------------------------------------------------------------------
    @abstractmethod
    def put_file(self, src: Path, rel: str) -> FileDigest:
        """Write one local file at rel (staged, then renamed where the kind allows); returns what was written,
        hashed while copying (sha256). Replaces an existing file."""

    @abstractmethod
    def put_tree(self, base: Path, rel: str, algorithms: Iterable[str] = ("sha256",),
                 progress=None) -> list[FileDigest]:
        """Copy the local tree base/rel to rel on the tier, hashing every file while copying.

        Staged under a temporary name and published in one step where the kind allows (`atomic_publish`);
        on any failure the staged copy is removed and nothing is left at rel. Raises TierConflict when rel
        already exists, TierFull before starting when it cannot fit. `progress` (preserve.progress.Progress)
        is advanced by bytes."""

    def put_trees(self, base: Path, rels: list[str], algorithms: Iterable[str] = ("sha256",),
                  progress=None) -> dict[str, list[FileDigest]]:
        """Several trees; kinds with a per-call cost (restic) do them in one call. Stops at the first error;
        trees already written stay (each is whole)."""
        return {rel: self.put_tree(base, rel, algorithms, progress) for rel in rels}

    @abstractmethod
    def delete(self, rel: str) -> None:
        """Remove the file or tree at rel; nothing there is not an error."""

    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> "Tier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.location}>"
