"""The `restic` command, run as a subprocess (never a shell, never reading stdin), and its errors in plain words.

Written against restic 0.14, which has no special exit codes for "no repository", "wrong password" or
"locked": failures are classified by the text restic writes on stderr (`classify`). Every failure is raised as a
StorageError subclass naming the tier, with a hint saying what to do next.

Locks: restic 0.14 removes its lock file when it exits normally or on SIGINT, but not when it dies of SIGPIPE,
and it does not ignore stale locks (even one of a dead process on this host blocks `check`, `forget`, `prune`).
So a stream that is closed early (`dump`, `ls`) first sends SIGINT and drains stdout (`_Stream.abort`).
"""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Sequence

from ..errors import StorageError
from .base import TierUnreachable

# Variables that would point restic at another repository or password than the tier's.
_SCRUBBED_ENV = ("RESTIC_REPOSITORY", "RESTIC_REPOSITORY_FILE", "RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE",
                 "RESTIC_PASSWORD_COMMAND", "RESTIC_KEY_HINT")
# Repository strings restic takes as URLs; anything else is a local folder.
SCHEMES = ("sftp:", "rest:", "s3:", "b2:", "azure:", "gs:", "swift:", "rclone:")
_NETWORK = ("dial tcp", "connection refused", "no such host", "i/o timeout", "network is unreachable",
            "unable to start the sftp session", "unable to open repository at", "ssh:")


class ResticLocked(StorageError):
    """The repository is locked by another restic process (or a stale lock of one that was killed)."""


class ResticRepositoryMissing(TierUnreachable):
    """There is no restic repository (no `config`) at the location."""


class ResticPasswordError(TierUnreachable):
    """The password is wrong, or the password file is missing, empty or unreadable."""


def _lines(stderr: bytes) -> list[str]:
    text = stderr.decode("utf-8", "replace").replace("\x1b[2K", "")
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _fatal(lines: list[str]) -> str:
    """restic's main message: its first `Fatal:` line, else its last line."""
    for ln in lines:
        if ln.startswith("Fatal:"):
            return ln[len("Fatal:"):].strip()
    return lines[-1] if lines else "no message"


class Restic:
    """One restic repository and its password file; every method is one restic run."""

    def __init__(self, repository: str, password_file: str | Path, *, tier: str = "restic",
                 env: Mapping[str, str] | None = None, restic_bin: str = "restic",
                 cache_dir: str | Path | None = None, probe_timeout: float = 120.0,
                 options: Sequence[str] = ()):
        # absolute: `backup` runs with the source folder as its working directory
        local = not repository.startswith(SCHEMES)
        self.repository = os.path.abspath(repository.removeprefix("local:")) if local else repository
        self.password_file = os.path.abspath(password_file)
        self.tier = tier
        self.restic_bin = restic_bin
        self.probe_timeout = probe_timeout
        self.options = [str(o) for o in options]  # extended options, each "key=value": restic -o key=value
        self.env = self._environment(env or {}, cache_dir)

    @staticmethod
    def _environment(extra: Mapping[str, str], cache_dir: str | Path | None) -> dict[str, str]:
        """The caller's environment without restic repository/password variables, plus the tier's `env`.
        Without HOME or XDG_CACHE_HOME restic 0.14 has no cache folder (slow, and a warning on each run), so a
        per-user one under the system temp folder is used then."""
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env.update({str(k): str(v) for k, v in extra.items()})
        if cache_dir is not None:
            env["RESTIC_CACHE_DIR"] = str(cache_dir)
        elif not any(env.get(k) for k in ("RESTIC_CACHE_DIR", "XDG_CACHE_HOME", "HOME")):
            env["RESTIC_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / f"preserve-restic-cache-{os.getuid()}")
        env.setdefault("RESTIC_PROGRESS_FPS", "2")  # --json status lines of `backup`: twice a second is enough
        return env

    # --- running ---------------------------------------------------------------------------------------------
    def _argv(self, args: list[str]) -> list[str]:
        return [self.restic_bin, "--repo", self.repository, "--password-file", self.password_file,
                *self._option_args(), *args]

    def _option_args(self) -> list[str]:
        return [x for o in self.options for x in ("-o", o)]

    def command_text(self, *args: str) -> str:
        """A command line people can paste (for hints); never contains the password."""
        return shlex.join(["restic", "--repo", self.repository, "--password-file", self.password_file,
                           *self._option_args(), *args])

    def _popen(self, args: list[str], cwd: Path | None, stderr: IO[bytes]) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(self._argv(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=stderr, cwd=cwd, env=self.env)
        except (FileNotFoundError, PermissionError) as e:
            raise TierUnreachable(f"Tier '{self.tier}': the restic program ({self.restic_bin}) is not installed "
                                  f"or cannot be run ({e.strerror}).",
                                  hint="Install it (`apt-get install restic`), or put it on PATH, then run the "
                                       "command again.") from None

    def run(self, args: list[str], *, cwd: Path | None = None, timeout: float | None = None) -> bytes:
        """Run restic to the end; its stdout, or the classified error."""
        with tempfile.TemporaryFile() as err:
            proc = self._popen(args, cwd, err)
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _Stream(proc, err, self, args[0]).abort()
                raise TierUnreachable(f"Tier '{self.tier}': `restic {args[0]}` got no answer from {self.repository} "
                                      f"within {timeout:.0f} s.", hint="Check the network and the server, then "
                                                                       "run the command again.") from None
            if proc.returncode != 0:
                err.seek(0)
                raise self.classify(args[0], proc.returncode, err.read())
            return out

    def stream(self, args: list[str], *, cwd: Path | None = None) -> _Stream:
        """Start restic and hand back its stdout as a stream (checked when it ends)."""
        err = tempfile.TemporaryFile()  # noqa: SIM115 (owned and closed by the _Stream)
        return _Stream(self._popen(args, cwd, err), err, self, args[0])

    # --- errors ----------------------------------------------------------------------------------------------
    def classify(self, sub: str, rc: int, stderr: bytes) -> StorageError:
        """The StorageError for a failed run, from restic 0.14's stderr text."""
        lines = _lines(stderr)
        text = "\n".join(lines)
        fatal = _fatal(lines)
        low = text.lower()
        where = f"Tier '{self.tier}' ({self.repository})"
        if "resolving password failed" in low:
            return ResticPasswordError(f"{where}: restic cannot read the password file {self.password_file}, "
                                       f"so the password is wrong or missing (restic: {fatal}).",
                                       hint=f"Restore the password file {self.password_file} (readable by this user, "
                                            f"the password on its first line) or fix password_file in "
                                            f"[tiers.{self.tier}] of preserve.toml.")
        if any(s in low for s in ("wrong password", "empty password", "reading repository password from stdin")):
            return ResticPasswordError(f"{where}: the password is wrong; restic cannot open the repository "
                                       f"(restic: {fatal}).",
                                       hint=f"Check that the password file {self.password_file} holds this "
                                            "repository's password (on its first line).")
        if "is there a repository at the following location" in low or "unable to open config file" in low:
            if any(s in low for s in _NETWORK):
                return TierUnreachable(f"{where} is not reachable (restic: {fatal}).",
                                       hint="Check the network, the server and the credentials, then run the "
                                            "command again.")
            return ResticRepositoryMissing(
                f"{where} is not reachable: there is no restic repository there (restic: {fatal}).",
                hint=f"Check `repository` in [tiers.{self.tier}] of preserve.toml and that its disk or server is "
                     f"there; a new repository is made with `preserve tiers init {self.tier}`.")
        if any(s in low for s in _NETWORK):
            return TierUnreachable(f"{where} is not reachable (restic: {fatal}).",
                                   hint="Check the network, the server and the credentials, then run the command "
                                        "again.")
        if "already locked" in low or "unable to create lock" in low:
            who = next((ln for ln in lines if "already locked" in ln), fatal)
            return ResticLocked(f"{where}: the repository is locked by another restic process ({who}).",
                                hint="Wait for the other restic run (backup, check, prune) to finish and try "
                                     "again. If no restic process is running any more (one was killed), remove "
                                     f"the stale lock: `{self.command_text('unlock')}`.")
        if "ciphertext verification failed" in low or "pack id does not match" in low:
            return StorageError(f"{where}: restic read damaged data from the repository (`restic {sub}`: {fatal}).",
                                hint=f"Run `preserve offsite check` (or `{self.command_text('check', '--read-data')}`"
                                     ") to find the damaged packs, and see restic's documentation on repairing a "
                                     "repository.")
        tail = " | ".join(lines[-4:]) or "no message"
        return StorageError(f"{where}: `restic {sub}` failed (exit {rc}): {tail}",
                            hint=f"Run `{self.command_text(sub)}` by hand to see restic's full message.")

    # --- commands --------------------------------------------------------------------------------------------
    def init(self) -> None:
        """Create the repository (`restic init`; 0.14 has no --json for it)."""
        self.run(["init"])

    def cat_config(self) -> dict[str, Any]:
        """The repository config: a cheap probe that the repository is there and the password opens it."""
        return json.loads(self.run(["cat", "config"], timeout=self.probe_timeout))

    def snapshots(self, tags: list[str] | None = None) -> list[dict[str, Any]]:
        """Every snapshot (with all of `tags`), as restic's JSON objects."""
        args = ["snapshots", "--json"]
        if tags:
            args.append(f"--tag={','.join(tags)}")  # comma-joined: snapshots carrying all of them
        return json.loads(self.run(args) or b"[]") or []

    def ls(self, snapshot_id: str, *paths: str, recursive: bool = True) -> Iterator[dict[str, Any]]:
        """The nodes (files, dirs…) at and under `paths` ("/aips/…") in a snapshot; the snapshot line skipped."""
        stream = self.stream(["ls", "--json", *(["--recursive"] if recursive else []), snapshot_id, "--", *paths])
        with stream:
            for line in io.TextIOWrapper(stream.stdout, encoding="utf-8"):
                node = json.loads(line)
                if node.get("struct_type") == "node":
                    yield node
            stream.finish()

    def dump(self, snapshot_id: str, path: str) -> _Stream:
        """A reader of `restic dump` of `path` ("/aips/…"): a file's bytes, or a tar of a directory. Read it to the
        end (a failure is raised there), or close it early (restic is interrupted, its lock removed)."""
        return self.stream(["dump", snapshot_id, path])

    def backup(self, cwd: Path, paths: list[str], tags: list[str],
               on_status: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Back up `paths` (relative to `cwd`) as one snapshot; restic's final "summary" message (snapshot_id…).

        restic 0.14 records the absolute paths in the snapshot's `paths`, but its tree holds them relative to
        cwd: `aips/ab/cd/<uuid>/v1/bagit.txt` is `/aips/ab/cd/<uuid>/v1/bagit.txt` in the snapshot. Exit 3
        ("some files could not be read") left an incomplete snapshot: it is forgotten and an error raised."""
        args = ["backup", "--json", *[f"--tag={t}" for t in tags], "--", *paths]
        summary: dict[str, Any] = {}
        stream = self.stream(args, cwd=cwd)
        with stream:
            for line in stream.stdout:
                msg = json.loads(line) if line.startswith(b"{") else {}
                if msg.get("message_type") == "summary":
                    summary = msg
                elif msg.get("message_type") == "status" and on_status is not None:
                    on_status(msg)
            rc, err = stream.wait()
        if rc == 3 and summary.get("snapshot_id"):
            self.forget([summary["snapshot_id"]])
        if rc != 0:
            raise self.classify("backup", rc, err)
        if not summary.get("snapshot_id"):
            raise StorageError(f"Tier '{self.tier}': `restic backup` ended without naming its snapshot.",
                               hint="Run `restic snapshots` by hand to see whether a snapshot was made.")
        return summary

    def forget(self, snapshot_ids: list[str]) -> None:
        """Remove snapshots (their data stays until `restic prune`)."""
        if snapshot_ids:
            self.run(["forget", "--", *snapshot_ids])

    def check(self, subset: str | None = None) -> dict[str, Any]:
        """`restic check` (with `--read-data-subset n/t` when given): {"ok", "errors", "output"}.

        restic 0.14's check has no JSON: the problems it finds are its stderr lines, ending with "Fatal:
        repository contains errors" (exit 1). Any other failure (locked, wrong password…) is raised."""
        args = ["check", *([f"--read-data-subset={subset}"] if subset else [])]
        with tempfile.TemporaryFile() as err:
            proc = self._popen(args, None, err)
            out, _ = proc.communicate()
            err.seek(0)
            stderr = err.read()
        lines = _lines(stderr)
        output = out.decode("utf-8", "replace") + "\n".join(lines)
        if proc.returncode == 0:
            return {"ok": True, "errors": [], "output": output}
        if any("repository contains errors" in ln for ln in lines):
            errors = [ln for ln in lines if not ln.startswith("Fatal:")] or ["repository contains errors"]
            return {"ok": False, "errors": errors, "output": output}
        raise self.classify("check", proc.returncode, stderr)


class _Stream(io.RawIOBase):
    """restic's stdout as a binary reader. At end of data the exit status is checked (a classified error is
    raised); closing it before the end interrupts restic with SIGINT so that it removes its lock."""

    def __init__(self, proc: subprocess.Popen[bytes], err: IO[bytes], restic: Restic, sub: str):
        super().__init__()
        self.proc, self._err, self._restic, self._sub = proc, err, restic, sub
        assert proc.stdout is not None
        self.stdout: IO[bytes] = proc.stdout
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = self.stdout.readinto(b)  # type: ignore[attr-defined]
        if not n:
            self.finish()
        return n or 0

    def wait(self) -> tuple[int, bytes]:
        """Wait for restic to end: (exit code, stderr)."""
        rc = self.proc.wait()
        self._checked = True
        self._err.seek(0)
        return rc, self._err.read()

    def finish(self) -> None:
        """The data has ended: raise restic's classified error if it failed."""
        if self._checked:
            return
        rc, err = self.wait()
        if rc != 0:
            raise self._restic.classify(self._sub, rc, err)

    def abort(self) -> None:
        """Stop restic cleanly: SIGINT, then drain stdout (so it cannot die of SIGPIPE holding its lock)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            while self.stdout.read(1 << 16):
                pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # restic ignored SIGINT: its lock may stay (then `restic unlock`)
            self.proc.kill()
            self.proc.wait()
        self._checked = True

    def close(self) -> None:
        if not self.closed:
            try:
                if not self._checked:
                    self.abort()
            finally:
                self.stdout.close()
                self._err.close()
        super().close()
