"""Streaming multi-algorithm hashing: read each byte once, compute every digest in that one pass."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import BinaryIO, Iterable

DEFAULT_ALGORITHMS = ("sha256", "sha512")
CHUNK = 1 << 20  # 1 MiB: large enough that hashlib releases the GIL


@dataclass(frozen=True)
class Digests:
    size: int
    values: dict[str, str]

    def __getitem__(self, algorithm: str) -> str:
        return self.values[algorithm]


class MultiHasher:
    def __init__(self, algorithms: Iterable[str] = DEFAULT_ALGORITHMS):
        self._h = {a: hashlib.new(a) for a in algorithms}
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        for h in self._h.values():
            h.update(data)

    def result(self) -> Digests:
        return Digests(self.size, {a: h.hexdigest() for a, h in self._h.items()})


def hash_stream(stream: BinaryIO, algorithms: Iterable[str] = DEFAULT_ALGORITHMS) -> Digests:
    mh = MultiHasher(algorithms)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := stream.readinto(buf):
        mh.update(view[:n])
    return mh.result()


def hash_file(path: str | os.PathLike, algorithms: Iterable[str] = DEFAULT_ALGORITHMS) -> Digests:
    with open(path, "rb", buffering=0) as f:
        return hash_stream(f, algorithms)


def hash_bytes(data: bytes, algorithms: Iterable[str] = DEFAULT_ALGORITHMS) -> Digests:
    mh = MultiHasher(algorithms)
    mh.update(data)
    return mh.result()


def copy_and_hash(src: str | os.PathLike, dst: str | os.PathLike,
                  algorithms: Iterable[str] = DEFAULT_ALGORITHMS, fsync: bool = True, progress=None) -> Digests:
    """Copy src to dst (which must not exist), hashing the bytes as they pass; fsync dst when asked;
    `progress` (preserve.progress.Progress) is advanced by bytes."""
    mh = MultiHasher(algorithms)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(src, "rb", buffering=0) as fi, open(dst, "xb", buffering=0) as fo:
        while n := fi.readinto(buf):
            chunk = view[:n]
            mh.update(chunk)
            fo.write(chunk)
            if progress is not None:
                progress.advance(n)
        if fsync:
            os.fsync(fo.fileno())
    return mh.result()
