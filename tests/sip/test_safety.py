"""Safe intake: hostile zips, folder trees and XML, each built here in code."""

from __future__ import annotations

import os
import stat
import struct
import unicodedata
import warnings
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from preserve.sip.safety import (
    ZipLimits, check_tree, check_xml, check_xml_bytes, check_zip, extract_zip, path_problem, xml_parser,
)

MiB = 1 << 20


def codes(findings) -> list[str]:
    return sorted(f.code for f in findings)


def make_zip(path: Path, entries, compression=zipfile.ZIP_DEFLATED) -> Path:
    """entries: (name or ZipInfo, bytes). Duplicate names are written as given."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names, which we want
        with zipfile.ZipFile(path, "w", compression=compression) as zf:
            for name, data in entries:
                if isinstance(name, zipfile.ZipInfo) and name.compress_type == zipfile.ZIP_STORED:
                    name.compress_type = compression
                zf.writestr(name, data)
    return path


def unix_entry(name: str, mode: int) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name)
    zi.create_system = 3
    zi.external_attr = mode << 16
    return zi


def tree_listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.fixture
def dest(tmp_path) -> Path:
    return tmp_path / "out" / "dest"


# --- paths -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["/abs", "../evil", "a/../../evil", "C:/x", "c:x", "\\\\server\\share", "//server/x",
                                  "~/x", "~root/x", "%HomeDrive%\\x", "", "a\x00b"])
def test_path_problem_refuses(name):
    assert path_problem(name, backslash_is_separator=True)


@pytest.mark.parametrize("name", ["data/a.pdf", "HS01/HS01.001.pdf", "a/~b", "a/%7Eb", "Hồ sơ/tài liệu.pdf", "..a/b.."])
def test_path_problem_accepts(name):
    assert path_problem(name) is None


def test_backslash_only_unsafe_when_it_escapes():
    assert path_problem("dir\\file.pdf", backslash_is_separator=True) is None
    assert path_problem("..\\evil", backslash_is_separator=True)
    assert path_problem("dir\\file.pdf")  # outside zips a backslash is refused


# --- zips --------------------------------------------------------------------------------------------


def test_clean_zip_extracts(tmp_path, dest):
    inner = make_zip(tmp_path / "inner.zip", [("../nested-is-not-opened", b"x")])
    z = make_zip(tmp_path / "ok.zip", [
        ("mucluc.xlsx", b"PK fake"), ("HS01/", b""), ("HS01/HS01.001.pdf", b"%PDF-1.7"),
        ("win\\style\\HS02.001.pdf", b"%PDF-1.7 windows"), ("inner.zip", inner.read_bytes()),
    ])
    assert check_zip(z) == []
    assert extract_zip(z, dest) == []
    assert tree_listing(dest) == ["HS01", "HS01/HS01.001.pdf", "inner.zip", "mucluc.xlsx", "win", "win/style",
                                  "win/style/HS02.001.pdf"]
    assert (dest / "win/style/HS02.001.pdf").read_bytes() == b"%PDF-1.7 windows"


@pytest.mark.parametrize("name", ["../evil", "/abs", "a/../../evil", "..\\evil", "C:\\evil", "~/evil"])
def test_unsafe_entry_is_refused_and_nothing_written(tmp_path, dest, name):
    z = make_zip(tmp_path / "bad.zip", [("ok.txt", b"ok"), (name, b"evil")])
    findings = extract_zip(z, dest)
    assert "E-PATH-UNSAFE" in codes(findings)
    assert [f.where for f in findings if f.code == "E-PATH-UNSAFE"] == [name]
    assert all(f.dossier is None for f in findings)
    assert tree_listing(dest) == []
    assert not any(p.name == "evil" for p in tmp_path.rglob("*"))
    assert not Path("/abs").exists()


def test_symlink_and_device_entries(tmp_path, dest):
    z = make_zip(tmp_path / "links.zip", [
        (unix_entry("link", stat.S_IFLNK | 0o777), b"/etc/passwd"),
        (unix_entry("dev", stat.S_IFCHR | 0o600), b""),
        (unix_entry("fifo", stat.S_IFIFO | 0o600), b""),
        (unix_entry("plain.txt", stat.S_IFREG | 0o644), b"fine"),
    ])
    found = check_zip(z)
    assert codes(found) == ["E-PATH-LINK", "E-PATH-SPECIAL", "E-PATH-SPECIAL"]
    assert extract_zip(z, dest) == found
    assert tree_listing(dest) == []


def test_name_collisions(tmp_path):
    nfc = unicodedata.normalize("NFC", "HS01/Núñez.pdf")
    nfd = unicodedata.normalize("NFD", nfc)
    z = make_zip(tmp_path / "coll.zip", [(nfc, b"1"), (nfd, b"2"), ("dup.pdf", b"a"), ("dup.pdf", b"b"),
                                         ("x", b"file"), ("x/y", b"under a file")])
    found = [f for f in check_zip(z) if f.code == "E-PATH-COLLISION"]
    assert len(found) == 3
    assert any(nfc in f.params["paths"] and nfd in f.params["paths"] for f in found)


def test_ratio_bomb(tmp_path, dest):
    z = make_zip(tmp_path / "ratio.zip", [("zeros.bin", bytes(20 * MiB))])
    found = check_zip(z)
    assert codes(found) == ["E-ZIP-BOMB"]
    assert extract_zip(z, dest) == found and tree_listing(dest) == []
    assert check_zip(z, ZipLimits(max_ratio=10_000)) == []


def test_one_gibibyte_of_zeros(tmp_path, dest):
    path = tmp_path / "gib.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("zeros.bin", "w", force_zip64=True) as f:
            chunk = bytes(MiB)
            for _ in range(1024):
                f.write(chunk)
    assert path.stat().st_size < 10 * MiB
    found = extract_zip(path, dest)
    assert "E-ZIP-BOMB" in codes(found)
    assert tree_listing(dest) == []


def test_total_size_and_entry_count(tmp_path):
    z = make_zip(tmp_path / "many.zip", [(f"f{i}.txt", os.urandom(1000)) for i in range(6)])
    assert codes(check_zip(z, ZipLimits(max_total_bytes=5000))) == ["E-ZIP-BOMB"]
    assert codes(check_zip(z, ZipLimits(max_entries=5))) == ["E-ZIP-BOMB"]
    assert check_zip(z) == []


def _patch_sizes(path: Path, declared: int) -> None:
    """Make the headers claim `declared` uncompressed bytes for the (single) entry."""
    data = bytearray(path.read_bytes())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, declared)
    struct.pack_into("<I", data, central + 24, declared)
    path.write_bytes(bytes(data))


def test_lying_header_cannot_exceed_declared_size(tmp_path, dest):
    z = make_zip(tmp_path / "liar.zip", [("small.bin", bytes(5 * MiB))])
    _patch_sizes(z, 1000)
    assert check_zip(z) == []  # the central directory claims 1000 bytes
    found = extract_zip(z, dest)
    assert codes(found) == ["E-ZIP-BOMB"]
    assert "declares" in found[0].params["detail"]
    assert tree_listing(dest) == []


def test_lying_header_against_total_limit(tmp_path, dest):
    z = make_zip(tmp_path / "liar.zip", [("a.bin", os.urandom(4000))])
    _patch_sizes(z, 4000)
    assert codes(extract_zip(z, dest, ZipLimits(max_total_bytes=3000))) == ["E-ZIP-BOMB"]


def test_crc_error(tmp_path, dest):
    z = make_zip(tmp_path / "crc.zip", [("a.txt", b"hello world, stored")], compression=zipfile.ZIP_STORED)
    data = bytearray(z.read_bytes())
    i = data.find(b"hello world")
    data[i] ^= 0xFF
    z.write_bytes(bytes(data))
    assert check_zip(z) == []
    assert codes(extract_zip(z, dest)) == ["E-ZIP-UNREADABLE"]
    assert tree_listing(dest) == []


def test_encrypted_entry(tmp_path):
    z = make_zip(tmp_path / "enc.zip", [("secret.pdf", b"not really encrypted")], compression=zipfile.ZIP_STORED)
    data = bytearray(z.read_bytes())
    data[data.find(b"PK\x03\x04") + 6] |= 0x1  # general-purpose flag bit 0: encrypted
    data[data.find(b"PK\x01\x02") + 8] |= 0x1
    z.write_bytes(bytes(data))
    assert codes(check_zip(z)) == ["E-ZIP-UNREADABLE"]


def test_not_a_zip(tmp_path, dest):
    z = tmp_path / "junk.zip"
    z.write_bytes(os.urandom(500))
    assert codes(check_zip(z)) == ["E-ZIP-UNREADABLE"]
    assert codes(extract_zip(z, dest)) == ["E-ZIP-UNREADABLE"]


def test_overlapping_entries(tmp_path):
    """Two central-directory records pointing at one local entry (the 'overlapping files' bomb)."""
    z = make_zip(tmp_path / "overlap.zip", [("aaaa", b"x" * 100), ("bbbb", b"y" * 100)], zipfile.ZIP_STORED)
    data = bytearray(z.read_bytes())
    second = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    struct.pack_into("<I", data, second + 42, 0)  # bbbb's local header offset -> aaaa's
    z.write_bytes(bytes(data))
    assert "E-ZIP-BOMB" in codes(check_zip(z))


def test_dest_must_be_empty(tmp_path):
    z = make_zip(tmp_path / "ok.zip", [("a", b"a")])
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(ValueError):
        extract_zip(z, full)


# --- folder trees ------------------------------------------------------------------------------------


def test_clean_tree(tmp_path):
    (tmp_path / "HS01").mkdir()
    (tmp_path / "HS01/HS01.001.pdf").write_bytes(b"x")
    assert check_tree(tmp_path) == []


def test_hostile_tree(tmp_path):
    root = tmp_path / "sip"
    (root / "HS01").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside / "secret.txt", root / "HS01/link.pdf")
    os.symlink(outside, root / "dirlink")
    os.mkfifo(root / "HS01/pipe")
    (root / "HS01/a.pdf").write_bytes(b"a")
    os.link(root / "HS01/a.pdf", root / "HS01/b.pdf")
    (root / unicodedata.normalize("NFC", "Hồ sơ.pdf")).write_bytes(b"1")
    (root / unicodedata.normalize("NFD", "Hồ sơ.pdf")).write_bytes(b"2")
    found = check_tree(root)
    assert codes(found) == ["E-PATH-COLLISION", "E-PATH-LINK", "E-PATH-LINK", "E-PATH-LINK", "E-PATH-LINK",
                            "E-PATH-SPECIAL"]
    links = {f.where for f in found if f.code == "E-PATH-LINK"}
    assert links == {"HS01/link.pdf", "dirlink", "HS01/a.pdf", "HS01/b.pdf"}
    assert not any("secret" in f.where for f in found)  # the linked folder was not entered
    assert all(f.dossier is None for f in found)


# --- XML ---------------------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE sheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<sheet><v>&xxe;</v></sheet>"""

XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE sheet [<!ENTITY % ext SYSTEM "file:///etc/passwd"> %ext;]>
<sheet/>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?><!DOCTYPE sheet SYSTEM "http://127.0.0.1:9/evil.dtd"><sheet/>"""


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, XXE, XXE_PARAMETER, EXTERNAL_DTD], ids=["laughs", "xxe", "param", "dtd"])
def test_xml_entities_refused(doc, tmp_path):
    found = check_xml_bytes(doc, "xl/worksheets/sheet1.xml")
    assert "E-XML-ENTITY" in codes(found)
    assert found[0].where == "xl/worksheets/sheet1.xml" and found[0].params["path"] == "xl/worksheets/sheet1.xml"
    f = tmp_path / "doc.xml"
    f.write_bytes(doc)
    assert "E-XML-ENTITY" in codes(check_xml(f, "METS.xml"))


def test_nothing_resolved():
    root = etree.fromstring(XXE, xml_parser())
    text = etree.tostring(root)
    assert b"root:" not in text
    try:  # recent libxml2 refuses the amplification outright; older ones leave the entity unexpanded
        laughs = etree.fromstring(BILLION_LAUGHS, xml_parser())
    except etree.XMLSyntaxError:
        return
    assert len(etree.tostring(laughs)) < 2000


def test_xml_well_formed_and_not(tmp_path):
    good = '<?xml version="1.0" encoding="UTF-8"?><sst><si><t>Hồ sơ</t></si></sst>'.encode()
    assert check_xml_bytes(good, "x") == []
    bad = check_xml_bytes(b"<a><b></a>", "xl/sharedStrings.xml")
    assert codes(bad) == ["E-XML-UNREADABLE"] and bad[0].params["detail"]
    f = tmp_path / "bad.xml"
    f.write_bytes(b"<a>")
    assert codes(check_xml(f, "bad.xml")) == ["E-XML-UNREADABLE"]
    assert codes(check_xml(tmp_path / "absent.xml", "absent.xml")) == ["E-XML-UNREADABLE"]
