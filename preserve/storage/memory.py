"""The `memory` tier: fsspec's in-memory filesystem, for tests and demos (shared code in storage.remote).

Spec keys of [tiers.NAME] (unknown keys are refused):
  memory  path (required, e.g. "/preserve-test"; the fsspec memory store is process-global, so every memory
          tier needs a path of its own)

Publishing a tree uploads it under <path>/.staging/<random>/ and renames it into place in one step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .remote import FsspecTier, require_setting


class MemoryTier(FsspecTier):
    """fsspec's in-memory filesystem (tests and demos). Its store is process-global: the base path is the tier."""

    kind = "memory"
    atomic_publish = True
    spec_keys = frozenset({"kind", "path"})

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any], root: Path) -> "MemoryTier":
        return cls(name, "/" + require_setting(name, spec, "path").strip("/"))

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
