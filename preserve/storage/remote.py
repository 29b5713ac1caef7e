"""Tiers over fsspec: `memory` (tests), `sftp` (paramiko) and `s3` (s3fs).

Spec keys of [tiers.NAME] (relative file paths are taken from the repository root; unknown keys are refused,
so a misspelt `known_hosts` cannot silently weaken host-key checking):
  memory  path (required, e.g. "/preserve-test"; the fsspec memory store is process-global, so every memory
          tier needs a path of its own)
  sftp    host, user, key (private key file, no passphrase), path (absolute, on the server): required;
          port = 22; timeout = 10 (seconds: connect, banner, auth and every SFTP request);
          known_hosts: required unless insecure_host_key = true. With known_hosts the server's key must be in
          that file (paramiko RejectPolicy); insecure_host_key = true accepts any key (AutoAddPolicy, never
          saved): a man in the middle would go unnoticed, so it is for test benches only.
  s3      bucket (required); endpoint (AWS when absent); prefix = ""; region; timeout = 10 (connect);
          access_key + secret_key_file (both or neither; neither = botocore's usual chain: AWS_* variables…)

Publishing a tree: memory and sftp upload it under <path>/.staging/<random>/ and rename it into place in one
step (`atomic_publish`). S3 has no rename: files go to their final keys with the tree's bagit.txt last (a tree
without bagit.txt is not a bag, and `aip_paths` does not count it), and a failure deletes every key written.
Opening a tier never connects; the first operation connects once and the connection is reused (and remade
when it has dropped). An absent base path or bucket is `TierUnreachable`, like an unmounted disk.
"""

from __future__ import annotations

import io
import os
import posixpath
import socket
import stat as statmod
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

import paramiko
from fsspec.implementations.sftp import SFTPFileSystem
from fsspec.spec import AbstractBufferedFile
from paramiko.ssh_exception import NoValidConnectionsError

from ..digest import CHUNK, MultiHasher
from ..errors import ConfigError, StorageError
from ..progress import Progress
from .base import AIPS_PREFIX, FileDigest, FileInfo, Tier, TierConflict, TierUnreachable, clean_rel

STAGING = ".staging"
BAG_DECLARATION = "bagit.txt"
S3_BLOCK = 16 * CHUNK          # multipart part / read-ahead size: 16 MiB parts allow files up to 160 GB
SFTP_PREFETCH_REQUESTS = 64    # 64 × 32 KiB in flight while reading

_KEYS = {
    "memory": {"kind", "path"},
    "sftp": {"kind", "host", "port", "user", "key", "path", "known_hosts", "insecure_host_key", "timeout"},
    "s3": {"kind", "endpoint", "bucket", "prefix", "region", "access_key", "secret_key_file", "timeout"},
}


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
        unknown = sorted(set(spec) - _KEYS[kind])
        if unknown:
            raise ConfigError(f"Tier '{name}' ({kind}) has unknown settings: {', '.join(unknown)}.",
                              hint=f"Settings of kind {kind}: {', '.join(sorted(_KEYS[kind]))}.")
        return _KINDS[str(kind)].from_spec(name, spec, Path(root))

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


def _require(name: str, spec: dict[str, Any], key: str) -> str:
    value = spec.get(key)
    if value is None or value == "":
        raise ConfigError(f"Tier '{name}' (kind {spec.get('kind')}) needs the setting '{key}'.",
                          hint=f"Set {key} in [tiers.{name}] of preserve.toml.")
    return str(value)


def _file(root: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else root / p


class MemoryTier(FsspecTier):
    """fsspec's in-memory filesystem (tests and demos). Its store is process-global: the base path is the tier."""

    kind = "memory"
    atomic_publish = True

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any], root: Path) -> "MemoryTier":
        return cls(name, "/" + _require(name, spec, "path").strip("/"))

    @property
    def location(self) -> str:
        return f"memory://{self.root.lstrip('/')}"

    @property
    def hint(self) -> str:
        return f"Create {self.root} in the in-memory filesystem first (memory tiers are for tests)."

    def _connect(self) -> Any:
        import fsspec

        return fsspec.filesystem("memory")

    def _check_base(self, fs: Any) -> None:
        if not fs.isdir(self.root):
            raise self._down(f"{self.root} does not exist")


class _KnownHostsSFTP(SFTPFileSystem):
    """fsspec's SFTP filesystem whose client checks the server against our known_hosts file (fsspec's own
    client loads none, so RejectPolicy alone would refuse every server) and never asks an agent or ~/.ssh."""

    def __init__(self, host: str, known_hosts: str | None, **ssh_kwargs: Any):
        self._known_hosts = known_hosts
        super().__init__(host, **ssh_kwargs)

    def _connect(self) -> None:
        self.client = paramiko.SSHClient()
        if self._known_hosts is not None:
            self.client.load_host_keys(self._known_hosts)
            self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:   # insecure_host_key = true: any key is accepted (and not saved)
            self.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            self.client.connect(self.host, **self.ssh_kwargs)
            self.ftp = self.client.open_sftp()
        except BaseException:
            self.client.close()   # paramiko leaves the transport thread running after a failed login
            raise
        self.ftp.get_channel().settimeout(self.ssh_kwargs.get("timeout"))


class SftpTier(FsspecTier):
    """A folder on an SFTP server (paramiko, key authentication only)."""

    kind = "sftp"
    atomic_publish = True
    lib_errors = (paramiko.SSHException,)

    def __init__(self, name: str, *, host: str, port: int, user: str, key: Path, path: str,
                 known_hosts: Path | None, timeout: float):
        super().__init__(name, path)
        self.host, self.port, self.user, self.key = host, port, user, key
        self.known_hosts, self.timeout = known_hosts, timeout

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any], root: Path) -> "SftpTier":
        path = _require(name, spec, "path")
        if not path.startswith("/"):
            raise ConfigError(f"Tier '{name}': path {path!r} must be absolute on the SFTP server.",
                              hint=f"Set path = \"/srv/preserve\" (for example) in [tiers.{name}].")
        known = spec.get("known_hosts")
        if not known and spec.get("insecure_host_key") is not True:
            raise ConfigError(f"Tier '{name}' names no known_hosts file: the SFTP server could not be authenticated.",
                              hint=f"Add known_hosts = \"keys/known_hosts\" to [tiers.{name}] (make it with "
                                   "`ssh-keyscan -p PORT HOST` and check the key with the server's administrator), "
                                   "or set insecure_host_key = true on a test bench only.")
        try:
            port, timeout = int(spec.get("port", 22)), float(spec.get("timeout", 10))
        except (TypeError, ValueError):
            raise ConfigError(f"Tier '{name}': port and timeout must be numbers.",
                              hint=f"Fix [tiers.{name}] in preserve.toml.") from None
        return cls(name, host=_require(name, spec, "host"), port=port, user=_require(name, spec, "user"),
                   key=_file(root, _require(name, spec, "key")), path=path,
                   known_hosts=_file(root, str(known)) if known else None, timeout=timeout)

    @property
    def location(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sftp://{self.user}@{host}:{self.port}{self.root}"

    @property
    def hint(self) -> str:
        known = f"that {self.known_hosts} holds the server's host key" if self.known_hosts else "the host key"
        return (f"Check that {self.host}:{self.port} is up and answers SSH, that user '{self.user}' accepts the key "
                f"{self.key}, {known}, and that {self.root or '/'} exists on the server.")

    def _connect(self) -> Any:
        return _KnownHostsSFTP(self.host, str(self.known_hosts) if self.known_hosts else None,
                               skip_instance_cache=True, port=self.port, username=self.user,
                               key_filename=str(self.key), look_for_keys=False, allow_agent=False,
                               timeout=self.timeout, banner_timeout=self.timeout, auth_timeout=self.timeout,
                               channel_timeout=self.timeout)

    def _alive(self, fs: Any) -> bool:
        transport = fs.client.get_transport()
        return transport is not None and transport.is_active()

    def _disconnect(self, fs: Any) -> None:
        try:
            fs.ftp.close()
            fs.client.close()
        except (OSError, EOFError, paramiko.SSHException):
            pass

    def _unreachable(self, e: BaseException) -> bool:
        if isinstance(e, (paramiko.SSHException, EOFError, TimeoutError, ConnectionError, socket.gaierror,
                          NoValidConnectionsError)):
            return True
        # paramiko reports a dropped connection as a bare OSError ("Socket is closed")
        return isinstance(e, OSError) and not (self._fs is not None and self._alive(self._fs))

    def _check_base(self, fs: Any) -> None:
        try:
            st = fs.ftp.stat(self.root or "/")
        except FileNotFoundError:
            raise self._down(f"{self.root} does not exist on the server") from None
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise self._down(f"cannot read {self.root}: {e or type(e).__name__}") from e
        if not statmod.S_ISDIR(st.st_mode or 0):
            raise self._down(f"{self.root} on the server is not a folder")

    def _makedirs(self, fs: Any, path: str, made: set[str]) -> None:
        """mkdir each missing folder below the base (one request for a new folder, two for an existing one)."""
        current = self.root
        for part in path[len(self.root) + 1:].split("/") if path != self.root else []:
            current = f"{current}/{part}"
            if current in made:
                continue
            try:
                fs.ftp.mkdir(current)
            except OSError:
                if not statmod.S_ISDIR(fs.ftp.stat(current).st_mode or 0):
                    raise
            made.add(current)

    def _open_read(self, fs: Any, path: str, size: int) -> Any:
        f = fs.ftp.open(path, "rb")
        f.prefetch(size, SFTP_PREFETCH_REQUESTS)
        return f

    def _open_write(self, fs: Any, path: str) -> Any:
        f = fs.ftp.open(path, "wb")
        f.set_pipelined(True)
        return f

    def _rename(self, fs: Any, src: str, dst: str, replace: bool) -> None:
        """posix-rename@openssh.com when the server has it (paramiko cannot ask: it drops the server's extension
        list, so a refusal is taken as 'not supported'); else the plain SFTP rename, which refuses an existing
        target (a file is removed first when `replace`). A lost connection raises from the checks."""
        try:
            fs.ftp.posix_rename(src, dst)
        except OSError:
            if not _sftp_exists(fs, src):
                raise
            if _sftp_exists(fs, dst):
                if not replace:
                    raise
                fs.ftp.remove(dst)
            fs.ftp.rename(src, dst)

    def _publish(self, fs: Any, stage: str, final: str) -> None:
        self._rename(fs, stage, final, replace=False)

    def _replace(self, fs: Any, tmp: str, final: str) -> None:
        self._rename(fs, tmp, final, replace=True)

    def aip_paths(self) -> set[str]:
        """Walk aips/ab/cd/<uuid>/vN only (one listing per folder at those levels, not one per folder of every
        AIP); a version counts when its bagit.txt is there (every AIP is a bag; see S3Tier.aip_paths)."""
        with self._io("listing AIPs", missing=False):
            fs = self._conn()
            level = [self._path(AIPS_PREFIX)]
            if self._info(fs, level[0]) is None:
                return set()
            for _ in range(4):
                level = [e["name"] for d in level for e in _sftp_ls(fs, d) if e["type"] == "directory"]
            n = len(self.root) + 1
            return {d[n:] for d in level if posixpath.basename(d).startswith("v")
                    and _sftp_exists(fs, f"{d}/{BAG_DECLARATION}")}


def _sftp_exists(fs: Any, path: str) -> bool:
    try:
        fs.ftp.stat(path)
    except FileNotFoundError:
        return False
    return True


def _sftp_ls(fs: Any, path: str) -> list[dict[str, Any]]:
    try:
        return fs.ls(path, detail=True)
    except FileNotFoundError:
        return []


class S3Tier(FsspecTier):
    """A bucket (and optional key prefix) on S3 or an S3-compatible server (s3fs). No rename: not atomic."""

    kind = "s3"
    atomic_publish = False

    def __init__(self, name: str, *, endpoint: str | None, bucket: str, prefix: str, region: str | None,
                 access_key: str | None, secret_file: Path | None, timeout: float):
        super().__init__(name, f"{bucket}/{prefix.strip('/')}" if prefix.strip("/") else bucket)
        self.endpoint, self.bucket, self.region = endpoint, bucket, region
        self.access_key, self.secret_file, self.timeout = access_key, secret_file, timeout

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any], root: Path) -> "S3Tier":
        access, secret = spec.get("access_key"), spec.get("secret_key_file")
        if bool(access) != bool(secret):
            raise ConfigError(f"Tier '{name}' sets only one of access_key and secret_key_file.",
                              hint=f"Set both in [tiers.{name}], or neither to use the AWS_* environment variables.")
        try:
            timeout = float(spec.get("timeout", 10))
        except (TypeError, ValueError):
            raise ConfigError(f"Tier '{name}': timeout must be a number of seconds.",
                              hint=f"Fix [tiers.{name}] in preserve.toml.") from None
        return cls(name, endpoint=spec.get("endpoint") or None, bucket=_require(name, spec, "bucket"),
                   prefix=str(spec.get("prefix") or ""), region=spec.get("region") or None,
                   access_key=str(access) if access else None,
                   secret_file=_file(root, str(secret)) if secret else None, timeout=timeout)

    @property
    def location(self) -> str:
        return f"s3://{self.root}"

    @property
    def hint(self) -> str:
        creds = (f"access key {self.access_key} with the secret in {self.secret_file}" if self.access_key
                 else "the AWS_* credentials in the environment")
        return (f"Check the endpoint {self.endpoint or '(AWS)'}, that bucket '{self.bucket}' exists, and {creds}.")

    @property
    def lib_errors(self) -> tuple[type[BaseException], ...]:   # type: ignore[override]
        from botocore.exceptions import BotoCoreError, ClientError

        return (BotoCoreError, ClientError)

    def _connect(self) -> Any:
        import s3fs

        creds = {}
        if self.access_key and self.secret_file:
            creds = {"key": self.access_key, "secret": self.secret_file.read_text(encoding="utf-8").strip()}
        fs = s3fs.S3FileSystem(
            skip_instance_cache=True, use_listings_cache=False, **creds,
            client_kwargs={"endpoint_url": self.endpoint, "region_name": self.region},
            config_kwargs={"connect_timeout": self.timeout, "retries": {"total_max_attempts": 2}})
        fs.retries = 3   # s3fs's own retry loop (a class attribute, 5 by default) on top of botocore's
        return fs

    def _unreachable(self, e: BaseException) -> bool:
        from botocore import exceptions as bx

        return isinstance(e, (bx.ConnectionError, bx.HTTPClientError, bx.NoCredentialsError,
                              bx.PartialCredentialsError, bx.CredentialRetrievalError,
                              PermissionError, ConnectionError, TimeoutError))

    def _check_base(self, fs: Any) -> None:
        try:
            fs.call_s3("head_bucket", Bucket=self.bucket)
        except FileNotFoundError:
            raise self._down(f"bucket '{self.bucket}' does not exist") from None
        except PermissionError as e:
            raise self._down(f"access to bucket '{self.bucket}' refused ({e})") from e
        except (OSError, *self.lib_errors) as e:
            raise self._down(str(e) or type(e).__name__) from e

    def _makedirs(self, fs: Any, path: str, made: set[str]) -> None:
        """S3 has no folders."""

    def _open_read(self, fs: Any, path: str, size: int) -> Any:
        return fs.open(path, "rb", block_size=S3_BLOCK, cache_type="readahead")

    def _open_write(self, fs: Any, path: str) -> Any:
        return fs.open(path, "wb", block_size=S3_BLOCK)

    def _remove(self, fs: Any, paths: list[str]) -> None:
        """Bulk delete; each tree loses its bagit.txt first, so a half-deleted tree is never counted as held."""
        bags = [f"{p}/{BAG_DECLARATION}" for p in paths if _s3_isdir(fs, p)]
        for batch in (bags, paths):
            if batch:
                try:
                    fs.rm(batch, recursive=batch is paths)
                except FileNotFoundError:
                    pass

    def aip_paths(self) -> set[str]:
        """One listing; a version counts only when its bagit.txt is there (files reach their final keys one by
        one and bagit.txt is written last, so a tree without it is an interrupted write)."""
        files = {info.path for info in self.list(AIPS_PREFIX)}
        found = set()
        for p in files:
            parts = p.split("/")
            if len(parts) >= 6 and parts[4].startswith("v"):
                found.add("/".join(parts[:5]))
        return {p for p in found if f"{p}/{BAG_DECLARATION}" in files}


def _s3_isdir(fs: Any, path: str) -> bool:
    try:
        return fs.info(path)["type"] == "directory"
    except FileNotFoundError:
        return False


_KINDS: dict[str, type[FsspecTier]] = {"memory": MemoryTier, "sftp": SftpTier, "s3": S3Tier}
