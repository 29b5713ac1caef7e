"""Shared code of the tiers over fsspec: `memory` (tests; storage.memory), `sftp` (paramiko; storage.sftp) and `s3`
(s3fs; storage.s3). `FsspecTier.from_spec` picks the class by kind, importing its module only then.

Spec keys of [tiers.NAME] are described in each kind's module (relative file paths are taken from the repository
root; unknown keys are refused, so a misspelt `known_hosts` cannot silently weaken host-key checking).

Publishing a tree: memory and sftp upload it under <path>/.staging/<random>/ and rename it into place in one
step (`atomic_publish`). S3 has no rename: files go to their final keys with the tree's bagit.txt last (a tree
without bagit.txt is not a bag, and `aip_paths` does not count it), and a failure deletes every key written.
Opening a tier never connects; the first operation connects once and the connection is reused (and remade
when it has dropped). An absent base path or bucket is `TierUnreachable`, like an unmounted disk.
"""

from __future__ import annotations

import importlib
import io
import os
import posixpath
import stat as statmod
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from fsspec.spec import AbstractBufferedFile

from ..digest import CHUNK, MultiHasher
from ..errors import ConfigError, StorageError
from ..progress import Progress
from .base import FileDigest, FileInfo, Tier, TierConflict, TierUnreachable, clean_rel

STAGING = ".staging"
BAG_DECLARATION = "bagit.txt"

# kind -> (module of this package, class): imported on first use, so paramiko and s3fs load only when needed
_KINDS = {"memory": ("memory", "MemoryTier"), "sftp": ("sftp", "SftpTier"), "s3": ("s3", "S3Tier")}



def tree_rel(rel: str) -> str:
    """A path a tree may be written to or deleted at: never the tier root."""
    rel = clean_rel(rel)
    if not rel:
        raise StorageError("refusing to write or delete the whole tier (empty path)")
    return rel


@dataclass(frozen=True)
class Source:
    rel: str     # relative to the tree, POSIX
    path: Path
    size: int


def local_tree(src: Path) -> list[Source]:
    """The regular files of a local tree, sorted. Symlinks and special files are refused: an AIP holds regular
    files only, and a FIFO would hang the upload."""
    if not src.is_dir():
        raise StorageError(f"source tree {src} is not a folder")
    out: list[Source] = []
    try:
        for dirpath, dirnames, filenames in os.walk(src, onerror=_raise):
            for n in dirnames + filenames:
                p = Path(dirpath) / n
                st = p.lstat()
                if statmod.S_ISLNK(st.st_mode) or (n in filenames and not statmod.S_ISREG(st.st_mode)):
                    raise StorageError(f"{p} is not a regular file or folder; trees hold regular files only")
                if n in filenames:
                    out.append(Source(p.relative_to(src).as_posix(), p, st.st_size))
    except OSError as e:
        raise StorageError(f"cannot read source tree {src}: {e}") from e
    if not out:
        raise StorageError(f"source tree {src} holds no files")
    return sorted(out, key=lambda s: s.rel)


def _raise(e: OSError) -> None:
    raise e


def _chunks(path: Path) -> Iterator[bytes]:
    """The bytes of a local file in CHUNK pieces; a local read error is a StorageError (never 'unreachable')."""
    try:
        with open(path, "rb", buffering=0) as f:
            while chunk := f.read(CHUNK):
                yield chunk
    except OSError as e:
        raise StorageError(f"cannot read source file {path}: {e.strerror or e}") from e


class FsspecTier(Tier):
    """Common code; one subclass per kind supplies the connection, the base check and how to publish."""

    # library exceptions (besides OSError, EOFError) that become StorageError or TierUnreachable
    lib_errors: tuple[type[BaseException], ...] = ()

    # settings a [tiers.NAME] table of this kind may hold (others are refused by from_spec)
    spec_keys: frozenset[str] = frozenset()

    def __init__(self, name: str, root: str):
        super().__init__(name)
        self.root = root.rstrip("/")
        self._fs: Any = None
        self._orphans: list[str] = []   # staged copies that could not be removed when a write failed

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any], root: Path) -> "FsspecTier":
        kind = str(spec.get("kind"))
        if kind not in _KINDS:
            raise ConfigError(f"Tier '{name}' has kind {kind!r}, which is not an fsspec kind.",
                              hint=f"Use one of {', '.join(_KINDS)} in [tiers.{name}].")
        module, cls_name = _KINDS[kind]
        kind_cls: type[FsspecTier] = getattr(importlib.import_module(f".{module}", __package__), cls_name)
        unknown = sorted(set(spec) - kind_cls.spec_keys)
        if unknown:
            raise ConfigError(f"Tier '{name}' ({kind}) has unknown settings: {', '.join(unknown)}.",
                              hint=f"Settings of kind {kind}: {', '.join(sorted(kind_cls.spec_keys))}.")
        return kind_cls.from_spec(name, spec, Path(root))

    # --- hooks ----------------------------------------------------------------------------------------------
    @property
    def hint(self) -> str:
        """What to check when the tier cannot be reached."""
        return ""

    def _connect(self) -> Any:
        raise NotImplementedError

    def _alive(self, fs: Any) -> bool:
        return True

    def _disconnect(self, fs: Any) -> None:
        """Release the connection (nothing to do for memory; s3fs closes its session when collected)."""

    def _check_base(self, fs: Any) -> None:
        raise NotImplementedError

    def _unreachable(self, e: BaseException) -> bool:
        return False

    def _publish(self, fs: Any, stage: str, final: str) -> None:
        fs.mv(stage, final, recursive=True)

    def _makedirs(self, fs: Any, path: str, made: set[str]) -> None:
        if path not in made:
            fs.makedirs(path, exist_ok=True)
            made.add(path)

    def _open_read(self, fs: Any, path: str, size: int) -> Any:
        return fs.open(path, "rb")

    def _open_write(self, fs: Any, path: str) -> Any:
        return fs.open(path, "wb")

    def _remove(self, fs: Any, paths: list[str]) -> None:
        for p in paths:
            try:
                fs.rm(p, recursive=True)
            except FileNotFoundError:
                pass

    # --- connection and errors ------------------------------------------------------------------------------
    def _conn(self) -> Any:
        """The connection, made on first use (and again when it has dropped); the base is checked then."""
        if self._fs is not None and not self._alive(self._fs):
            self.close()
        if self._fs is None:
            try:
                fs = self._connect()
            except (OSError, EOFError, *self.lib_errors) as e:
                raise self._down(f"cannot connect: {e or type(e).__name__}") from e
            try:
                self._check_base(fs)
            except TierUnreachable:
                self._disconnect(fs)
                raise
            self._fs = fs
            self._sweep_orphans(fs)
        return self._fs

    def _down(self, detail: str) -> TierUnreachable:
        return TierUnreachable(f"Tier '{self.name}' ({self.location}) cannot be reached: {detail}", hint=self.hint)

    @contextmanager
    def _io(self, what: str, missing: bool = True) -> Iterator[None]:
        """Map library errors: a lost connection or refused credentials → TierUnreachable (and the connection is
        dropped so the next call reconnects); FileNotFoundError passes when `missing`; others → StorageError."""
        try:
            yield
        except (OSError, EOFError, *self.lib_errors) as e:
            if self._unreachable(e):
                self.close()
                raise self._down(f"{what}: {e or type(e).__name__}") from e
            if missing and isinstance(e, FileNotFoundError):
                raise
            raise StorageError(f"Tier '{self.name}': {what} failed: {e or type(e).__name__}") from e

    def close(self) -> None:
        fs, self._fs = self._fs, None
        if fs is not None:
            self._disconnect(fs)

    def _discard(self, paths: list[str]) -> None:
        """Best-effort removal after a failed write; what cannot be removed now is retried on reconnection."""
        fs = self._fs
        try:
            if fs is None or not self._alive(fs):
                raise ConnectionError("not connected")
            self._remove(fs, paths)
        except (OSError, EOFError, *self.lib_errors):
            self._orphans.extend(paths)

    def _sweep_orphans(self, fs: Any) -> None:
        pending, self._orphans = self._orphans, []
        if pending:
            self._discard(pending)

    def _path(self, rel: str) -> str:
        rel = clean_rel(rel)
        return f"{self.root}/{rel}" if rel else self.root

    # --- reachability and capacity --------------------------------------------------------------------------
    def check(self) -> None:
        with self._io("checking the tier"):
            self._check_base(self._conn())

    def free_space(self) -> int | None:
        return None   # SFTP has no statvfs in paramiko, S3 has no capacity, memory is bounded by RAM only

    # --- reading --------------------------------------------------------------------------------------------
    def _info(self, fs: Any, path: str) -> dict[str, Any] | None:
        """fs.info, or None when absent (after making sure the base itself is there: absent base = unreachable)."""
        try:
            return fs.info(path)
        except FileNotFoundError:
            self._check_base(fs)
            return None

    def exists(self, rel: str) -> bool:
        path = self._path(rel)
        with self._io(f"looking for {rel}", missing=False):
            return self._info(self._conn(), path) is not None

    def stat(self, rel: str) -> FileInfo | None:
        path = self._path(rel)
        with self._io(f"looking for {rel}", missing=False):
            info = self._info(self._conn(), path)
        return FileInfo(clean_rel(rel), int(info["size"])) if info and info["type"] == "file" else None

    def list(self, rel: str = "") -> Iterator[FileInfo]:
        path = self._path(rel)
        with self._io(f"listing {rel or 'the tier'}", missing=False):
            fs = self._conn()
            top = self._info(fs, path) if path != self.root else {"type": "directory"}
            if top is None or top["type"] != "directory":   # nothing, or a file: the file itself (as local tiers)
                return iter([FileInfo(clean_rel(rel), int(top["size"]))] if top else [])
            try:
                found = fs.find(path, detail=True)
            except FileNotFoundError:
                found = {}
            if not found:
                self._check_base(fs)
        n = len(self.root) + 1
        hidden = f"{self.root}/{STAGING}/"   # the staging area is not part of the tier (as for local tiers)
        files = sorted((p[n:], int(i["size"])) for p, i in found.items() if i["type"] == "file"
                       and p.startswith(path + "/") and (path != self.root or not p.startswith(hidden)))
        return iter([FileInfo(p, size) for p, size in files])

    def open(self, rel: str) -> BinaryIO:
        path = self._path(rel)
        with self._io(f"opening {rel}", missing=False):
            fs = self._conn()
            info = self._info(fs, path)
            if info is not None and info["type"] == "file":
                return _Reader(self, self._open_read(fs, path, int(info["size"])), f"reading {rel}")
        raise FileNotFoundError(f"{rel} on tier '{self.name}'")

    # --- writing --------------------------------------------------------------------------------------------
    def _upload(self, fs: Any, src: Source, dest: str, algorithms: tuple[str, ...],
                progress: Progress | None) -> FileDigest:
        """Copy one local file to dest, hashing the very chunks that are written (one read of the source)."""
        mh = MultiHasher(algorithms)
        f = self._open_write(fs, dest)
        try:
            for chunk in _chunks(src.path):
                mh.update(chunk)
                f.write(chunk)
                if progress is not None:
                    progress.advance(len(chunk))
        except BaseException:
            self._abandon(f)
            raise
        f.close()
        d = mh.result()
        return FileDigest(src.rel, d.size, dict(d.values))

    def _abandon(self, f: Any) -> None:
        """Drop a half-written remote file without publishing it (s3fs: abort the multipart upload)."""
        try:
            if isinstance(f, AbstractBufferedFile):
                f.discard()
                f.closed = True   # s3fs: a discarded file must not be committed by close() or __del__
            else:
                f.close()         # SFTP / memory: the half-written file is in the staging folder
        except (OSError, EOFError, ValueError, *self.lib_errors):
            pass

    def _upload_all(self, fs: Any, files: list[Source], dest: str, algorithms: tuple[str, ...],
                    progress: Progress | None) -> list[FileDigest]:
        made: set[str] = set()
        out = []
        for src in files:
            target = f"{dest}/{src.rel}"
            self._makedirs(fs, posixpath.dirname(target), made)
            out.append(self._upload(fs, src, target, algorithms, progress))
        return out

    def _start_write(self, rel: str, nbytes: int) -> Any:
        fs = self._conn()
        if self.exists(rel):
            raise TierConflict(f"Tier '{self.name}' already holds {rel}; it was left as it is.",
                               hint="Compare it with the source, or delete it first if it is damaged.")
        self.ensure_room(nbytes)
        return fs

    def put_tree(self, base: Path, rel: str, algorithms: Iterable[str] = ("sha256",),
                 progress: Progress | None = None) -> list[FileDigest]:
        rel = tree_rel(rel)
        files = local_tree(Path(base) / rel)
        algos = tuple(algorithms)
        with self._io(f"writing {rel}", missing=False):
            fs = self._start_write(rel, sum(f.size for f in files))
            if self.atomic_publish:
                return self._put_staged(fs, files, rel, algos, progress)
            return self._put_in_place(fs, files, rel, algos, progress)

    def _put_staged(self, fs: Any, files: list[Source], rel: str, algos: tuple[str, ...],
                    progress: Progress | None) -> list[FileDigest]:
        stage = f"{self.root}/{STAGING}/{uuid.uuid4().hex}"
        final = self._path(rel)
        try:
            out = self._upload_all(fs, files, stage, algos, progress)
            self._makedirs(fs, posixpath.dirname(final), set())
            self._publish(fs, stage, final)
        except BaseException:
            self._discard([stage])
            raise
        return out

    def _put_in_place(self, fs: Any, files: list[Source], rel: str, algos: tuple[str, ...],
                      progress: Progress | None) -> list[FileDigest]:
        """No rename (S3): each file to its final key, bagit.txt of the tree last; a failure deletes them all."""
        final = self._path(rel)
        order = sorted(files, key=lambda s: (s.rel == BAG_DECLARATION, s.rel))
        written: list[str] = []
        out = []
        try:
            for src in order:
                written.append(f"{final}/{src.rel}")
                out.append(self._upload(fs, src, written[-1], algos, progress))
        except BaseException:
            self._discard(written)
            raise
        return sorted(out, key=lambda d: d.path)

    def put_file(self, src: Path, rel: str) -> FileDigest:
        rel = tree_rel(rel)
        source = Source(posixpath.basename(rel), Path(src), Path(src).stat().st_size)
        final = self._path(rel)
        with self._io(f"writing {rel}", missing=False):
            fs = self._conn()
            self.ensure_room(source.size)
            self._makedirs(fs, posixpath.dirname(final), set())
            if not self.atomic_publish:   # an S3 object appears whole or not at all
                d = self._upload(fs, source, final, ("sha256",), None)
                return FileDigest(rel, d.size, d.digests)
            tmp = f"{self.root}/{STAGING}/{uuid.uuid4().hex}.part"
            try:
                self._makedirs(fs, posixpath.dirname(tmp), set())
                d = self._upload(fs, source, tmp, ("sha256",), None)
                self._replace(fs, tmp, final)
            except BaseException:
                self._discard([tmp])
                raise
        return FileDigest(rel, d.size, d.digests)

    def _replace(self, fs: Any, tmp: str, final: str) -> None:
        fs.mv(tmp, final)

    def delete(self, rel: str) -> None:
        rel = tree_rel(rel)
        path = self._path(rel)
        with self._io(f"deleting {rel}", missing=False):
            fs = self._conn()
            info = self._info(fs, path)
            if info is None:
                return
            if info["type"] == "directory" and self.atomic_publish:
                # move the tree out of the way first, so it never appears half-deleted at rel
                gone = f"{self.root}/{STAGING}/{uuid.uuid4().hex}.deleted"
                self._makedirs(fs, posixpath.dirname(gone), set())
                self._publish(fs, path, gone)
                self._discard([gone])   # rel is gone; a removal cut short is finished on reconnection
                return
            self._remove(fs, [path])


class _Reader(io.RawIOBase):
    """A file on a tier as a plain binary reader whose errors are the tier's (TierUnreachable, StorageError)."""

    def __init__(self, tier: FsspecTier, f: Any, what: str):
        super().__init__()
        self._tier, self._f, self._what = tier, f, what

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        with self._tier._io(self._what, missing=False):
            data = self._f.read(len(b))
        n = len(data)
        memoryview(b).cast("B")[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                with self._tier._io(self._what, missing=False):
                    self._f.close()
            finally:
                super().close()


def require_setting(name: str, spec: dict[str, Any], key: str) -> str:
    value = spec.get(key)
    if value is None or value == "":
        raise ConfigError(f"Tier '{name}' (kind {spec.get('kind')}) needs the setting '{key}'.",
                          hint=f"Set {key} in [tiers.{name}] of preserve.toml.")
    return str(value)


def spec_file(root: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else root / p
