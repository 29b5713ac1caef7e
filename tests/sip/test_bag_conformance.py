"""BagIt validation: the LoC conformance suite, then small bags made here and damaged one way each."""

from __future__ import annotations

import hashlib
import os
import shutil
import unicodedata
from pathlib import Path

import bagit
import pytest

import preserve.sip.bagcheck as bagcheck
from preserve.sip.bagcheck import check_bag, is_bag

SUITE = Path(__file__).resolve().parents[2].parent / "shared" / "bagit-conformance"


def _cases(pattern: str) -> list[str]:
    if not SUITE.is_dir():
        return []
    return sorted(str(p.relative_to(SUITE)) for p in SUITE.glob(pattern) if p.is_dir())  # skip Makefiles


def _codes(result) -> list[str]:
    return sorted(f.code for f in result.findings)


def _describe(result) -> str:
    return "\n".join(f"{f.code} {f.where}: {f.message_en}" for f in result.findings)


# --- the conformance suite ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("*/valid/*"))
def test_conformance_valid(shared_dir, case):
    result = check_bag(shared_dir / "bagit-conformance" / case)
    assert result.valid, _describe(result)


@pytest.mark.parametrize("case", _cases("*/warning/*"))
def test_conformance_warning(shared_dir, case):
    result = check_bag(shared_dir / "bagit-conformance" / case)
    assert result.valid, _describe(result)
    assert any(f.code.startswith("W-") and f.code != "W-BAG-WEAK-ALGORITHM" for f in result.findings), \
        _describe(result)


@pytest.mark.parametrize("case", _cases("*/invalid/*"))
def test_conformance_invalid(shared_dir, case):
    result = check_bag(shared_dir / "bagit-conformance" / case)
    assert not result.valid, f"{case} passed"


@pytest.mark.parametrize("case", _cases("*/linux-only/*") + _cases("*/windows-only/*"))
def test_conformance_out_of_scope_paths(shared_dir, case):
    """Every platform-only case names a path outside the bag (/…, ~, C:\\…, %HomeDrive%, \\\\?\\UNC…)."""
    result = check_bag(shared_dir / "bagit-conformance" / case)
    assert "E-PATH-UNSAFE" in _codes(result), _describe(result)


def test_conformance_version_decides_same_hash_duplicates(shared_dir):
    suite = shared_dir / "bagit-conformance"
    old = check_bag(suite / "v0.97/warning/same-filename-listed-twice-with-the-same-hash")
    new = check_bag(suite / "v1.0/invalid/same-filename-listed-twice-with-the-same-hash")
    assert "W-BAG-DUPLICATE-ENTRY" in _codes(old) and "E-BAG-DUPLICATE-ENTRY" not in _codes(old)
    assert "E-BAG-DUPLICATE-ENTRY" in _codes(new)


def test_conformance_encodings_and_metadata(shared_dir):
    suite = shared_dir / "bagit-conformance" / "v0.97/valid"
    utf16 = check_bag(suite / "UTF-16-encoded-tag-files")
    assert utf16.bag_info["Contact-Name"] == ["Chris Adams"]
    assert set(utf16.payload) == {"data/bare-filename", "data/text-file.txt"}
    seps = check_bag(suite / "uncommon-metadata-separators")
    assert seps.bag_info["Test-Tag"] == ["1", "2", "3", "4", "5"]
    dup = check_bag(suite / "duplicate-metadata-entries")
    assert sum(len(v) for k, v in dup.bag_info.items() if k.lower() == "case-insensitivity-test") == 3


def _writable_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for dirpath, dirnames, filenames in os.walk(dst):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
    return dst


def test_conformance_holey_bag(shared_dir, tmp_path):
    bag = _writable_copy(shared_dir / "bagit-conformance/v0.97/valid/holey-bag", tmp_path / "holey")
    (bag / "data/test2.txt").unlink()
    lenient = check_bag(bag)
    assert lenient.valid and "W-BAG-HOLEY" in _codes(lenient), _describe(lenient)
    strict = check_bag(bag, allow_holey=False)
    assert "E-BAG-HOLEY" in _codes(strict) and not strict.valid


# --- bags made here ----------------------------------------------------------------------------------


def retag(bag: Path) -> None:
    """Recompute the tag manifests after a deliberate edit, so that only the edit itself is reported."""
    for tm in bag.glob("tagmanifest-*.txt"):
        alg = tm.name[len("tagmanifest-"):-len(".txt")]
        lines = []
        for line in tm.read_text().splitlines():
            name = line.split(None, 1)[1]
            if (bag / name).exists():
                lines.append(f"{hashlib.new(alg, (bag / name).read_bytes()).hexdigest()}  {name}")
        tm.write_text("\n".join(lines) + "\n")


def set_version(bag: Path, version: str) -> None:
    (bag / "bagit.txt").write_text(f"BagIt-Version: {version}\nTag-File-Character-Encoding: UTF-8\n")
    retag(bag)


def append(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def sha(data: bytes, alg: str = "sha256") -> str:
    return hashlib.new(alg, data).hexdigest()


@pytest.fixture
def bag(tmp_path) -> Path:
    d = tmp_path / "bag"
    (d / "HS01").mkdir(parents=True)
    (d / "HS01" / "HS01.001.pdf").write_bytes(b"%PDF-1.7 first document")
    (d / "HS01" / "HS01.002.pdf").write_bytes(b"%PDF-1.7 second document")
    bagit.make_bag(str(d), {"Source-Organization": "Tỉnh uỷ Hải Dương"}, checksums=["sha256", "sha512"])
    set_version(d, "1.0")
    return d


def test_made_bag_is_valid(bag):
    result = check_bag(bag)
    assert result.findings == [], _describe(result)
    assert result.valid and result.version == "1.0" and is_bag(bag)
    assert result.bag_info["Source-Organization"] == ["Tỉnh uỷ Hải Dương"]
    assert set(result.payload) == {"data/HS01/HS01.001.pdf", "data/HS01/HS01.002.pdf"}
    assert result.payload["data/HS01/HS01.001.pdf"]["sha256"] == sha(b"%PDF-1.7 first document")
    assert not is_bag(bag / "data")


def test_each_file_hashed_once_for_all_algorithms(bag, monkeypatch):
    calls = []

    def counting(path, algorithms):
        calls.append((Path(path).relative_to(bag).as_posix(), tuple(algorithms)))
        return bagcheck_hash_file(path, algorithms)

    bagcheck_hash_file = bagcheck.hash_file
    monkeypatch.setattr(bagcheck, "hash_file", counting)
    check_bag(bag)
    names = [c[0] for c in calls]
    assert len(names) == len(set(names))
    assert ("data/HS01/HS01.001.pdf", ("sha256", "sha512")) in calls


def test_corrupt_payload(bag):
    (bag / "data/HS01/HS01.001.pdf").write_bytes(b"%PDF-1.7 FIRST document")  # same size
    result = check_bag(bag)
    digests = [f for f in result.findings if f.code == "E-BAG-DIGEST"]
    assert {f.params["algorithm"] for f in digests} == {"sha256", "sha512"}
    assert all(f.where == "data/HS01/HS01.001.pdf" for f in digests)
    assert digests[0].params["actual"] != digests[0].params["expected"]
    assert _codes(check_bag(bag, fast=True)) == []  # fast: no hashing, sizes unchanged


def test_missing_file(bag):
    (bag / "data/HS01/HS01.002.pdf").unlink()
    result = check_bag(bag, fast=True)
    assert _codes(result) == ["E-BAG-FILE-MISSING", "E-BAG-FILE-MISSING", "E-BAG-OXUM"]
    missing = [f for f in result.findings if f.code == "E-BAG-FILE-MISSING"]
    assert {f.params["manifest"] for f in missing} == {"manifest-sha256.txt", "manifest-sha512.txt"}
    assert all(f.where.startswith(f.params["manifest"] + ":") for f in missing)
    assert {f.params["path"] for f in missing} == {"data/HS01/HS01.002.pdf"}


def test_extra_file(bag):
    (bag / "data/HS01/stray.pdf").write_bytes(b"x")
    result = check_bag(bag)
    assert _codes(result) == ["E-BAG-FILE-UNLISTED", "E-BAG-FILE-UNLISTED", "E-BAG-OXUM"]
    assert {f.params["manifest"] for f in result.findings if f.code == "E-BAG-FILE-UNLISTED"} == {
        "manifest-sha256.txt", "manifest-sha512.txt"}


def test_wrong_oxum(bag):
    info = (bag / "bag-info.txt").read_text().replace("Payload-Oxum: 47.2", "Payload-Oxum: 48.2")
    (bag / "bag-info.txt").write_text(info)
    retag(bag)
    result = check_bag(bag, fast=True)
    assert _codes(result) == ["E-BAG-OXUM"]
    assert result.findings[0].params == {"expected": "48.2", "actual": "47.2"}


def test_corrupted_tag_file(bag):
    append(bag / "bag-info.txt", "External-Identifier: added after bagging")
    result = check_bag(bag)
    assert _codes(result) == ["E-BAG-DIGEST", "E-BAG-DIGEST"]
    assert {f.where for f in result.findings} == {"bag-info.txt"}


def test_missing_tag_file(bag):
    (bag / "bag-info.txt").unlink()
    result = check_bag(bag)
    assert _codes(result) == ["E-BAG-FILE-MISSING", "E-BAG-FILE-MISSING"]
    assert {f.params["path"] for f in result.findings} == {"bag-info.txt"}


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "data/../../outside", "~/x", "~root/x",
                                  "C:\\Windows\\System32\\x.exe", "\\\\server\\share\\x", "bag-info.txt",
                                  "%HomeDrive%\\x", "data\\..\\..\\x"])
def test_unsafe_path_in_manifest(bag, path):
    append(bag / "manifest-sha256.txt", f"{sha(b'')}  {path}")
    retag(bag)
    result = check_bag(bag)
    assert _codes(result) == ["E-PATH-UNSAFE"], _describe(result)
    assert result.findings[0].where == "manifest-sha256.txt:3"


def test_unsafe_path_in_tag_manifest(bag):
    append(bag / "tagmanifest-sha256.txt", f"{sha(b'')}  ../evil.txt")
    assert "E-PATH-UNSAFE" in _codes(check_bag(bag))


@pytest.mark.parametrize("path", ["/etc/passwd", "../../README.md", "~/x", "outside.txt"])
def test_unsafe_path_in_fetch(bag, path):
    (bag / "fetch.txt").write_text(f"https://example.org/x - {path}\n")
    result = check_bag(bag)
    assert _codes(result) == ["E-PATH-UNSAFE"]
    assert result.findings[0].where == "fetch.txt:1"


def test_duplicate_entry_with_different_digest(bag):
    append(bag / "manifest-sha256.txt", f"{sha(b'other')}  data/HS01/HS01.001.pdf")
    retag(bag)
    assert "E-BAG-DUPLICATE-ENTRY" in _codes(check_bag(bag))


@pytest.mark.parametrize("version,code", [("1.0", "E-BAG-DUPLICATE-ENTRY"), ("0.97", "W-BAG-DUPLICATE-ENTRY")])
def test_duplicate_entry_with_same_digest(bag, version, code):
    append(bag / "manifest-sha256.txt", f"{sha(b'%PDF-1.7 first document')}  data/HS01/HS01.001.pdf")
    set_version(bag, version)
    assert _codes(check_bag(bag)) == [code]


def test_unknown_algorithm(bag):
    (bag / "manifest-sha256.txt").rename(bag / "manifest-foo99.txt")
    (bag / "tagmanifest-sha256.txt").unlink()
    (bag / "tagmanifest-sha512.txt").unlink()
    result = check_bag(bag)
    assert _codes(result) == ["E-BAG-ALGORITHM"]
    assert result.findings[0].params["algorithm"] == "foo99"


def test_weak_algorithm_only(tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    (d / "a.txt").write_text("x")
    bagit.make_bag(str(d), checksums=["md5"])
    assert _codes(check_bag(d)) == ["W-BAG-WEAK-ALGORITHM"]


def test_no_payload_manifest(bag):
    for m in bag.glob("*manifest-*.txt"):
        m.unlink()
    assert "E-BAG-MANIFEST-MISSING" in _codes(check_bag(bag))


def test_manifest_syntax(bag):
    append(bag / "manifest-sha256.txt", "not-a-checksum data/HS01/HS01.001.pdf")
    append(bag / "manifest-sha256.txt", "abcd  data/HS01/HS01.001.pdf")  # wrong length for sha256
    retag(bag)
    result = check_bag(bag)
    assert _codes(result) == ["E-BAG-MANIFEST-SYNTAX", "E-BAG-MANIFEST-SYNTAX"]
    assert [f.where for f in result.findings] == ["manifest-sha256.txt:3", "manifest-sha256.txt:4"]


@pytest.mark.parametrize("text", [
    "\ufeffBagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
    "BagIt-Version: 1.0\n",
    "BagIt-Version : 1.0\nTag-File-Character-Encoding : UTF-8\n",
    "BagIt-Version: one\nTag-File-Character-Encoding: UTF-8\n",
    "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\nExtra: line\n",
    "BagIt-Version: 1.0\nTag-File-Character-Encoding: NO-SUCH-CODEC\n",
])
def test_bad_declaration(bag, text):
    (bag / "bagit.txt").write_text(text, encoding="utf-8")
    retag(bag)
    assert "E-BAG-DECLARATION" in _codes(check_bag(bag))


def test_missing_declaration(bag):
    (bag / "bagit.txt").unlink()
    retag(bag)
    assert _codes(check_bag(bag)) == ["E-BAG-DECLARATION"]
    assert not is_bag(bag)


@pytest.mark.parametrize("line", ["no colon here", "  continuation first", "Label : spaced (1.0 forbids)",
                                  "Payload-Oxum: not-an-oxum"])
def test_bad_bag_info(bag, line):
    info = bag / "bag-info.txt"
    text = info.read_text()
    info.write_text(line + "\n" + text if line.startswith(" ") else text + line + "\n")
    retag(bag)
    assert "E-BAG-BAGINFO" in _codes(check_bag(bag))


def test_bag_info_continuation_lines(bag):
    append(bag / "bag-info.txt", "External-Description: Hồ sơ hội nghị\n  Tỉnh uỷ năm 1968")
    retag(bag)
    result = check_bag(bag)
    assert result.valid
    assert result.bag_info["External-Description"] == ["Hồ sơ hội nghị Tỉnh uỷ năm 1968"]


def test_symlink_and_fifo(bag, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the bag")
    os.symlink(secret, bag / "data/HS01/link.pdf")
    os.symlink(tmp_path, bag / "data/dirlink")
    os.mkfifo(bag / "data/HS01/pipe")
    result = check_bag(bag)  # must not block on the fifo nor read through the links
    codes = _codes(result)
    assert codes.count("E-PATH-LINK") == 2 and codes.count("E-PATH-SPECIAL") == 1, _describe(result)
    assert "E-BAG-FILE-UNLISTED" not in codes


def test_percent_encoded_names(bag):
    weird = "data/HS01/a\nb%c.pdf"
    (bag / weird).write_bytes(b"x")
    append(bag / "manifest-sha256.txt", f"{sha(b'x')}  data/HS01/a%0Ab%25c.pdf")
    append(bag / "manifest-sha512.txt", f"{sha(b'x', 'sha512')}  data/HS01/a%0Ab%25c.pdf")
    info = (bag / "bag-info.txt").read_text().replace("Payload-Oxum: 47.2", "Payload-Oxum: 48.3")
    (bag / "bag-info.txt").write_text(info)
    retag(bag)
    result = check_bag(bag)
    assert result.valid and result.findings == [], _describe(result)
    assert weird in result.payload


def test_nfd_name_on_disk_matches_nfc_manifest(tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    name = "Hồ sơ Hải Dương.pdf"
    (d / unicodedata.normalize("NFD", name)).write_bytes(b"scan")
    bagit.make_bag(str(d), checksums=["sha256"])
    m = d / "manifest-sha256.txt"
    m.write_text(unicodedata.normalize("NFC", m.read_text(encoding="utf-8")), encoding="utf-8")
    retag(d)
    result = check_bag(d)
    assert result.valid and result.findings == [], _describe(result)
    assert f"data/{unicodedata.normalize('NFC', name)}" in result.payload


def test_case_and_normalisation_collisions_and_system_files(tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    (d / "scan.pdf").write_bytes(b"1")
    (d / "SCAN.pdf").write_bytes(b"2")
    (d / unicodedata.normalize("NFC", "Núñez.pdf")).write_bytes(b"3")
    (d / unicodedata.normalize("NFD", "Núñez.pdf")).write_bytes(b"4")
    (d / "Thumbs.db").write_bytes(b"")
    (d / "._scan.pdf").write_bytes(b"")
    bagit.make_bag(str(d), checksums=["sha256"])
    codes = _codes(check_bag(d))
    assert "W-BAG-CASE-COLLISION" in codes
    assert "W-BAG-NORMALISATION" in codes
    assert codes.count("W-BAG-SYSTEM-FILE") == 2


def test_holey_bag(bag):
    size = (bag / "data/HS01/HS01.002.pdf").stat().st_size
    (bag / "fetch.txt").write_text(f"https://example.org/HS01.002.pdf {size} data/HS01/HS01.002.pdf\n")
    (bag / "data/HS01/HS01.002.pdf").unlink()
    lenient = check_bag(bag)
    assert _codes(lenient) == ["W-BAG-HOLEY"] and lenient.valid, _describe(lenient)
    strict = check_bag(bag, allow_holey=False)
    assert _codes(strict) == ["E-BAG-HOLEY"] and not strict.valid


def test_tolerated_manifest_forms(bag):
    """md5sum's binary-mode '*' and a leading './' are accepted with W-BAG-MANIFEST-FORMAT."""
    m = bag / "manifest-sha256.txt"
    lines = m.read_text().splitlines()
    lines = [lines[0].replace("  data/", " *data/"), lines[1].replace("  data/", "  ./data/")]
    m.write_text("\n".join(lines) + "\n")
    retag(bag)
    result = check_bag(bag)
    assert _codes(result) == ["W-BAG-MANIFEST-FORMAT", "W-BAG-MANIFEST-FORMAT"], _describe(result)
    assert set(result.payload) == {"data/HS01/HS01.001.pdf", "data/HS01/HS01.002.pdf"}


def test_absent_system_file_is_a_warning(bag):
    """Copying tools drop .DS_Store and Thumbs.db; a manifest naming one that is gone is not an error."""
    append(bag / "manifest-sha256.txt", f"{sha(b'')}  data/HS01/.DS_Store")
    append(bag / "manifest-sha512.txt", f"{sha(b'', 'sha512')}  data/HS01/.DS_Store")
    info = (bag / "bag-info.txt").read_text().replace("Payload-Oxum: 47.2", "Payload-Oxum: 47.3")
    (bag / "bag-info.txt").write_text(info)
    retag(bag)
    result = check_bag(bag)
    assert _codes(result) == ["W-BAG-SYSTEM-FILE-ABSENT", "W-BAG-SYSTEM-FILE-ABSENT"], _describe(result)


def test_unreadable_file(bag, monkeypatch):
    real = bagcheck.hash_file

    def failing(path, algorithms):
        if Path(path).name == "HS01.001.pdf":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, algorithms)

    monkeypatch.setattr(bagcheck, "hash_file", failing)  # root can read a chmod 000 file, so simulate
    result = check_bag(bag)
    assert _codes(result) == ["E-BAG-FILE-UNREADABLE"]
    assert result.findings[0].where == "data/HS01/HS01.001.pdf"


def test_not_a_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert _codes(check_bag(f)) == ["E-BAG-STRUCTURE"]


def test_messages_render_in_both_languages(bag):
    (bag / "data/HS01/HS01.001.pdf").write_bytes(b"%PDF-1.7 FIRST document")
    for f in check_bag(bag).findings:
        assert "{" not in f.message_vi and "{" not in f.message_en
