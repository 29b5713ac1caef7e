"""A restic repository as a tier: the encrypted, deduplicated off-site copy.

Every write is one `restic backup`, i.e. one snapshot, run from the local base folder so that the snapshot
holds the trees under their tier paths (restic 0.14: `aips/ab/cd/<uuid>/v1/bagit.txt` is
`/aips/ab/cd/<uuid>/v1/bagit.txt` in the snapshot tree; the snapshot's `paths` list holds the absolute source
folders, which are not used here). A snapshot appears whole or not at all (restic writes it last), so
`atomic_publish` holds.

Tags: every snapshot written here carries `preserve`, and `path=<rel>` for each tree it holds
("path=aips/ab/cd/<uuid>/v1"). restic splits `--tag` values at commas, so a tree path with a comma is refused.
Which trees the tier holds comes from the tags alone (`restic snapshots --json`, one call, cached until the next
backup or forget); the newest snapshot tagged for a tree is its copy.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Sequence

import psutil

from ..digest import CHUNK, hash_stream
from ..errors import ConfigError, StorageError
from .base import AIPS_PREFIX, FileDigest, FileInfo, Tier, TierConflict, TierUnreachable, clean_rel, hash_keeping
from .restic_cmd import SCHEMES, Restic, ResticLocked, ResticPasswordError, ResticRepositoryMissing

__all__ = ["Restic", "ResticLocked", "ResticPasswordError", "ResticRepositoryMissing", "ResticTier"]

BASE_TAG = "preserve"
TREE_TAG = "path="
_AIP_TREE = re.compile(rf"{AIPS_PREFIX}/[^/]+/[^/]+/[^/]+/v[^/]+")


def _when(snap: dict[str, Any]) -> datetime:
    """A snapshot's time; restic writes nanoseconds, which fromisoformat does not take."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", str(snap.get("time", ""))).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def snapshot_trees(snap: dict[str, Any]) -> set[str]:
    """The tree paths a snapshot holds, from its `path=` tags."""
    return {t[len(TREE_TAG):] for t in snap.get("tags") or () if t.startswith(TREE_TAG)}


def _tree_bytes(folder: Path) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(folder) for f in files)


def _member_path(name: str, rel: str) -> str:
    """A tar member's path relative to the dumped tree. restic 0.14 names members by their full snapshot path
    without the leading "/" ("aips/ab/cd/<uuid>/v1/data/x.pdf" for a dump of "/aips/ab/cd/<uuid>/v1"); other
    versions have used a leading "/" or names relative to the dumped folder, which are taken as they are."""
    name = name.lstrip("/")
    name = name.removeprefix("./")
    return name[len(rel) + 1:] if rel and name.startswith(rel + "/") else name


class ResticTier(Tier):
    kind = "restic"
    atomic_publish = True

    def __init__(self, name: str, repository: str, password_file: str | Path, *,
                 env: Mapping[str, str] | None = None, restic_bin: str = "restic",
                 cache_dir: str | Path | None = None, options: Sequence[str] = ()):
        super().__init__(name)
        self.restic = Restic(repository, password_file, tier=name, env=env, restic_bin=restic_bin,
                             cache_dir=cache_dir, options=options)
        self.repository = self.restic.repository  # local folders made absolute
        self._snaps: list[dict[str, Any]] | None = None

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any], root: Path) -> ResticTier:
        """From a [tiers.NAME] table: `repository` (a path, relative to the repository `root`, or a restic URL),
        `password_file` (relative to root or absolute), optional `env` (extra environment: S3 credentials…),
        optional `options` (restic extended options "key=value", e.g. sftp.command), `restic_bin` and `cache_dir`."""
        repo = spec.get("repository")
        if not isinstance(repo, str) or not repo.strip():
            raise ConfigError(f"Tier '{name}' (kind restic) has no repository.",
                              hint=f'Set repository = "offsite" (a folder, relative to the repository or absolute) '
                                   f'or a restic URL such as "sftp:user@host:/srv/restic" in [tiers.{name}] of '
                                   "preserve.toml.")
        pw = spec.get("password_file")
        if not isinstance(pw, str) or not pw.strip():
            raise ConfigError(f"Tier '{name}' (kind restic) has no password_file.",
                              hint=f'Set password_file = "keys/restic-password" (the file holding the restic '
                                   f"password, relative to the repository or absolute) in [tiers.{name}] of "
                                   "preserve.toml.")
        env = spec.get("env") or {}
        if not isinstance(env, dict):
            raise ConfigError(f"Tier '{name}': env must be a table of variables.",
                              hint=f'Write env = {{ AWS_ACCESS_KEY_ID = "…" }} in [tiers.{name}] of preserve.toml.')
        options = spec.get("options") or []
        if not isinstance(options, list) or not all(isinstance(o, str) and "=" in o for o in options):
            raise ConfigError(f"Tier '{name}': options must be a list of restic extended options \"key=value\".",
                              hint=f'Write options = ["sftp.command=ssh -i keys/offsite-key preserve@host -s sftp"] '
                                   f"in [tiers.{name}] of preserve.toml.")
        root = Path(root)
        if not repo.startswith(SCHEMES):
            local = Path(repo.removeprefix("local:"))
            repo = str(local if local.is_absolute() else root / local)
        pw_path = Path(pw) if Path(pw).is_absolute() else root / pw
        return cls(name, repo, pw_path, env=env, restic_bin=str(spec.get("restic_bin", "restic")),
                   cache_dir=spec.get("cache_dir"), options=options)

    # --- identity, reachability, capacity --------------------------------------------------------------------
    @property
    def location(self) -> str:
        return self.repository

    @property
    def local_path(self) -> Path | None:
        """The repository folder when it is on this machine (or a mount), else None."""
        return None if self.repository.startswith(SCHEMES) else Path(self.repository)

    def check(self) -> None:
        """`restic cat config`: the repository is there and the password opens it (and it is not locked)."""
        self.restic.cat_config()

    def initialise(self) -> None:
        """`restic init` unless the repository exists. A local repository is only made inside an existing
        folder (an absent parent is an unmounted disk). The password file is never created here."""
        try:
            self.restic.cat_config()
            return
        except ResticRepositoryMissing:
            pass
        lp = self.local_path
        if lp is not None and not lp.parent.is_dir():
            raise TierUnreachable(f"Tier '{self.name}': the folder {lp.parent} is absent (an unmounted disk?).",
                                  hint="Mount the disk, then run `preserve tiers init` again.")
        self.restic.init()
        self.invalidate()

    def free_space(self) -> int | None:
        lp = self.local_path
        if lp is None:
            return None
        if not lp.is_dir():
            raise TierUnreachable(f"Tier '{self.name}' is not reachable: the folder {lp} is absent "
                                  "(an unmounted disk?).",
                                  hint="Mount the disk or fix `repository` in preserve.toml, then run the command "
                                       "again.")
        return psutil.disk_usage(str(lp)).free

    def total_space(self) -> int | None:
        """The size of the disk holding a local repository; None for remote or absent ones (never raises)."""
        lp = self.local_path
        return psutil.disk_usage(str(lp)).total if lp is not None and lp.is_dir() else None

    # --- the snapshot index --------------------------------------------------------------------------------
    def snapshots(self) -> list[dict[str, Any]]:
        """The snapshots tagged `preserve`, oldest first; one restic call, kept until invalidate()."""
        if self._snaps is None:
            self._snaps = sorted(self.restic.snapshots([BASE_TAG]), key=lambda s: (_when(s), s.get("id", "")))
        return self._snaps

    def invalidate(self) -> None:
        """Forget the cached snapshot list (after a backup or forget, or when another process wrote)."""
        self._snaps = None

    def trees(self) -> dict[str, dict[str, Any]]:
        """Each tree held -> the newest snapshot holding it."""
        return {t: s for s in self.snapshots() for t in snapshot_trees(s)}

    def _containing(self, rel: str) -> tuple[str, dict[str, Any]] | None:
        """(tree, its newest snapshot) for the tree that is rel or holds it."""
        for tree, snap in self.trees().items():
            if rel == tree or rel.startswith(tree + "/"):
                return tree, snap
        return None

    # --- reading -------------------------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        rel = clean_rel(rel)
        trees = self.trees()
        if rel in trees or any(not rel or t.startswith(rel + "/") for t in trees):
            return True
        return self._containing(rel) is not None and self.stat(rel) is not None

    def stat(self, rel: str) -> FileInfo | None:
        rel = clean_rel(rel)
        found = self._containing(rel)
        if found is None:
            return None
        info = None
        for node in self.restic.ls(found[1]["id"], "/" + rel, recursive=False):
            if node.get("path") == "/" + rel and node.get("type") == "file":
                info = FileInfo(rel, int(node.get("size", 0)))
        return info

    def list(self, rel: str = "") -> Iterator[FileInfo]:
        """Files under rel: one `restic ls` per snapshot involved (the newest one of each tree)."""
        rel = clean_rel(rel)
        found = self._containing(rel)
        wanted: dict[str, list[str]] = {}
        if found is not None:
            wanted[found[1]["id"]] = [rel]
        else:
            for tree, snap in self.trees().items():
                if not rel or tree.startswith(rel + "/"):
                    wanted.setdefault(snap["id"], []).append(tree)
        files: dict[str, FileInfo] = {}
        for snap_id, paths in wanted.items():
            for node in self.restic.ls(snap_id, *("/" + p for p in sorted(paths))):
                if node.get("type") == "file":
                    path = str(node["path"]).lstrip("/")
                    files[path] = FileInfo(path, int(node.get("size", 0)))
        yield from (files[p] for p in sorted(files))

    def open(self, rel: str) -> BinaryIO:
        rel = clean_rel(rel)
        found = self._containing(rel)
        if found is None:
            raise FileNotFoundError(rel)
        reader = io.BufferedReader(self.restic.dump(found[1]["id"], "/" + rel), CHUNK)
        try:
            reader.peek(1)  # restic fails before its first byte when the path is not in the snapshot
        except StorageError as e:
            reader.close()
            if "not found in snapshot" in str(e):
                raise FileNotFoundError(rel) from None
            raise
        return reader  # type: ignore[return-value]

    def read_tree(self, rel: str, algorithms: Iterable[str] = ("sha256",),
                  keep: Callable[[str], bool] | None = None) -> Iterator[FileDigest]:
        """Stream `restic dump` of the tree (a tar) and hash each file in one pass; nothing is written to disk.
        A damaged pack makes restic stop mid-stream: its error is raised (StorageError)."""
        rel = clean_rel(rel)
        found = self._containing(rel)
        if found is None:
            raise FileNotFoundError(rel)
        return self._read_snapshot_tree(found[1]["id"], rel, tuple(algorithms), keep)

    def fetch_tree(self, rel: str, dest: Path, algorithms: Iterable[str] = ("sha256",),
                   keep: Callable[[str], bool] | None = None) -> list[FileDigest]:
        """One `restic dump` of the tree, each member written to dest while it is hashed: a restore needs room
        for this one tree only, never a second copy of the repository."""
        rel = clean_rel(rel)
        found = self._containing(rel)
        if found is None:
            raise FileNotFoundError(rel)
        return list(self._read_snapshot_tree(found[1]["id"], rel, tuple(algorithms), keep, Path(dest)))

    def _read_snapshot_tree(self, snap_id: str, rel: str, algorithms: tuple[str, ...],
                            keep: Callable[[str], bool] | None = None, dest: Path | None = None
                            ) -> Iterator[FileDigest]:
        with self.restic.dump(snap_id, "/" + rel) as stream:
            try:
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    for member in tar:
                        if member.isfile():
                            f = tar.extractfile(member)
                            assert f is not None
                            name = _member_path(member.name, rel)
                            if dest is not None:
                                yield self.copy_hashed(f, name, dest, algorithms, keep)
                                continue
                            size, digests, content = hash_keeping(f, algorithms, bool(keep and keep(name)))
                            yield FileDigest(name, size, digests, content)
                while stream.read(CHUNK):  # the rest (tar padding); at its end restic's exit status is checked
                    pass
            except tarfile.TarError as e:
                while stream.read(CHUNK):  # to its end: restic's own error (a damaged pack…) is raised there,
                    pass                   # and it says more than the broken tar
                raise StorageError(f"Tier '{self.name}': the tar stream of `restic dump {snap_id} /{rel}` is "
                                   f"damaged ({e}).", hint="Run `preserve offsite check` on this tier.") from None

    def snapshot_of(self, rel: str) -> str | None:
        """The id of the newest snapshot holding the tree `rel` (None when none does)."""
        found = self._containing(clean_rel(rel))
        return found[1]["id"] if found is not None else None

    def fetch_trees(self, snap_id: str, rels: list[str], dest: Path, algorithms: Iterable[str] = ("sha256",),
                    keep: Callable[[str], bool] | None = None) -> dict[str, list[FileDigest]]:
        """Every tree of `rels` that snapshot `snap_id` holds, written under dest/<rel> while hashed, from ONE
        `restic dump <snap> /` (a restore of many AIPs pays restic's key derivation once per snapshot, not once
        per AIP). Disk use is at most the snapshot's trees asked for."""
        return self._read_snapshot_all(snap_id, rels, tuple(algorithms), Path(dest), keep)

    def _read_snapshot_all(self, snap_id: str, rels: list[str], algorithms: tuple[str, ...],
                           dest: Path | None = None, keep: Callable[[str], bool] | None = None
                           ) -> dict[str, list[FileDigest]]:
        """Every tree of `rels` in a snapshot, from ONE `restic dump <snap> /` (each restic run costs the key
        derivation, about 0.7 s: one per tree would dominate a backup of many small AIPs): hashed only, or with
        `dest` also written under dest/<rel>. Members of other trees are read past."""
        out: dict[str, list[FileDigest]] = {r: [] for r in rels}
        prefixes = sorted(rels, key=len, reverse=True)
        with self.restic.dump(snap_id, "/") as stream:
            try:
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    for member in tar:
                        if not member.isfile():
                            continue
                        name = member.name.lstrip("/").removeprefix("./")
                        rel = next((r for r in prefixes if name.startswith(r + "/")), None)
                        if rel is None:
                            continue
                        f = tar.extractfile(member)
                        assert f is not None
                        inner = name[len(rel) + 1:]
                        if dest is not None:
                            out[rel].append(self.copy_hashed(f, inner, dest / rel, algorithms, keep))
                        else:
                            d = hash_stream(f, algorithms)
                            out[rel].append(FileDigest(inner, d.size, dict(d.values)))
                while stream.read(CHUNK):
                    pass
            except tarfile.TarError as e:
                while stream.read(CHUNK):
                    pass
                raise StorageError(f"Tier '{self.name}': the tar stream of `restic dump {snap_id} /` is damaged "
                                   f"({e}).", hint="Run `preserve offsite check` on this tier.") from None
        return out

    def aip_paths(self) -> set[str]:
        """From the snapshot tags alone (no listing of files)."""
        return {t for t in self.trees() if _AIP_TREE.fullmatch(t)}

    # --- writing -------------------------------------------------------------------------------------------
    def _tree_rel(self, rel: str) -> str:
        rel = clean_rel(rel)
        if not rel or "," in rel:
            raise StorageError(f"Tier '{self.name}': {rel!r} cannot be a restic tree path (empty, or holds a comma, "
                               "which restic tags cannot carry).", hint="Use tier paths like aips/ab/cd/<uuid>/v1.")
        return rel

    def _backup(self, base: Path, rels: list[str], progress, total: int) -> str:
        """One snapshot of base/rel for every rel; its id. If restic fails, no snapshot is left (it writes the
        snapshot last; packs already uploaded without one are unreferenced and go at the next `restic prune`)."""
        done = 0

        def on_status(msg: dict[str, Any]) -> None:
            nonlocal done
            now = min(int(msg.get("bytes_done") or 0), total)
            if progress is not None and now > done:
                progress.advance(now - done)
                done = now

        try:
            summary = self.restic.backup(base, rels, [BASE_TAG, *(TREE_TAG + r for r in rels)], on_status)
        finally:
            self.invalidate()
        if progress is not None and total > done:
            progress.advance(total - done)
        return str(summary["snapshot_id"])

    def _read_back(self, snap_id: str, rels: list[str], algorithms: tuple[str, ...]) -> dict[str, list[FileDigest]]:
        """Every tree read back from the new snapshot. If that fails the snapshot is forgotten (a copy that was
        not verified is no copy) and the error raised."""
        try:
            return self._read_snapshot_all(snap_id, rels, algorithms)
        except (StorageError, OSError):
            try:
                self.restic.forget([snap_id])
            except StorageError:
                pass  # the read-back error is the one to report; the snapshot stays (verify it later)
            finally:
                self.invalidate()
            raise

    def put_trees(self, base: Path, rels: list[str], algorithms: Iterable[str] = ("sha256",),
                  progress=None) -> dict[str, list[FileDigest]]:
        """ONE snapshot holding every tree base/rel; each tree then read back from that snapshot. A rel already
        held is a TierConflict, raised before anything is backed up."""
        base = Path(base)
        rels = list(dict.fromkeys(self._tree_rel(r) for r in rels))
        held = sorted(set(rels) & set(self.trees()))
        if held:
            raise TierConflict(f"Tier '{self.name}' already holds {held[0]}"
                               + (f" and {len(held) - 1} other tree(s)" if len(held) > 1 else "") + ".",
                               hint="Read the existing copy back (`preserve replicate` adopts a verified one) or "
                                    "delete it first.")
        for r in rels:
            if not (base / r).is_dir():
                raise StorageError(f"Tier '{self.name}': no folder {base / r} to back up.",
                                   hint="Check the source copy of this AIP (`preserve tiers status`).")
        total = sum(_tree_bytes(base / r) for r in rels)
        self.ensure_room(total)
        snap_id = self._backup(base, rels, progress, total)
        return self._read_back(snap_id, rels, tuple(algorithms))

    def put_tree(self, base: Path, rel: str, algorithms: Iterable[str] = ("sha256",),
                 progress=None) -> list[FileDigest]:
        rel = self._tree_rel(rel)
        return self.put_trees(base, [rel], algorithms, progress)[rel]

    def put_file(self, src: Path, rel: str) -> FileDigest:
        """One snapshot of one file (staged as <temp>/<rel>, hard-linked when possible). The newest snapshot of
        rel is the one read, so this replaces an older copy (whose snapshot stays until deleted)."""
        rel = self._tree_rel(rel)
        src = Path(src)
        with tempfile.TemporaryDirectory(prefix="preserve-restic-") as tmp:
            staged = Path(tmp) / rel
            staged.parent.mkdir(parents=True)
            try:
                os.link(src, staged)
            except OSError:
                shutil.copyfile(src, staged)
            snap_id = self._backup(Path(tmp), [rel], None, staged.stat().st_size)
        with self.restic.dump(snap_id, "/" + rel) as stream:
            d = hash_stream(stream, ("sha256",))  # type: ignore[arg-type]
        return FileDigest(rel, d.size, dict(d.values))

    def delete(self, rel: str) -> None:
        """Forget the snapshots holding the tree at rel (or the trees under it). Only `restic forget`: the space
        comes back at the next `restic prune`. A snapshot that also holds other trees cannot lose one of them
        without being rewritten: that is refused (StorageError) before anything is forgotten."""
        rel = clean_rel(rel)
        if not rel:
            raise StorageError(f"Tier '{self.name}': refusing to delete every snapshot.",
                               hint="Name the tree to delete (aips/ab/cd/<uuid>/v1).")
        targets = {t for s in self.snapshots() for t in snapshot_trees(s) if t == rel or t.startswith(rel + "/")}
        if not targets:
            if self._containing(rel) is not None:
                raise StorageError(f"Tier '{self.name}': {rel} is a file inside a snapshot; restic cannot remove "
                                   "one file without rewriting the snapshot.", hint="Delete the whole tree.")
            return
        snaps = [s for s in self.snapshots() if snapshot_trees(s) & targets]
        shared = [s for s in snaps if not snapshot_trees(s) <= targets]
        if shared:
            others = sorted(snapshot_trees(shared[0]) - targets)
            raise StorageError(f"Tier '{self.name}': snapshot {shared[0].get('short_id')} holds {rel} together with "
                               f"{len(others)} other tree(s) ({others[0]}…); one tree cannot be removed from a "
                               "shared snapshot without rewriting it.",
                               hint="Leave it (the newest good snapshot is the copy), or back the other trees up "
                                    "again and forget that snapshot with `restic forget`.")
        try:
            self.restic.forget([str(s["id"]) for s in snaps])
        finally:
            self.invalidate()
