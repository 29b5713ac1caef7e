"""Watermarked access copies: "BẢN SAO" over every page of a PDF, image masters to PDF, page images.

The watermark is drawn once per distinct page geometry with reportlab (DejaVu Sans embedded as a subset with a
ToUnicode map, so Vietnamese text renders and `pdftotext` extracts it), then laid over each page of the source
with pikepdf as one shared Form XObject: the original content, text layer included, is kept and stays
searchable, and the font is stored once per output file whatever the page count.

Geometry: the watermark fits the page's visible box (CropBox within MediaBox) and is drawn in the reader's frame:
a page with /Rotate 90 or 270 gets a watermark of the turned size, and pikepdf (QPDF's placeFormXObject, with
invert_transformations) undoes the page's rotation when placing it, so the diagonal runs corner to corner and the
footer sits at the bottom of the page as it is seen. One Form XObject serves every page of the same seen size.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
import tempfile
import unicodedata
from functools import lru_cache
from pathlib import Path

import pikepdf
from PIL import Image, ImageOps, ImageSequence
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from preserve.errors import UsageError

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
FONT = "PreserveDejaVuSans"
FONT_BOLD = "PreserveDejaVuSans-Bold"
RED = (0.72, 0.07, 0.07)
WHITE = (1.0, 1.0, 1.0)
NORMAL_ALPHA = 0.25
STRONG_ALPHA = 0.4
FOOTER_SEP = " · "
FOOTER_SIZE = 7.0  # pt: small, readable when printed
FOOTER_MIN = 5.0
DEFAULT_DPI = 200.0
JPEG_QUALITY = 85
RENDER_DPI = (50, 600)
REPAIR_HINT = "audit the AIP (preserve audit) and repair it from another tier (preserve repair)"
PDFA_KEYS = ("pdfaid:part", "pdfaid:conformance", "pdfaid:amd")

Key = tuple[float, float]  # (width, height) of a page's visible box as the reader sees it (after /Rotate)


@lru_cache(maxsize=1)
def _fonts() -> tuple[str, str]:
    """Register DejaVu Sans (regular, bold) once per process: it covers Vietnamese, the PDF base fonts do not."""
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            pdfmetrics.registerFont(TTFont(FONT, str(regular)))
            pdfmetrics.registerFont(TTFont(FONT_BOLD, str(bold)))
            return FONT, FONT_BOLD
    raise UsageError("Không tìm thấy phông DejaVu Sans / DejaVu Sans fonts not found in "
                     + ", ".join(map(str, FONT_DIRS)), hint="apt-get install fonts-dejavu-core")


def _nfc(lines: list[str]) -> list[str]:
    """NFC (what a search for the text will type), runs of whitespace and line breaks as one space."""
    lines = [" ".join(unicodedata.normalize("NFC", str(line)).split()) for line in lines]
    if not lines or not lines[0]:
        raise UsageError("watermark_pdf needs at least one line of text (the first is the large 'BẢN SAO')")
    return lines


# --- drawing (in the reader's frame: W × H as the page is seen) -------------------------------------------


def _fit(text: str, font: str, size: float, width: float, smallest: float = 3.0) -> float:
    """The largest font size ≤ size at which text is at most `width` wide (never below `smallest`)."""
    at_one = pdfmetrics.stringWidth(text, font, 1.0) or 1.0
    return max(smallest, min(size, width / at_one))


def _rows(parts: list[str], font: str, width: float) -> tuple[list[str], float]:
    """Parts joined with FOOTER_SEP into as few rows as fit `width` at FOOTER_MIN pt (one row on a usual page,
    more on a narrow one, never a part cut), and the size, up to FOOTER_SIZE, at which every row fits."""
    rows: list[str] = []
    for part in parts:
        joined = f"{rows[-1]}{FOOTER_SEP}{part}" if rows else part
        if rows and pdfmetrics.stringWidth(joined, font, FOOTER_MIN) <= width:
            rows[-1] = joined
        else:
            rows.append(part)
    return rows, min(_fit(row, font, FOOTER_SIZE, width, smallest=1.0) for row in rows)


def _band(c: canvas.Canvas, w: float, top: float | None, parts: list[str], fill: tuple, fill_alpha: float,
          ink: tuple, font: str) -> None:
    """Horizontal text on a band across the page: at the bottom (top None), or hanging from `top`."""
    rows, size = _rows(parts, font, w - 24)
    leading = size * 1.3
    height = len(rows) * leading + size * 0.9
    bottom = 0.0 if top is None else top - height
    c.saveState()
    c.setFillColorRGB(*fill)
    c.setFillAlpha(fill_alpha)
    c.rect(0, bottom, w, height, stroke=0, fill=1)
    c.setFillColorRGB(*ink)
    c.setFillAlpha(1.0)
    c.setFont(font, size)
    for i, row in enumerate(reversed(rows)):
        c.drawCentredString(w / 2, bottom + size * 0.75 + i * leading, row)
    c.restoreState()


def _footer(c: canvas.Canvas, w: float, lines: list[str]) -> None:
    """Every line on a light band at the bottom: readable even where the diagonal text is faint."""
    _band(c, w, None, lines, WHITE, 0.7, RED, FONT)


def _draw_normal(c: canvas.Canvas, w: float, h: float, lines: list[str]) -> None:
    """One large diagonal first line across the centre, the other lines smaller beneath it, and the footer."""
    diag = math.hypot(w, h)
    big = _fit(lines[0], FONT_BOLD, min(w, h) * 0.22, diag * 0.7)
    sizes = [_fit(line, FONT, big * 0.2, diag * 0.6) for line in lines[1:]]
    y = (big * 0.7 + sum(sizes) * 1.5) / 2 - big * 0.7  # baseline of the first line: the block is centred
    c.saveState()
    c.setFillColorRGB(*RED)
    c.setFillAlpha(NORMAL_ALPHA)
    c.translate(w / 2, h / 2)
    c.rotate(math.degrees(math.atan2(h, w)))
    c.setFont(FONT_BOLD, big)
    c.drawCentredString(0, y, lines[0])
    for line, size in zip(lines[1:], sizes):
        y -= size * 1.5
        c.setFont(FONT, size)
        c.drawCentredString(0, y, line)
    c.restoreState()
    _footer(c, w, lines)


def _draw_strong(c: canvas.Canvas, w: float, h: float, lines: list[str]) -> None:
    """A brick grid of the first line (with the other lines under it) over the whole page, a red header band
    naming the record and the requester, and the footer: for secret records, hard to crop or hide."""
    diag = math.hypot(w, h)
    big = _fit(lines[0], FONT_BOLD, min(w, h) * 0.06, diag * 0.45, smallest=6.0)
    rest = FOOTER_SEP.join(lines[1:])
    small = _fit(rest, FONT, big * 0.42, pdfmetrics.stringWidth(lines[0], FONT_BOLD, big) * 1.2)
    step_x = pdfmetrics.stringWidth(lines[0], FONT_BOLD, big) * 1.35
    step_y = big * 3.2
    c.saveState()
    c.setFillColorRGB(*RED)
    c.setFillAlpha(STRONG_ALPHA)
    c.translate(w / 2, h / 2)
    c.rotate(math.degrees(math.atan2(h, w)))
    rows, cols = math.ceil(diag / step_y / 2), math.ceil(diag / step_x / 2) + 1
    for row in range(-rows, rows + 1):
        shift = step_x / 2 if row % 2 else 0.0
        for col in range(-cols, cols + 1):
            x, y = col * step_x + shift, row * step_y
            c.setFont(FONT_BOLD, big)
            c.drawCentredString(x, y, lines[0])
            if rest:
                c.setFont(FONT, small)
                c.drawCentredString(x, y - small * 1.4, rest)
    c.restoreState()
    _band(c, w, h, lines[:2], RED, 0.85, WHITE, FONT_BOLD)
    _footer(c, w, lines)


def _overlay_pdf(keys: list[Key], lines: list[str], strong: bool) -> bytes:
    """A PDF with one watermark page per reader's page size, in the order of `keys`; fonts embedded once."""
    _fonts()
    buf = io.BytesIO()
    c = canvas.Canvas(buf, invariant=1, initialFontName=FONT, pageCompression=1)
    for w, h in keys:
        c.setPageSize((w, h))
        (_draw_strong if strong else _draw_normal)(c, w, h, lines)
        c.showPage()
    c.save()
    return buf.getvalue()


# --- PDF in, PDF out --------------------------------------------------------------------------------------


def _normalised(box: pikepdf.Object) -> pikepdf.Rectangle:
    """A page box with its corners in order (the PDF allows any two opposite corners)."""
    r = pikepdf.Rectangle(box)
    return pikepdf.Rectangle(min(r.llx, r.urx), min(r.lly, r.ury), max(r.llx, r.urx), max(r.lly, r.ury))


def _visible_box(page: pikepdf.Page) -> tuple[Key, pikepdf.Rectangle]:
    """The CropBox clipped to the MediaBox (what a viewer shows), and its size as the reader sees it (the key)."""
    media = _normalised(page.mediabox)
    rect = _normalised(page.cropbox) & media
    if rect.width < 1 or rect.height < 1:  # a CropBox outside the MediaBox: viewers show the MediaBox
        rect = media
    size = (round(rect.width, 2), round(rect.height, 2))
    return (size[::-1] if page.rotation % 180 == 90 else size), rect


def _open_pdf(src: Path) -> pikepdf.Pdf:
    """Open a master read-only; encrypted or unreadable PDFs are refused with what to do about them."""
    try:
        pdf = pikepdf.open(src)
    except pikepdf.PasswordError:
        raise UsageError(f"PDF được mã hoá / The PDF is encrypted: {src}",
                         hint="an access copy is made only from an unencrypted master; check the AIP's original"
                         ) from None
    except (pikepdf.PdfError, OSError) as exc:
        raise UsageError(f"Không đọc được PDF / The PDF cannot be read: {src}: {exc}",
                         hint=REPAIR_HINT) from None
    if pdf.is_encrypted:
        pdf.close()
        raise UsageError(f"PDF được mã hoá / The PDF is encrypted (owner password): {src}",
                         hint="an access copy is made only from an unencrypted master; check the AIP's original")
    if len(pdf.pages) == 0:
        pdf.close()
        raise UsageError(f"PDF không có trang nào / The PDF has no pages: {src}",
                         hint="check the AIP's original")
    return pdf


def _drop_pdfa_claim(pdf: pikepdf.Pdf) -> None:
    """The copy gains transparency and fonts and is not validated again: it must not claim to be PDF/A."""
    if "/Metadata" not in pdf.Root:
        return
    with pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False) as meta:
        for key in PDFA_KEYS:
            if key in meta:
                del meta[key]


def _save(pdf: pikepdf.Pdf, dest: Path) -> None:
    """Write dest.tmp then rename, so dest is either absent or complete."""
    tmp = dest.with_suffix(".tmp")
    try:
        pdf.save(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def watermark_pdf(src: Path, dest: Path, lines: list[str], strong: bool = False) -> int:
    """Write dest: src with the watermark over every page (strong: a dense grid for secret records).

    src is only read. Returns the page count. Raises UsageError for an encrypted or unreadable PDF.
    """
    src, dest = Path(src), Path(dest)
    if dest.resolve() == src.resolve():
        raise UsageError(f"watermark_pdf would overwrite its source {src}", hint="give another destination")
    lines = _nfc(lines)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _open_pdf(src) as pdf:
        try:
            placed = [(page, *_visible_box(page)) for page in pdf.pages]
            keys = list(dict.fromkeys(key for _page, key, _rect in placed))
            with pikepdf.open(io.BytesIO(_overlay_pdf(keys, lines, strong))) as marks:
                # copied once per geometry: pages of the same size share one Form XObject and its fonts
                forms = {key: pdf.copy_foreign(marks.pages[i].as_form_xobject()) for i, key in enumerate(keys)}
                for page, key, rect in placed:
                    page.add_overlay(forms[key], rect)
                _drop_pdfa_claim(pdf)
                _save(pdf, dest)  # while `marks` is open: copied streams are read from it at write time
        except pikepdf.PdfError as exc:
            raise UsageError(f"Không đọc được PDF / The PDF cannot be read: {src}: {exc}",
                             hint=REPAIR_HINT) from None
        return len(placed)


# --- image masters ----------------------------------------------------------------------------------------


def _dpi(frame: Image.Image) -> tuple[float, float]:
    """The frame's resolution; DEFAULT_DPI when it has none or an implausible one (some scanners write 1 or 72)."""
    try:
        x, y = (float(v) for v in frame.info.get("dpi", (0, 0)))
    except (TypeError, ValueError):
        return DEFAULT_DPI, DEFAULT_DPI
    if x < 50 or y < 50:
        return DEFAULT_DPI, DEFAULT_DPI
    return x, y


def _access_mode(frame: Image.Image) -> Image.Image:
    """Greyscale or RGB (what JPEG holds), upright, transparency flattened on white."""
    frame = ImageOps.exif_transpose(frame)
    if frame.mode in ("I;16", "I;16B", "I;16L", "I"):
        return frame.point(lambda v: v / 256).convert("L")
    if frame.mode in ("1", "L"):
        return frame.convert("L")
    if frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info):
        rgba = frame.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat.convert("L") if frame.mode == "LA" else flat
    return frame.convert("RGB")


def _add_image_page(pdf: pikepdf.Pdf, frame: Image.Image) -> None:
    """One page the size of the frame at its DPI, showing the frame as a JPEG (DCTDecode, nothing around it)."""
    dpi_x, dpi_y = _dpi(frame)
    access = _access_mode(frame)
    buf = io.BytesIO()
    access.save(buf, "JPEG", quality=JPEG_QUALITY)
    w, h = access.width / dpi_x * 72, access.height / dpi_y * 72
    image = pikepdf.Stream(pdf, buf.getvalue(), Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image,
                           Width=access.width, Height=access.height, BitsPerComponent=8,
                           ColorSpace=pikepdf.Name.DeviceGray if access.mode == "L" else pikepdf.Name.DeviceRGB,
                           Filter=pikepdf.Name.DCTDecode)
    page = pdf.add_blank_page(page_size=(w, h))
    page.obj.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
    page.obj.Contents = pdf.make_stream(f"q {w:.4f} 0 0 {h:.4f} 0 0 cm /Im0 Do Q".encode())


def image_to_pdf(src: Path, dest: Path) -> int:
    """A PDF with one page per frame of a TIFF, JPEG or PNG master, each page at the frame's own DPI.

    Frames go in as JPEG (quality 85: an access copy, not a master), greyscale or RGB. Returns the page count.
    """
    src, dest = Path(src), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with Image.open(src) as im, pikepdf.new() as pdf:
            for frame in ImageSequence.Iterator(im):
                _add_image_page(pdf, frame)
            _save(pdf, dest)
            return len(pdf.pages)
    except (OSError, Image.DecompressionBombError) as exc:
        raise UsageError(f"Không đọc được ảnh / The image cannot be read: {src}: {exc}",
                         hint=f"{REPAIR_HINT}; very large images must be split or reduced") from None


# --- page images ------------------------------------------------------------------------------------------


def render_pages(pdf: Path, out_dir: Path, dpi: int, stem: str) -> list[Path]:
    """JPEG images of every page (as the reader sees it: CropBox, /Rotate), named <stem>-p0001.jpg …"""
    if not RENDER_DPI[0] <= dpi <= RENDER_DPI[1]:
        raise UsageError(f"DPI {dpi} ngoài khoảng / is out of range {RENDER_DPI[0]}..{RENDER_DPI[1]}",
                         hint="200 dpi is usual for reading, 300 for maps and drawings")
    tool = shutil.which("pdftoppm")
    if tool is None:
        raise UsageError("Thiếu pdftoppm / pdftoppm is not installed", hint="apt-get install poppler-utils")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".render-", dir=out_dir) as tmp:
        run = subprocess.run([tool, "-r", str(dpi), "-jpeg", "-jpegopt", f"quality={JPEG_QUALITY}", "-cropbox",
                              str(pdf), str(Path(tmp) / "p")], capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise UsageError(f"pdftoppm không dựng được trang / pdftoppm failed on {pdf}: {run.stderr.strip()}",
                             hint="check that the PDF opens in a viewer")
        produced = sorted(Path(tmp).glob("p-*.jpg"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        result = []
        for n, path in enumerate(produced, start=1):
            target = out_dir / f"{stem}-p{n:04d}.jpg"
            os.replace(path, target)
            result.append(target)
    return result
