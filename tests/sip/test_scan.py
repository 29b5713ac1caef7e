"""preserve.sip.scan: every input is built here with Pillow or pikepdf; each test names the code it expects."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from preserve.sip.scan import identify, inspect_scan

Name = pikepdf.Name


def codes(info) -> list[str]:
    return sorted(f.code for f in info.findings)


def one(info, code):
    found = [f for f in info.findings if f.code == code]
    assert len(found) == 1, info.findings
    return found[0]


def pil_pdf(path: Path, mode="RGB", size=(400, 500), resolution=200.0, pages=1) -> Path:
    colour = {"RGB": (200, 120, 40), "L": 128, "1": 1}[mode]
    imgs = [Image.new(mode, size, colour) for _ in range(pages)]
    imgs[0].save(path, "PDF", resolution=resolution, save_all=True, append_images=imgs[1:])
    return path


def image_pdf(path: Path, page_size, image_size, content: bytes, rotate=0, colorspace=Name.DeviceRGB) -> Path:
    """One page drawing an uncompressed-then-Flate image /Im0 with the given content stream."""
    pdf = pikepdf.new()
    w, h = image_size
    comps = 3 if colorspace == Name.DeviceRGB else 1
    image = pikepdf.Stream(pdf, zlib.compress(bytes(w * h * comps)), Type=Name.XObject, Subtype=Name.Image,
                           Width=w, Height=h, ColorSpace=colorspace, BitsPerComponent=8, Filter=Name.FlateDecode)
    page = pdf.add_blank_page(page_size=page_size)
    page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
    page.Contents = pdf.make_stream(content)
    if rotate:
        page.Rotate = rotate
    pdf.save(path)
    return path


def test_identify_pdf(tmp_path):
    puid, name, version, mime = identify(pil_pdf(tmp_path / "a.pdf"))
    assert puid.startswith("fmt/") and mime == "application/pdf" and "PDF" in name and version


def test_rgb_200dpi_pdf_is_clean(tmp_path):
    info = inspect_scan(pil_pdf(tmp_path / "a.pdf", pages=2), "HS01/a.pdf", "HS01")
    assert info.findings == [] and info.ok
    assert info.pages == 2 and info.mime == "application/pdf"
    p = info.page_info[0]
    assert p.dpi_x == pytest.approx(200) and p.dpi_y == pytest.approx(200)
    assert p.width_pt == pytest.approx(144) and p.height_pt == pytest.approx(180) and p.colour == "rgb"


def test_E_SCAN_DPI_150(tmp_path):
    info = inspect_scan(pil_pdf(tmp_path / "a.pdf", resolution=150), "HS01/a.pdf", "HS01")
    f = one(info, "E-SCAN-DPI")
    assert f.params == {"path": "HS01/a.pdf", "page": 1, "dpi": 150, "minimum": 200, "lowest": 150, "count": 1,
                        "total": 1}
    assert f.where == "HS01/a.pdf" and f.dossier == "HS01" and "150 dpi" in f.message_vi


def test_E_SCAN_DPI_once_per_file(tmp_path):
    info = inspect_scan(pil_pdf(tmp_path / "a.pdf", pages=3, resolution=150), "a.pdf", None)
    f = one(info, "E-SCAN-DPI")
    assert (f.params["count"], f.params["total"], f.params["page"]) == (3, 3, 1)


def test_dpi_tolerance_and_min_dpi_override(tmp_path):
    assert inspect_scan(pil_pdf(tmp_path / "a.pdf", resolution=197), "a", None).findings == []  # within 2 %
    info = inspect_scan(pil_pdf(tmp_path / "b.pdf", resolution=200), "b", None, min_dpi=300)
    assert one(info, "E-SCAN-DPI").params["minimum"] == 300


def test_W_SCAN_NOT_COLOUR_grayscale(tmp_path):
    info = inspect_scan(pil_pdf(tmp_path / "g.pdf", mode="L", pages=3), "g.pdf", "HS01")
    f = one(info, "W-SCAN-NOT-COLOUR")  # once per file, not per page
    assert f.params["page"] == 1 and f.params["detail"] == "8-bit grayscale"
    assert (f.params["count"], f.params["total"]) == (3, 3) and not f.is_error
    assert info.page_info[2].colour == "gray"


def test_W_SCAN_NOT_COLOUR_bilevel(tmp_path):
    info = inspect_scan(pil_pdf(tmp_path / "b.pdf", mode="1"), "b.pdf", "HS01")
    assert codes(info) == ["W-SCAN-NOT-COLOUR"]
    assert one(info, "W-SCAN-NOT-COLOUR").params["detail"] == "1-bit bilevel"


def test_W_SCAN_NO_IMAGE(tmp_path):
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.save(tmp_path / "blank.pdf")
    info = inspect_scan(tmp_path / "blank.pdf", "blank.pdf", "HS01")
    assert codes(info) == ["W-SCAN-NO-IMAGE"] and info.pages == 1
    assert info.page_info[0].has_image is False and info.page_info[0].dpi is None


@pytest.mark.parametrize("user", ["secret", ""], ids=["user-password", "owner-password-only"])
def test_E_SCAN_ENCRYPTED(tmp_path, user):
    src = pikepdf.open(pil_pdf(tmp_path / "a.pdf"))
    src.save(tmp_path / "enc.pdf", encryption=pikepdf.Encryption(owner="owner", user=user))
    src.close()
    info = inspect_scan(tmp_path / "enc.pdf", "enc.pdf", "HS01")
    assert codes(info) == ["E-SCAN-ENCRYPTED"] and info.pages is None


def test_E_SCAN_UNREADABLE_truncated(tmp_path):
    data = pil_pdf(tmp_path / "a.pdf", pages=4).read_bytes()
    (tmp_path / "t.pdf").write_bytes(data[: len(data) // 2])
    info = inspect_scan(tmp_path / "t.pdf", "t.pdf", "HS01")
    # PRONOM's PDF signatures need the trailer: a truncated PDF is UNKNOWN, but it begins with %PDF-.
    assert info.puid == "UNKNOWN"
    assert codes(info) == ["E-SCAN-UNREADABLE"] and "PDF" in one(info, "E-SCAN-UNREADABLE").params["detail"]
    assert info.pages is None


def test_E_SCAN_UNREADABLE_reconstructed_xref(tmp_path):
    """Identified as PDF (header and %%EOF intact) but qpdf must rebuild the xref: damaged, refused."""
    data = pil_pdf(tmp_path / "a.pdf", pages=2).read_bytes()
    head, _, tail = data.rpartition(b"startxref")
    (tmp_path / "x.pdf").write_bytes(head + b"startxref\n999999\n%%EOF\n")
    info = inspect_scan(tmp_path / "x.pdf", "x.pdf", None)
    assert info.mime == "application/pdf"
    f = one(info, "E-SCAN-UNREADABLE")
    assert "damaged" in f.params["detail"] and str(tmp_path) not in f.params["detail"]
    assert f.dossier is None and info.pages is None


def test_E_SCAN_UNREADABLE_bad_stream_length(tmp_path):
    data = pil_pdf(tmp_path / "a.pdf").read_bytes()
    start = data.index(b"/Length ") + len(b"/Length ")
    end = data.index(b"\n", start)
    wrong = str(int(data[start:end]) - 40).encode().ljust(end - start)  # keep every xref offset right
    (tmp_path / "l.pdf").write_bytes(data[:start] + wrong + data[end:])
    info = inspect_scan(tmp_path / "l.pdf", "l.pdf", "HS01")
    assert codes(info) == ["E-SCAN-UNREADABLE"] and "stream length" in info.findings[0].params["detail"]


def test_garbage_named_pdf_is_E_SCAN_FORMAT(tmp_path):
    (tmp_path / "g.pdf").write_bytes(b"\x00\x17 not a document " * 200)
    info = inspect_scan(tmp_path / "g.pdf", "g.pdf", "HS01")
    assert info.puid == "UNKNOWN" and codes(info) == ["E-SCAN-FORMAT"]
    assert one(info, "E-SCAN-FORMAT").params == {"path": "g.pdf", "puid": "UNKNOWN"}


def test_png_named_pdf_is_E_SCAN_FORMAT(tmp_path):
    Image.new("RGB", (50, 50)).save(tmp_path / "p.png")
    (tmp_path / "p.pdf").write_bytes((tmp_path / "p.png").read_bytes())
    info = inspect_scan(tmp_path / "p.pdf", "p.pdf", "HS01")
    assert info.mime == "image/png" and info.puid == "fmt/11"
    assert codes(info) == ["E-SCAN-FORMAT"] and info.pages is None


@pytest.mark.parametrize("name", ["empty.pdf", "missing.pdf"])
def test_empty_or_missing_is_E_SCAN_UNREADABLE(tmp_path, name):
    if name == "empty.pdf":
        (tmp_path / name).write_bytes(b"")
    info = inspect_scan(tmp_path / name, name, "HS01")
    assert codes(info) == ["E-SCAN-UNREADABLE"] and str(tmp_path) not in info.findings[0].params["detail"]


def test_multipage_rgb_tiff_300dpi(tmp_path):
    frames = [Image.new("RGB", (300, 450), (i * 60, 20, 20)) for i in range(3)]
    frames[0].save(tmp_path / "m.tif", save_all=True, append_images=frames[1:], dpi=(300, 300),
                   compression="tiff_lzw")
    info = inspect_scan(tmp_path / "m.tif", "m.tif", "HS01")
    assert info.findings == [] and info.pages == 3 and info.mime == "image/tiff"
    assert [p.dpi for p in info.page_info] == [pytest.approx(300)] * 3
    assert info.page_info[0].width_pt == pytest.approx(72) and info.page_info[0].colour == "rgb"


def test_tiff_dpi_in_centimetres(tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "cm.tif", resolution_unit=3, x_resolution=118.11,
                                      y_resolution=118.11)
    info = inspect_scan(tmp_path / "cm.tif", "cm.tif", None)
    assert info.page_info[0].dpi == pytest.approx(300, abs=0.1) and info.findings == []
    Image.new("RGB", (100, 100)).save(tmp_path / "low.tif", resolution_unit=3, x_resolution=59.06,
                                      y_resolution=59.06)
    assert one(inspect_scan(tmp_path / "low.tif", "low.tif", None), "E-SCAN-DPI").params["dpi"] == 150


def test_W_SCAN_DPI_UNKNOWN_tiff(tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "n.tif")
    info = inspect_scan(tmp_path / "n.tif", "n.tif", "HS01")
    assert codes(info) == ["W-SCAN-DPI-UNKNOWN"] and info.pages == 1
    assert info.page_info[0].dpi is None and info.page_info[0].width_pt is None


def test_tiff_grayscale_and_truncated(tmp_path):
    Image.new("L", (200, 200), 90).save(tmp_path / "g.tif", dpi=(300, 300))
    g = inspect_scan(tmp_path / "g.tif", "g.tif", None)
    assert codes(g) == ["W-SCAN-NOT-COLOUR"] and g.findings[0].params["detail"] == "8-bit grayscale"
    Image.new("RGB", (400, 400), (1, 2, 3)).save(tmp_path / "f.tif", dpi=(300, 300))  # IFD before the strips
    data = (tmp_path / "f.tif").read_bytes()
    (tmp_path / "t.tif").write_bytes(data[: len(data) // 2])
    t = inspect_scan(tmp_path / "t.tif", "t.tif", None)
    assert t.mime == "image/tiff" and codes(t) == ["E-SCAN-UNREADABLE"]
    assert "truncated" in t.findings[0].params["detail"]


def test_decompression_bomb_is_a_finding(tmp_path, monkeypatch):
    Image.new("1", (400, 400)).save(tmp_path / "big.tif", dpi=(300, 300))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # error above twice this
    info = inspect_scan(tmp_path / "big.tif", "big.tif", None)
    assert codes(info) == ["E-SCAN-UNREADABLE"] and "bomb" in info.findings[0].params["detail"]


def test_rotated_page_with_landscape_image(tmp_path):
    # A landscape 4 x 3 in MediaBox holding a 1200 x 900 image (300 dpi), shown portrait by /Rotate 90.
    p = image_pdf(tmp_path / "r.pdf", (288, 216), (1200, 900), b"q 288 0 0 216 0 0 cm /Im0 Do Q", rotate=90)
    info = inspect_scan(p, "r.pdf", None)
    page = info.page_info[0]
    assert info.findings == [] and (page.width_pt, page.height_pt) == (216, 288)
    assert page.dpi_x == pytest.approx(300) and page.dpi_y == pytest.approx(300)


def test_portrait_page_with_image_turned_by_ctm(tmp_path):
    # A portrait 3 x 4 in page; the landscape 1200 x 900 image is drawn turned 90° by its CTM.
    p = image_pdf(tmp_path / "t.pdf", (216, 288), (1200, 900), b"q 0 288 -216 0 216 0 cm /Im0 Do Q")
    page = inspect_scan(p, "t.pdf", None).page_info[0]
    assert page.dpi_x == pytest.approx(300) and page.dpi_y == pytest.approx(300)


def test_dpi_comes_from_the_ctm_not_the_page(tmp_path):
    # 600 x 450 px drawn 2 x 1.5 in on a 4 x 3 in page: 300 dpi as placed (150 if stretched to the page).
    p = image_pdf(tmp_path / "h.pdf", (288, 216), (600, 450), b"q 144 0 0 108 72 54 cm /Im0 Do Q")
    info = inspect_scan(p, "h.pdf", None)
    assert info.findings == [] and info.page_info[0].dpi == pytest.approx(300)
    # the same image stretched over the whole page is 150 dpi
    p = image_pdf(tmp_path / "s.pdf", (288, 216), (600, 450), b"q 288 0 0 216 0 0 cm /Im0 Do Q")
    assert one(inspect_scan(p, "s.pdf", None), "E-SCAN-DPI").params["dpi"] == 150


def test_image_inside_form_xobject_and_user_unit(tmp_path):
    pdf = pikepdf.new()
    image = pikepdf.Stream(pdf, zlib.compress(bytes(600 * 600)), Type=Name.XObject, Subtype=Name.Image,
                           Width=600, Height=600, ColorSpace=Name.DeviceGray, BitsPerComponent=8,
                           Filter=Name.FlateDecode)
    form = pdf.make_stream(b"q 1 0 0 1 0 0 cm /Im0 Do Q", Type=Name.XObject, Subtype=Name.Form,
                           BBox=[0, 0, 1, 1], Matrix=[72, 0, 0, 72, 0, 0],
                           Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image)))
    page = pdf.add_blank_page(page_size=(72, 72))
    page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Fm0=form))
    page.Contents = pdf.make_stream(b"q 1 0 0 1 0 0 cm /Fm0 Do Q")
    page.UserUnit = 2  # one unit = 2/72 in: the page and the image are 2 x 2 in
    pdf.save(tmp_path / "f.pdf")
    info = inspect_scan(tmp_path / "f.pdf", "f.pdf", None)
    assert info.page_info[0].dpi == pytest.approx(300) and info.page_info[0].width_pt == pytest.approx(144)
    assert codes(info) == ["W-SCAN-NOT-COLOUR"]


def test_300_pages_is_fast(tmp_path):
    p = pil_pdf(tmp_path / "big.pdf", size=(40, 50), resolution=20, pages=300)
    start = time.perf_counter()
    info = inspect_scan(p, "big.pdf", "HS01", min_dpi=10)
    assert time.perf_counter() - start < 3
    assert info.pages == 300 and info.findings == []


def test_text_layer_form_beside_the_image(tmp_path):
    """A two-layer page (image + OCR text in a Form XObject): the text form is skipped, the image counts."""
    p = image_pdf(tmp_path / "o.pdf", (288, 216), (1200, 900), b"q 288 0 0 216 0 0 cm /Im0 Do Q q /Tx Do Q")
    pdf = pikepdf.open(p, allow_overwriting_input=True)
    page = pdf.pages[0]
    text = pdf.make_stream(b"BT 3 Tr /F1 12 Tf 10 10 Td (van ban 10 cm) Tj ET", Type=Name.XObject,
                           Subtype=Name.Form, BBox=[0, 0, 288, 216], Resources=pikepdf.Dictionary())
    page.Resources.XObject.Tx = text
    pdf.save(p)
    pdf.close()
    info = inspect_scan(p, "o.pdf", None)
    assert info.findings == [] and info.page_info[0].dpi == pytest.approx(300)


def test_tiff_with_a_damaged_tag_is_E_SCAN_UNREADABLE(tmp_path):
    Image.new("RGB", (64, 64)).save(tmp_path / "d.tif", dpi=(300, 300))
    data = bytearray((tmp_path / "d.tif").read_bytes())
    ifd = int.from_bytes(data[4:8], "little")
    for i in range(int.from_bytes(data[ifd:ifd + 2], "little")):  # point XResolution's value past the end
        entry = ifd + 2 + 12 * i
        if int.from_bytes(data[entry:entry + 2], "little") == 282:
            data[entry + 8:entry + 12] = (len(data) + 1000).to_bytes(4, "little")
    (tmp_path / "d2.tif").write_bytes(bytes(data))
    info = inspect_scan(tmp_path / "d2.tif", "d2.tif", None)
    assert codes(info) == ["E-SCAN-UNREADABLE"] and info.pages is None


def test_a_large_map_below_pillows_error_limit_is_accepted(tmp_path, monkeypatch):
    """Headers only are read, so Pillow's DecompressionBombWarning (not its error) is no finding."""
    Image.new("RGB", (120, 100)).save(tmp_path / "map.tif", dpi=(300, 300))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 12 000 px: above the warning, below the error
    info = inspect_scan(tmp_path / "map.tif", "map.tif", None)
    assert info.findings == [] and info.pages == 1
