"""Storage tiers: one interface (storage.base.Tier) over local folders, memory, SFTP and S3 (through fsspec) and
restic repositories (through the `restic` command and its --json output).

`open_tier(name, spec, root)` turns one `[tiers.NAME]` table of preserve.toml into a Tier. Opening never
connects and never creates anything: `Tier.check()` tells whether the tier can be reached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import FileDigest, FileInfo, Tier, TierConflict, TierFull, TierUnreachable

KINDS = ("local", "memory", "sftp", "s3", "restic")

__all__ = ["KINDS", "FileDigest", "FileInfo", "Tier", "TierConflict", "TierFull", "TierUnreachable", "open_tier"]


def open_tier(name: str, spec: dict[str, Any], root: Path) -> Tier:
    """The tier described by `spec` (a [tiers.NAME] table); relative paths are taken from the repository `root`."""
    kind = spec.get("kind")
    if kind == "local":
        from .local import LocalTier

        return LocalTier.from_spec(name, spec, Path(root))
    if kind in ("memory", "sftp", "s3"):
        from .remote import FsspecTier

        return FsspecTier.from_spec(name, spec, Path(root))
    if kind == "restic":
        from .restic import ResticTier

        return ResticTier.from_spec(name, spec, Path(root))
    raise ConfigError(f"Tier '{name}' has kind {kind!r}, which preserve does not know.",
                      hint=f"Set kind to one of {', '.join(KINDS)} in [tiers.{name}] of preserve.toml.")
