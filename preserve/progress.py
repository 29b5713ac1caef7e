"""Progress reporting from core code without importing the CLI: the CLI passes a Rich-backed object."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, label: str, total: int | None, unit: str = "items") -> None: ...  # unit: items | bytes
    def advance(self, n: int = 1) -> None: ...
    def done(self) -> None: ...


class NullProgress:
    def start(self, label: str, total: int | None, unit: str = "items") -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def done(self) -> None:
        pass
