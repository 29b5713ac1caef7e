"""Watermarked access copies: every page marked, the text layer kept, rotation and page sizes honoured.

Test PDFs are made here: a text PDF drawn by reportlab, an image-only PDF made by Pillow (a landscape page, a
page with /Rotate 90), a multi-page TIFF. The make_* helpers are plain functions: test_package.py loads them.
"""

from __future__ import annotations

import hashlib
import subprocess
import unicodedata
from pathlib import Path

import pikepdf
import pytest
from PIL import Image, ImageDraw, TiffImagePlugin
from reportlab.pdfgen import canvas

from preserve.dip.watermark import FONT, FOOTER_SEP, _fonts, image_to_pdf, render_pages, watermark_pdf
from preserve.errors import UsageError

A4 = (595.28, 841.89)
BODY = "Nghị quyết về công tác xây dựng Đảng"
LINES = ["BẢN SAO", "Cấp cho / Issued to: Nguyễn Thị Hòa (reader1)", "Ngày / Date: 01/12/2026",
         "Yêu cầu / Request: YC-2026-0007"]


# --- makers (plain functions, shared with test_package.py) -----------------------------------------------


def make_text_pdf(path: Path, pages: int = 3) -> Path:
    """A PDF with a real text layer in Vietnamese; page 2 is landscape, page 3 has /Rotate 90."""
    _fonts()
    c = canvas.Canvas(str(path), initialFontName=FONT)
    for n in range(1, pages + 1):
        c.setPageSize(A4[::-1] if n == 2 else A4)
        c.setFont(FONT, 14)
        c.drawString(72, 400, f"{BODY} — trang {n}")
        c.showPage()
    c.save()
    if pages >= 3:
        with pikepdf.open(path, allow_overwriting_input=True) as pdf:
            pdf.pages[2].obj.Rotate = 90
            pdf.save(path)
    return path


def _scan(size: tuple[int, int], n: int, mode: str = "RGB") -> Image.Image:
    """A page image: off-white paper, dark lines of 'text', a page number; never red (the watermark is)."""
    im = Image.new(mode, size, "white" if mode != "1" else 1)
    d = ImageDraw.Draw(im)
    ink = 0 if mode in ("1", "L") else (30, 30, 30)
    for y in range(size[1] // 6, size[1] * 5 // 6, max(12, size[1] // 40)):
        d.rectangle([size[0] // 8, y, size[0] * 7 // 8, y + 3], fill=ink)
    d.text((10, 10), str(n), fill=ink)
    return im


def make_image_pdf(path: Path, pages: int = 3, dpi: int = 100) -> Path:
    """An image-only PDF (no text layer) made by Pillow; page 2 landscape, page 3 with /Rotate 90."""
    portrait = (round(A4[0] / 72 * dpi), round(A4[1] / 72 * dpi))
    ims = [_scan(portrait[::-1] if n == 2 else portrait, n) for n in range(1, pages + 1)]
    ims[0].save(path, "PDF", save_all=True, append_images=ims[1:], resolution=dpi)
    if pages >= 3:
        with pikepdf.open(path, allow_overwriting_input=True) as pdf:
            pdf.pages[2].obj.Rotate = 90
            pdf.save(path)
    return path


TIFF_FRAMES = [((400, 560), "1", 200), ((600, 840), "L", 300), ((300, 420), "RGB", None)]


def make_tiff(path: Path) -> Path:
    """A 3-frame TIFF, each frame with its own resolution: bilevel 200 dpi, grey 300 dpi, colour with none."""
    with TiffImagePlugin.AppendingTiffWriter(str(path), True) as tiff:
        for n, (size, mode, dpi) in enumerate(TIFF_FRAMES, start=1):
            _scan(size, n, mode).save(tiff, "TIFF", compression="tiff_deflate", **({"dpi": (dpi, dpi)} if dpi else {}))
            tiff.newFrame()
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def page_text(pdf: Path, n: int, raw: bool = False) -> str:
    args = ["pdftotext", "-enc", "UTF-8", "-f", str(n), "-l", str(n)] + (["-raw"] if raw else []) + [str(pdf), "-"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def marks_on_page(pdf: Path, n: int, mark: str = "BẢN SAO") -> int:
    """Occurrences of `mark` on page n: diagonal text comes out of pdftotext a glyph at a time, so compare the
    raw text without whitespace."""
    return "".join(page_text(pdf, n, raw=True).split()).count("".join(mark.split()))


# --- watermark_pdf ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_pdf(tmp_path_factory) -> Path:
    return make_text_pdf(tmp_path_factory.mktemp("src") / "text.pdf")


@pytest.fixture(scope="module")
def image_pdf(tmp_path_factory) -> Path:
    return make_image_pdf(tmp_path_factory.mktemp("src") / "scan.pdf")


def test_text_layer_kept_and_every_page_marked(text_pdf, tmp_path):
    before = sha256(text_pdf)
    out = tmp_path / "copy.pdf"
    assert watermark_pdf(text_pdf, out, LINES) == 3
    assert sha256(text_pdf) == before
    for n in (1, 2, 3):
        text = page_text(out, n)
        assert f"{BODY} — trang {n}" in text  # the original is still searchable
        assert FOOTER_SEP.join(LINES) in text  # the footer, exactly as given
        assert marks_on_page(out, n) == 2  # the diagonal and the footer
        assert marks_on_page(out, n, LINES[1]) == 2
    assert not out.with_suffix(".tmp").exists()


def test_text_given_decomposed_comes_out_composed(image_pdf, tmp_path):
    nfd = [unicodedata.normalize("NFD", line) for line in LINES]
    assert nfd[1] != LINES[1]
    out = tmp_path / "copy.pdf"
    watermark_pdf(image_pdf, out, nfd)
    text = page_text(out, 1)
    assert "Nguyễn Thị Hòa" in text and unicodedata.is_normalized("NFC", text)


def test_image_pdf_every_page_marked(image_pdf, tmp_path):
    out = tmp_path / "copy.pdf"
    assert watermark_pdf(image_pdf, out, LINES) == 3
    for n in (1, 2, 3):
        assert FOOTER_SEP.join(LINES) in page_text(out, n)
        assert marks_on_page(out, n) == 2


def _red(im: Image.Image, box: tuple[float, float, float, float] = (0, 0, 1, 1), margin: int = 25) -> int:
    """Red pixels (the watermark's colour; the test pages have none) in box = (left, top, right, bottom) as
    fractions of the image. The faint diagonal (alpha 0.25 over white) is about 40 levels redder than grey."""
    left, top, right, bottom = (round(f * d) for f, d in zip(box, (im.width, im.height) * 2))
    data = im.convert("RGB").crop((left, top, right, bottom)).tobytes()
    return sum(1 for r, g, b in zip(data[0::3], data[1::3], data[2::3]) if r - g > margin and r - b > margin)


@pytest.mark.parametrize("maker", [make_image_pdf, make_text_pdf])
def test_footer_at_the_bottom_as_the_reader_sees_each_page(maker, tmp_path):
    src = maker(tmp_path / "src.pdf")
    with pikepdf.open(src, allow_overwriting_input=True) as pdf:  # page 4: a CropBox off the origin
        pdf.pages.append(pdf.pages[0])
        pdf.pages[3].obj.CropBox = [100, 150, 500, 700]
        pdf.save(src)
    out = tmp_path / "copy.pdf"
    watermark_pdf(src, out, LINES)
    images = render_pages(out, tmp_path / "img", 72, "p")
    sizes = [Image.open(p).size for p in images]
    assert sizes[0][0] < sizes[0][1] and sizes[1][0] > sizes[1][1]
    assert sizes[2][0] > sizes[2][1]  # portrait page shown turned by /Rotate 90
    assert abs(sizes[3][0] - 400) <= 1 and abs(sizes[3][1] - 550) <= 1
    for path in images:
        with Image.open(path) as im:
            assert _red(im, (0, 0.975, 1, 1)) > 20, path.name  # footer at the bottom
            assert _red(im, (0, 0, 1, 0.025)) == 0, path.name  # nothing at the top
            assert _red(im, (0, 1 / 3, 1, 2 / 3)) > 200, path.name  # the diagonal


def test_strong_is_denser_and_darker(image_pdf, tmp_path):
    normal, strong = tmp_path / "normal.pdf", tmp_path / "strong.pdf"
    watermark_pdf(image_pdf, normal, LINES)
    watermark_pdf(image_pdf, strong, ["BẢN SAO – TÀI LIỆU MẬT"] + LINES[1:], strong=True)
    for n in (1, 2, 3):
        assert marks_on_page(normal, n) == 2
        assert marks_on_page(strong, n) >= 6  # poppler merges some diagonal tiles: a floor, not the count
        assert marks_on_page(strong, n, FOOTER_SEP.join(["BẢN SAO – TÀI LIỆU MẬT"] + LINES[1:])) == 1
    weak = Image.open(render_pages(normal, tmp_path / "normal", 50, "p")[0])
    for path in render_pages(strong, tmp_path / "strong", 50, "p"):
        with Image.open(path) as im:
            assert _red(im) > 1.3 * _red(weak)  # more of the page
            # more opaque: alpha 0.4 over white is ≥ 50 levels redder than grey, 0.25 is not (only footer text is)
            assert _red(im, margin=50) > 10 * _red(weak, margin=50)
            # the red header band, from edge to edge of the page as it is seen (page 3 has /Rotate 90)
            assert _red(im, (0, 0, 0.05, 0.02), 60) > 0 and _red(im, (0.95, 0, 1, 0.02), 60) > 0, path.name
    assert _red(weak, (0, 0, 1, 0.02)) == 0


def test_one_overlay_per_page_size_and_fonts_once(tmp_path):
    src = make_image_pdf(tmp_path / "src.pdf", pages=20, dpi=50)
    out = tmp_path / "copy.pdf"
    assert watermark_pdf(src, out, LINES, strong=True) == 20
    with pikepdf.open(out) as pdf:
        forms = set()
        for page in pdf.pages:
            xobjects = page.obj.Resources.XObject
            forms |= {xobjects[k].objgen for k in xobjects if xobjects[k].Subtype == pikepdf.Name.Form}
        fonts = [o for o in pdf.objects if isinstance(o, pikepdf.Stream) and "/Length1" in o]
    assert len(forms) == 2  # portrait and landscape: the portrait page with /Rotate 90 is seen as landscape
    assert len(fonts) == 2  # DejaVu Sans and DejaVu Sans Bold, each embedded once
    assert out.stat().st_size - src.stat().st_size < 120_000


def test_pdfa_claim_dropped_from_the_copy(image_pdf, tmp_path):
    src = tmp_path / "pdfa.pdf"
    with pikepdf.open(image_pdf) as pdf:
        with pdf.open_metadata() as meta:
            meta["pdfaid:part"] = "2"
            meta["pdfaid:conformance"] = "B"
            meta["dc:title"] = "Nghị quyết"
        pdf.save(src)
    out = tmp_path / "copy.pdf"
    watermark_pdf(src, out, LINES)
    with pikepdf.open(out) as pdf:
        meta = pdf.open_metadata()
        assert "pdfaid:part" not in meta and "pdfaid:conformance" not in meta
        assert meta["dc:title"] == "Nghị quyết"


@pytest.mark.parametrize("encryption", [pikepdf.Encryption(owner="o", user="u"),
                                        pikepdf.Encryption(owner="o", user="")])
def test_encrypted_pdf_refused(image_pdf, tmp_path, encryption):
    src = tmp_path / "locked.pdf"
    with pikepdf.open(image_pdf) as pdf:
        pdf.save(src, encryption=encryption)
    out = tmp_path / "copy.pdf"
    with pytest.raises(UsageError, match="encrypted"):
        watermark_pdf(src, out, LINES)
    assert not out.exists() and not out.with_suffix(".tmp").exists()


@pytest.mark.parametrize("data", [b"%PDF-1.7\n garbage, not a PDF", b"\x00" * 100])
def test_unreadable_pdf_refused(tmp_path, data):
    src = tmp_path / "broken.pdf"
    src.write_bytes(data)
    with pytest.raises(UsageError, match="cannot be read") as err:
        watermark_pdf(src, tmp_path / "copy.pdf", LINES)
    assert "preserve repair" in str(err.value)
    assert src.read_bytes() == data and list(tmp_path.iterdir()) == [src]


def test_source_never_the_destination(image_pdf):
    before = sha256(image_pdf)
    with pytest.raises(UsageError, match="overwrite"):
        watermark_pdf(image_pdf, image_pdf, LINES)
    assert sha256(image_pdf) == before


# --- image_to_pdf -----------------------------------------------------------------------------------------


def _page_sizes(pdf: Path) -> list[float]:
    """Width, height, width, height, … of the pages, in points."""
    with pikepdf.open(pdf) as doc:
        return [float(v) for p in doc.pages for v in (p.mediabox[2], p.mediabox[3])]


def test_multipage_tiff_one_page_per_frame_at_its_dpi(tmp_path):
    src = make_tiff(tmp_path / "scan.tif")
    before = sha256(src)
    out = tmp_path / "scan.pdf"
    assert image_to_pdf(src, out) == 3
    assert sha256(src) == before
    expected = [px / (dpi or 200) * 72 for size, _mode, dpi in TIFF_FRAMES for px in size]
    assert _page_sizes(out) == pytest.approx(expected, abs=0.01)
    with pikepdf.open(out) as pdf:
        images = [next(iter(p.obj.Resources.XObject.values())) for p in pdf.pages]
        assert [im.Filter for im in images] == [pikepdf.Name.DCTDecode] * 3
        assert [(int(im.Width), int(im.Height)) for im in images] == [size for size, _m, _d in TIFF_FRAMES]
        assert [im.ColorSpace for im in images] == [pikepdf.Name.DeviceGray] * 2 + [pikepdf.Name.DeviceRGB]


@pytest.mark.parametrize("fmt,kw,dpi", [("PNG", {}, 200), ("JPEG", {"dpi": (300, 300)}, 300),
                                        ("PNG", {"dpi": (1, 1)}, 200)])
def test_single_images_use_their_dpi_or_200(tmp_path, fmt, kw, dpi):
    im = _scan((500, 700), 1, "RGBA" if fmt == "PNG" else "RGB")
    src = tmp_path / f"page.{fmt.lower()}"
    im.save(src, fmt, **kw)
    out = tmp_path / "page.pdf"
    assert image_to_pdf(src, out) == 1
    assert _page_sizes(out) == pytest.approx([500 / dpi * 72, 700 / dpi * 72], abs=0.01)


def test_image_to_pdf_then_watermark(tmp_path):
    src = tmp_path / "scan.tif"
    _scan((400, 560), 1, "L").save(src, "TIFF", dpi=(200, 200))
    pdf = tmp_path / "scan.pdf"
    image_to_pdf(src, pdf)
    out = tmp_path / "copy.pdf"
    assert watermark_pdf(pdf, out, LINES) == 1
    text = page_text(out, 1)
    assert FOOTER_SEP.join(LINES) not in text  # a 144 pt wide page: the footer is wrapped, no line is cut
    assert all(line in text for line in LINES)


def test_unreadable_image_refused(tmp_path):
    src = tmp_path / "scan.tif"
    src.write_bytes(b"II*\x00" + b"\x00" * 50)
    with pytest.raises(UsageError, match="image cannot be read"):
        image_to_pdf(src, tmp_path / "scan.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.tif"]


# --- render_pages -----------------------------------------------------------------------------------------


def test_render_pages_names_and_sizes(image_pdf, tmp_path):
    out = tmp_path / "copy.pdf"
    watermark_pdf(image_pdf, out, LINES)
    images = render_pages(out, tmp_path / "img", 72, "H36.01.1.001")
    assert [p.name for p in images] == [f"H36.01.1.001-p000{n}.jpg" for n in (1, 2, 3)]
    assert sorted((tmp_path / "img").iterdir()) == images  # nothing else left in the folder
    seen = [(595, 842), (842, 595), (842, 595)]
    for path, (w, h) in zip(images, seen):
        with Image.open(path) as im:
            assert im.format == "JPEG"
            assert abs(im.width - w) <= 1 and abs(im.height - h) <= 1


@pytest.mark.parametrize("dpi", [49, 601])
def test_render_dpi_out_of_range(image_pdf, tmp_path, dpi):
    with pytest.raises(UsageError, match="out of range"):
        render_pages(image_pdf, tmp_path, dpi, "x")
    assert list(tmp_path.iterdir()) == []


def test_render_without_pdftoppm(image_pdf, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no poppler: what a bare machine looks like
    with pytest.raises(UsageError) as err:
        render_pages(image_pdf, tmp_path / "img", 100, "x")
    assert "apt-get install poppler-utils" in str(err.value)
