"""Zips whose UTF-8 names lack the UTF-8 flag (common from Windows tools) keep their Vietnamese names."""

import zipfile

from preserve.sip.safety import extract_zip


def test_utf8_names_without_flag_are_decoded(tmp_path):
    name = "Hồ sơ"  # 8 bytes in UTF-8
    raw = name.encode("utf-8")
    placeholder = b"ABCDEFGH"
    assert len(raw) == len(placeholder)
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ABCDEFGH/ghi-chu.txt", "xin chào")
    data = z.read_bytes().replace(placeholder, raw)  # same length: offsets stay right; no UTF-8 flag set
    z.write_bytes(data)
    with zipfile.ZipFile(z) as zf:
        assert not zf.infolist()[0].flag_bits & 0x800
        assert zf.infolist()[0].filename != f"{name}/ghi-chu.txt"  # Python alone garbles it
    findings = extract_zip(z, tmp_path / "out")
    assert [f for f in findings if f.is_error] == []
    assert (tmp_path / "out" / name / "ghi-chu.txt").read_text() == "xin chào"
