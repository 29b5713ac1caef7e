"""Every tier kind keeps every promise of preserve.storage.base.Tier, against real servers (sshd, moto S3)."""

from __future__ import annotations

import hashlib
import os
import random
import re
import time
import unicodedata
from pathlib import Path
from typing import Any, Callable

import pytest

from preserve.errors import ConfigError, StorageError
from preserve.storage import TierConflict, TierFull, TierUnreachable, open_tier

REL = "aips/ab/cd/uuid-abcd1234-0000-4000-8000-000000000001/v1"
VN_NAME = unicodedata.normalize("NFC", "data/Tài liệu số 01.pdf")
BIG = 3 << 20


def tree_files(seed: int = 1) -> dict[str, bytes]:
    """A small bag: an empty file, a nested folder, a 3 MiB file and a Vietnamese (NFC) file name."""
    rnd = random.Random(seed)
    return {
        "bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
        "data/empty.txt": b"",
        "data/nested/deeper/note.txt": f"ghi chú {seed}\n".encode(),
        "data/big.bin": rnd.randbytes(BIG),
        VN_NAME: b"%PDF-1.4 " + rnd.randbytes(2000),
        "manifest-sha256.txt": b"0" * 64 + b"  data/big.bin\n",
    }


def write_tree(base: Path, rel: str, files: dict[str, bytes]) -> dict[str, bytes]:
    for name, data in files.items():
        p = base / rel / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return files


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def all_paths(tier) -> list[str]:
    """Every file of the tier but a local tier's marker (written by `preserve tiers init`)."""
    return [f.path for f in tier.list("") if f.path != ".preserve-tier"]


def staged(tier) -> list[str]:
    """What the staging area holds (list("") leaves it out: it is not part of the tier)."""
    return [f.path for f in tier.list(".staging")]


class Progress:
    """A preserve.progress.Progress that runs `on_advance(n_calls, bytes_so_far)` on every advance."""

    def __init__(self, on_advance: Callable[[int, int], None] = lambda calls, done: None):
        self.on_advance, self.calls, self.bytes = on_advance, 0, 0

    def start(self, label: str, total: int | None, unit: str = "items") -> None:
        pass

    def advance(self, n: int = 1) -> None:
        self.calls += 1
        self.bytes += n
        self.on_advance(self.calls, self.bytes)

    def done(self) -> None:
        pass


# --- writing and reading back ---------------------------------------------------------------------------------

def test_put_then_read_gives_the_digests_of_the_source(tier, tmp_path):
    files = write_tree(tmp_path / "src", REL, tree_files())
    progress = Progress()
    written = tier.put_tree(tmp_path / "src", REL, ("sha256", "sha512"), progress=progress)
    expected = {name: (len(data), sha(data)) for name, data in files.items()}
    assert {d.path: (d.size, d.digests["sha256"]) for d in written} == expected
    assert all(d.digests["sha512"] == hashlib.sha512(files[d.path]).hexdigest() for d in written)
    back = list(tier.read_tree(REL))
    assert {d.path: (d.size, d.digests["sha256"]) for d in back} == expected
    assert sorted(d.path for d in back) == [d.path for d in back]
    assert VN_NAME in {d.path for d in back}
    assert progress.bytes == sum(len(d) for d in files.values())


def test_exists_stat_list_open_get(tier, tmp_path):
    files = write_tree(tmp_path / "src", REL, tree_files())
    tier.put_tree(tmp_path / "src", REL)
    assert tier.exists(REL) and tier.exists(f"{REL}/data/empty.txt") and tier.exists("aips/ab")
    assert not tier.exists("aips/zz") and not tier.exists(f"{REL}/nope.txt")
    info = tier.stat(f"{REL}/data/big.bin")
    assert (info.path, info.size) == (f"{REL}/data/big.bin", BIG)
    assert tier.stat(f"{REL}/data/empty.txt").size == 0
    assert tier.stat(f"{REL}/nope.txt") is None
    expected = sorted(f"{REL}/{name}" for name in files)
    assert all_paths(tier) == expected
    assert [f.path for f in tier.list(REL)] == expected == [f.path for f in tier.list("aips/ab")]
    assert {f.path: f.size for f in tier.list(REL)} == {f"{REL}/{n}": len(d) for n, d in files.items()}
    assert list(tier.list("aips/none")) == []
    assert [f.path for f in tier.list(f"{REL}/data/big.bin")] == [f"{REL}/data/big.bin"]   # a file lists itself
    with tier.open(f"{REL}/{VN_NAME}") as f:
        assert f.read() == files[VN_NAME]
    with pytest.raises(FileNotFoundError):
        tier.open(f"{REL}/nope.txt")
    tier.get(f"{REL}/data/big.bin", tmp_path / "big.bin")
    assert (tmp_path / "big.bin").read_bytes() == files["data/big.bin"]


def test_fetch_tree_copies_and_hashes_in_one_read(tier, tmp_path):
    files = write_tree(tmp_path / "src", REL, tree_files())
    tier.put_tree(tmp_path / "src", REL)
    got = tier.fetch_tree(REL, tmp_path / "out", ("sha256", "sha512"), keep=lambda n: "/" not in n)
    assert {d.path: (d.size, d.digests["sha256"]) for d in got} == {n: (len(b), sha(b)) for n, b in files.items()}
    assert all((tmp_path / "out" / n).read_bytes() == b for n, b in files.items())
    assert all((d.content is not None) == ("/" not in d.path) for d in got)
    with pytest.raises(FileNotFoundError):
        tier.fetch_tree("aips/00/00/uuid-none/v1", tmp_path / "none")


def test_read_tree_of_a_missing_tree_is_file_not_found(tier):
    with pytest.raises(FileNotFoundError):
        list(tier.read_tree("aips/00/00/uuid-none/v1"))


def test_put_file_writes_and_replaces(tier, tmp_path):
    src = tmp_path / "readme.txt"
    src.write_bytes(b"first")
    d = tier.put_file(src, "aips/README.txt")
    assert (d.path, d.size, d.digests["sha256"]) == ("aips/README.txt", 5, sha(b"first"))
    src.write_bytes(b"second, longer")
    tier.put_file(src, "aips/README.txt")
    with tier.open("aips/README.txt") as f:
        assert f.read() == b"second, longer"
    assert all_paths(tier) == ["aips/README.txt"]


def test_a_folder_is_not_a_string_prefix(tier, tmp_path):
    """list('t/a') and delete('t/a') never reach 't/ab' (S3 keys are strings: the trailing '/' matters)."""
    for rel in ("t/a", "t/ab"):
        write_tree(tmp_path / "src", rel, {"bagit.txt": rel.encode()})
        tier.put_tree(tmp_path / "src", rel)
    assert [f.path for f in tier.list("t/a")] == ["t/a/bagit.txt"]
    tier.delete("t/a")
    assert all_paths(tier) == ["t/ab/bagit.txt"]


# --- refusals and failures ------------------------------------------------------------------------------------

def test_conflict_leaves_the_existing_tree_untouched(tier, tmp_path):
    files = write_tree(tmp_path / "src", REL, tree_files())
    tier.put_tree(tmp_path / "src", REL)
    write_tree(tmp_path / "src", REL, tree_files(seed=2))
    with pytest.raises(TierConflict):
        tier.put_tree(tmp_path / "src", REL)
    assert {d.path: d.digests["sha256"] for d in tier.read_tree(REL)} == {n: sha(b) for n, b in files.items()}
    assert all_paths(tier) == sorted(f"{REL}/{n}" for n in files)


def test_full_tier_refuses_before_writing(tier, tmp_path, monkeypatch):
    write_tree(tmp_path / "src", REL, tree_files())
    monkeypatch.setattr(tier, "free_space", lambda: 1000)   # the one stub: filling a real disk is done elsewhere
    with pytest.raises(TierFull):
        tier.put_tree(tmp_path / "src", REL)
    assert not tier.exists(REL) and all_paths(tier) == []


def test_source_vanishing_mid_put_leaves_nothing(tier, tmp_path):
    """The source files are unlinked once the first bytes went out: the file being copied stays readable (it
    is open), every later one is gone, so the put fails part way."""
    src = tmp_path / "src"
    write_tree(src, REL, tree_files())

    def unlink_all(calls: int, done: int) -> None:
        if calls == 1:
            for p in sorted((src / REL).rglob("*")):
                if p.is_file():
                    p.unlink()

    with pytest.raises(StorageError) as failed:
        tier.put_tree(src, REL, progress=Progress(unlink_all))
    assert not isinstance(failed.value, TierUnreachable)
    assert not tier.exists(REL)
    assert all_paths(tier) == [] and staged(tier) == []


def test_interrupt_mid_put_leaves_nothing(tier, tmp_path):
    write_tree(tmp_path / "src", REL, tree_files())

    def interrupt(calls: int, done: int) -> None:
        if calls == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tier.put_tree(tmp_path / "src", REL, progress=Progress(interrupt))
    assert not tier.exists(REL) and all_paths(tier) == [] and staged(tier) == []


def test_delete_a_tree_a_file_and_nothing(tier, tmp_path):
    files = write_tree(tmp_path / "src", REL, tree_files())
    tier.put_tree(tmp_path / "src", REL)
    tier.delete(f"{REL}/data/empty.txt")
    assert all_paths(tier) == sorted(f"{REL}/{n}" for n in files if n != "data/empty.txt")
    tier.delete(REL)
    assert not tier.exists(REL) and all_paths(tier) == [] and staged(tier) == []
    tier.delete(REL)
    tier.delete("aips/never/was/here")


@pytest.mark.parametrize("rel", ["../x", "/abs", "a/../../x"])
def test_unsafe_paths_are_refused(tier, tmp_path, rel):
    (tmp_path / "x").mkdir()
    calls: list[Callable[[], Any]] = [
        lambda: tier.exists(rel), lambda: tier.stat(rel), lambda: list(tier.list(rel)), lambda: tier.open(rel),
        lambda: list(tier.read_tree(rel)), lambda: tier.delete(rel), lambda: tier.put_tree(tmp_path / "x", rel),
        lambda: tier.url(rel)]
    for call in calls:
        with pytest.raises(StorageError):
            call()


# --- identity and listing -------------------------------------------------------------------------------------

def test_aip_paths_of_a_fanned_out_layout(tier, tmp_path):
    assert tier.aip_paths() == set()
    rels = [REL, REL[:-1] + "2", "aips/12/34/uuid-12340000-0000-4000-8000-000000000002/v1"]
    for rel in rels:
        write_tree(tmp_path / "src", rel, {"bagit.txt": b"BagIt-Version: 1.0\n", "data/a.txt": rel.encode()})
        tier.put_tree(tmp_path / "src", rel)
    assert tier.aip_paths() == set(rels)


URLS = {
    "memory": r"memory://preserve-test-[0-9a-f]+/{rel}",
    "sftp": r"sftp://[^@/]+@127\.0\.0\.1:\d+/.+/sftp-0/{rel}",
    "s3": r"s3://preserve-[0-9a-f]+/aips-copy/{rel}",
    "local": r".*/tiers/t0/{rel}",
}


def test_url(tier):
    url = tier.url(REL)
    assert re.fullmatch(URLS[tier.kind].format(rel=re.escape(REL)), url), url
    assert url.startswith(tier.location.rstrip("/"))


def test_reachable(tier):
    tier.check()
    assert tier.reachable() == (True, "")


# --- unreachable tiers ----------------------------------------------------------------------------------------

def assert_unreachable(tier) -> str:
    with pytest.raises(TierUnreachable) as down:
        tier.check()
    ok, why = tier.reachable()
    assert ok is False and why == str(down.value).split("\n")[0]
    assert down.value.hint
    return str(down.value)


@pytest.mark.parametrize("kind", ["local", "memory", "sftp"])
def test_absent_base_is_unreachable_and_not_created(tier_factory, kind):
    """Copies on a tier whose base is absent are unknown, not missing: listing raises, nothing is created."""
    tier = tier_factory(kind, base=False)
    assert_unreachable(tier)
    for call in (lambda: tier.exists(REL), lambda: list(tier.list("aips")), tier.aip_paths):
        with pytest.raises(TierUnreachable):
            call()
    spec_path = {"local": lambda: Path(tier.location), "memory": None, "sftp": lambda: Path(tier.root)}[kind]
    if spec_path is None:
        import fsspec

        assert not fsspec.filesystem("memory").exists(tier.root)
    else:
        assert not spec_path().exists()


def test_s3_missing_bucket_is_unreachable_and_not_created(tier_factory, s3_server):
    tier = tier_factory("s3", base=False)
    assert "does not exist" in assert_unreachable(tier)
    buckets = [b["Name"] for b in s3_server.client().list_buckets()["Buckets"]]
    assert tier.bucket not in buckets


def test_s3_endpoint_down_is_unreachable(tier_factory, s3_server):
    from preserve_tests_storage_servers import free_port  # loaded by conftest

    tier = tier_factory("s3", endpoint=f"http://127.0.0.1:{free_port()}", timeout=2)
    started = time.monotonic()
    assert_unreachable(tier)
    assert time.monotonic() - started < 15


def test_sftp_wrong_key_is_unreachable(tier_factory, sshd):
    tier = tier_factory("sftp", key=str(sshd.other_key))
    assert "cannot be reached" in assert_unreachable(tier)


def test_sftp_unknown_host_key_is_refused(tier_factory, sshd, tmp_path):
    other = Path(f"{sshd.other_key}.pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[{sshd.host}]:{sshd.port} {other[0]} {other[1]}\n")
    assert_unreachable(tier_factory("sftp", known_hosts=str(known)))


def test_sftp_known_hosts_required_unless_insecure(tier_factory, sshd, tmp_path):
    spec = sshd.spec(tmp_path)
    del spec["known_hosts"]
    with pytest.raises(ConfigError):
        open_tier("nas", spec, tmp_path)
    with pytest.raises(ConfigError):
        open_tier("nas", {**spec, "know_hosts": "typo"}, tmp_path)
    tier = open_tier("nas", {**spec, "insecure_host_key": True}, tmp_path)
    try:
        assert tier.reachable() == (True, "")
    finally:
        tier.close()


def test_sftp_server_stopped_is_unreachable(tier_factory, own_sshd):
    tier = tier_factory("sftp", server=own_sshd)
    tier.check()
    own_sshd.stop()
    why = assert_unreachable(tier)
    assert f"{own_sshd.host}:{own_sshd.port}" in why
    later = tier_factory("sftp", server=own_sshd)   # opening never connects: no error until it is used
    assert later.reachable()[0] is False


def test_sftp_server_gone_between_puts(tier_factory, own_sshd, tmp_path):
    tier = tier_factory("sftp", server=own_sshd)
    first, second = REL, REL[:-1] + "2"
    files = write_tree(tmp_path / "src", first, tree_files())
    write_tree(tmp_path / "src", second, tree_files(seed=2))
    tier.put_tree(tmp_path / "src", first)
    own_sshd.stop()
    with pytest.raises(TierUnreachable):
        tier.put_tree(tmp_path / "src", second)
    own_sshd.start()
    tier.check()   # the same tier reconnects
    assert not tier.exists(second)
    assert all_paths(tier) == sorted(f"{first}/{n}" for n in files) and staged(tier) == []
    assert tier.aip_paths() == {first}


def test_sftp_server_gone_mid_put_leaves_nothing_once_back(tier_factory, own_sshd, tmp_path):
    """The staged copy cannot be removed while the server is away; it is removed on reconnection."""
    tier = tier_factory("sftp", server=own_sshd)
    write_tree(tmp_path / "src", REL, tree_files())

    def kill(calls: int, done: int) -> None:
        if calls == 1:
            own_sshd.stop()

    with pytest.raises(TierUnreachable):
        tier.put_tree(tmp_path / "src", REL, progress=Progress(kill))
    own_sshd.start()
    tier.check()   # reconnects, and removes the staged copy it could not remove before
    assert not tier.exists(REL) and all_paths(tier) == [] and staged(tier) == []


def test_s3_bagit_is_written_last_and_required(tier_factory, tmp_path):
    """No rename on S3: a tree is a bag only once its bagit.txt is there, and bagit.txt comes last."""
    tier = tier_factory("s3")
    files = write_tree(tmp_path / "src", REL, tree_files())
    seen: list[list[str]] = []
    tier.put_tree(tmp_path / "src", REL, progress=Progress(lambda c, d: seen.append(all_paths(tier))))
    assert all(f"{REL}/bagit.txt" not in listing for listing in seen)
    assert len(seen[-1]) == len(files) - 1
    (tmp_path / "x.txt").write_bytes(b"x")
    tier.put_file(tmp_path / "x.txt", REL[:-1] + "3/data/x.txt")   # a tree without bagit.txt
    assert tier.aip_paths() == {REL}
    assert tier.atomic_publish is False


def test_opening_never_connects(tmp_path):
    """Nothing listens on these ports: open_tier must not notice."""
    from preserve_tests_storage_servers import free_port

    port = free_port()
    sftp = open_tier("nas", {"kind": "sftp", "host": "127.0.0.1", "port": port, "user": "u", "key": "k",
                             "known_hosts": "kh", "path": "/srv"}, tmp_path)
    s3 = open_tier("obj", {"kind": "s3", "endpoint": f"http://127.0.0.1:{port}", "bucket": "b"}, tmp_path)
    assert sftp.location == f"sftp://u@127.0.0.1:{port}/srv" and s3.location == "s3://b"
    assert not os.path.exists(tmp_path / "srv")
