"""Real servers for the storage tests: an OpenSSH sshd on 127.0.0.1 and moto's S3 server.

Both run on a free local port with throwaway keys and credentials; nothing outside the temporary folder is
touched except /run/sshd, which sshd insists on (its privilege-separation directory).
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

SSHD = Path("/usr/sbin/sshd")   # sshd refuses to run unless started by its absolute path
SSH_KEYGEN = shutil.which("ssh-keygen")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None,
                  log: Path | None = None) -> None:
    """Wait until host:port accepts a TCP connection; fail early with the server's log if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text() if log else ''}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s")


def keygen(path: Path) -> Path:
    """A new ed25519 key pair without passphrase at path (private) and path.pub."""
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "preserve-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path


def _wait_dead(procs: list[psutil.Process], timeout: float = 5.0) -> None:
    """Until every process is gone or a zombie (its sockets are closed then); psutil.wait_procs polls slowly
    for processes that are not our children."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in procs):
                return
        except psutil.NoSuchProcess:
            continue
        time.sleep(0.01)
    raise RuntimeError(f"sshd sessions still running after {timeout}s")


def sshd_missing() -> str | None:
    """Why a real sshd cannot be started here, or None."""
    if not SSHD.is_file():
        return f"OpenSSH server not installed ({SSHD} absent): SFTP tier tests need a real sshd"
    if SSH_KEYGEN is None:
        return "ssh-keygen not found: SFTP tier tests need it to make throwaway keys"
    return None


@dataclass
class SshServer:
    """One sshd serving SFTP (internal-sftp) to the current user with a throwaway key. stop()/start() let a test
    take the server away and bring it back on the same port with the same keys."""

    workdir: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    user: str = field(default_factory=getpass.getuser)
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host_key = keygen(self.workdir / "host_key")
        self.key = keygen(self.workdir / "client_key")
        self.other_key = keygen(self.workdir / "other_key")   # a key the server does not accept
        self.authorized_keys = self.workdir / "authorized_keys"
        self.authorized_keys.write_text(Path(f"{self.key}.pub").read_text())
        pub = Path(f"{self.host_key}.pub").read_text().split()
        self.known_hosts = self.workdir / "known_hosts"
        self.known_hosts.write_text(f"[{self.host}]:{self.port} {pub[0]} {pub[1]}\n")
        self.config = self.workdir / "sshd_config"
        self.log = self.workdir / "sshd.log"
        self.config.write_text("\n".join([
            f"ListenAddress {self.host}", f"Port {self.port}", f"HostKey {self.host_key}",
            f"PidFile {self.workdir / 'sshd.pid'}", f"AuthorizedKeysFile {self.authorized_keys}",
            "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password", "UseDNS no",
            "Subsystem sftp internal-sftp", "MaxStartups 50", "LogLevel VERBOSE", ""]))

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(self.config)],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for_port(self.host, self.port, proc=self.proc, log=self.log)

    def stop(self) -> None:
        """Stop the listener and every session it forked (a session outlives its listener otherwise, so the
        tier would not notice the server going away)."""
        if self.proc is None:
            return
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        _wait_dead(children)
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc = None

    def spec(self, path: Path | str, **overrides: Any) -> dict[str, Any]:
        """A [tiers.NAME] table for a folder served by this sshd."""
        return {"kind": "sftp", "host": self.host, "port": self.port, "user": self.user, "key": str(self.key),
                "known_hosts": str(self.known_hosts), "path": str(path), "timeout": 5, **overrides}


def moto_missing() -> str | None:
    try:
        from moto.server import ThreadedMotoServer  # noqa: F401
    except ImportError as e:
        return f"moto[server] not installed ({e}): S3 tier tests need it (pip install 'moto[server]')"
    return None


@dataclass
class S3Server:
    """moto's S3 server in a process of its own (in a thread of the test process it fought the tests for the
    GIL, and one S3 matrix run took 40 s). moto is an emulator of the S3 protocol (not a real object store),
    good for behaviour; real-S3 differences (consistency, part-size limits, credentials checks) are not tested."""

    host: str = "127.0.0.1"
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"

    def start(self) -> None:
        import socket
        import sys
        import time

        with socket.socket() as s:
            s.bind((self.host, 0))
            self.port = s.getsockname()[1]
        self._proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.endpoint = f"http://{self.host}:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if self._proc.poll() is not None:
                    raise RuntimeError("moto's S3 server exited at start") from None
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto's S3 server did not answer within 30 s")

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def new_bucket(self) -> str:
        name = f"preserve-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def spec(self, bucket: str, secret_key_file: str, **overrides: Any) -> dict[str, Any]:
        return {"kind": "s3", "endpoint": self.endpoint, "bucket": bucket, "prefix": "aips-copy",
                "region": self.region, "access_key": self.access_key, "secret_key_file": secret_key_file,
                **overrides}
