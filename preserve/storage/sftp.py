"""The `sftp` tier: a folder on an SFTP server through paramiko and fsspec's SFTP filesystem (shared code in
storage.remote).

Spec keys of [tiers.NAME] (relative file paths are taken from the repository root; unknown keys are refused,
so a misspelt `known_hosts` cannot silently weaken host-key checking):
  sftp    host, user, key (private key file, no passphrase), path (absolute, on the server): required;
          port = 22; timeout = 10 (seconds: connect, banner, auth and every SFTP request);
          known_hosts: required unless insecure_host_key = true. With known_hosts the server's key must be in
          that file (paramiko RejectPolicy); insecure_host_key = true accepts any key (AutoAddPolicy, never
          saved): a man in the middle would go unnoticed, so it is for test benches only.

Publishing a tree uploads it under <path>/.staging/<random>/ and renames it into place in one step.
Opening the tier never connects; the first operation connects once and the connection is reused (and remade
when it has dropped). An absent base path is `TierUnreachable`, like an unmounted disk.
"""

from __future__ import annotations

import posixpath
import socket
import stat as statmod
from pathlib import Path
from typing import Any

import paramiko
from fsspec.implementations.sftp import SFTPFileSystem
from paramiko.ssh_exception import NoValidConnectionsError

from ..errors import ConfigError
from .base import AIPS_PREFIX
from .remote import BAG_DECLARATION, FsspecTier, require_setting, spec_file

SFTP_PREFETCH_REQUESTS = 64    # 64 × 32 KiB in flight while reading


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
    spec_keys = frozenset({"kind", "host", "port", "user", "key", "path", "known_hosts", "insecure_host_key",
                           "timeout"})

    def __init__(self, name: str, *, host: str, port: int, user: str, key: Path, path: str,
                 known_hosts: Path | None, timeout: float):
        super().__init__(name, path)
        self.host, self.port, self.user, self.key = host, port, user, key
        self.known_hosts, self.timeout = known_hosts, timeout

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any], root: Path) -> "SftpTier":
        path = require_setting(name, spec, "path")
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
        return cls(name, host=require_setting(name, spec, "host"), port=port, user=require_setting(name, spec, "user"),
                   key=spec_file(root, require_setting(name, spec, "key")), path=path,
                   known_hosts=spec_file(root, str(known)) if known else None, timeout=timeout)

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
