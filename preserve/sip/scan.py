"""Inspect one scanned master (PDF or TIFF): PRONOM identity, page count, resolution and colour, as findings.

Order, cheap to expensive: identify with Siegfried (PRONOM); refuse what is not a scan format
(E-SCAN-FORMAT) without parsing it; then read the file's structure, never its pixels:

* PDF (pikepdf/qpdf): an encrypted file (any password, even an empty user password) is E-SCAN-ENCRYPTED.
  A file qpdf had to repair (a rebuilt cross-reference table, a recovered stream length: anything in
  ``Pdf.get_warnings()``) is E-SCAN-UNREADABLE, because a damaged master must not be preserved. Each page's
  content stream is read for ``q Q cm Do`` only (into Form XObjects too), so an image's DPI comes from where
  it is really drawn (its CTM), whatever the page size, /Rotate or clipping. When a page draws several
  images, those covering at least half the area of the largest count; the sharpest gives the page's DPI
  (so a mixed-raster page with a 300-dpi text mask over a lower-resolution background passes) and the page
  is colour if any of them is.
* TIFF (Pillow): each page (IFD) is read for size, mode and the XResolution/YResolution/ResolutionUnit tags
  (inch or centimetre; no tag or "no absolute unit" gives W-SCAN-DPI-UNKNOWN), and its strips or tiles must
  lie inside the file (a truncated TIFF is E-SCAN-UNREADABLE).

A file PRONOM cannot identify but which begins like a PDF or TIFF is taken as damaged (E-SCAN-UNREADABLE):
Siegfried's PDF signatures need the trailer, so a truncated PDF is "UNKNOWN". Anything else that is not a
``rules.scan_mimes`` type, garbage included, is E-SCAN-FORMAT.

E-SCAN-DPI and the warnings (W-SCAN-NO-IMAGE, W-SCAN-NOT-COLOUR, W-SCAN-DPI-UNKNOWN) are reported once per
file, naming the first such page with ``count`` of ``total`` pages, to keep reports readable.
Nothing here raises on bad input.
"""

from __future__ import annotations

import math
import struct
import warnings
from dataclasses import dataclass, field
import threading
from pathlib import Path

import pikepdf
import pygfried
from PIL import Image, ImageSequence

from preserve.findings import Finding
from preserve.sip.profile import load_profile

COLOUR = {"rgb", "cmyk", "lab", "indexed", "separation", "devicen"}  # "indexed" = a palette over a colour space
NOT_COLOUR = {"gray", "bilevel"}

_MAX_FORM_DEPTH = 4
_IDENTITY = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
_PDF_ERRORS = (pikepdf.PikepdfError, RuntimeError, ValueError, TypeError, KeyError, AttributeError, IndexError,
               ArithmeticError)
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, KeyError, IndexError, TypeError,
               ArithmeticError, Image.DecompressionBombError)


@dataclass
class PageInfo:
    number: int  # 1-based
    width_pt: float | None  # as displayed (after /Rotate, with /UserUnit); TIFF: None when the DPI is unknown
    height_pt: float | None
    dpi_x: float | None = None  # along the image's own pixel rows / columns
    dpi_y: float | None = None
    colour: str | None = None  # rgb, cmyk, lab, gray, bilevel, indexed, separation, devicen; None = unknown
    bits: int | None = None  # bits per component of the image that decided `colour`
    has_image: bool = True

    @property
    def dpi(self) -> float | None:
        """The lower of the two resolutions, the one a minimum is checked against."""
        vals = [d for d in (self.dpi_x, self.dpi_y) if d is not None]
        return min(vals) if vals else None


@dataclass
class ScanInfo:
    path: Path
    puid: str | None
    format_name: str | None
    format_version: str | None
    mime: str | None
    pages: int | None = None  # None when unreadable
    page_info: list[PageInfo] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.is_error for f in self.findings)


class _Damaged(Exception):
    """A structural problem found while reading one file; becomes E-SCAN-UNREADABLE."""


_scanner = None
_scanner_lock = threading.Lock()


def _get_scanner():
    """One Siegfried scanner per process: loading the PRONOM signatures costs more than identifying a file."""
    global _scanner
    with _scanner_lock:
        if _scanner is None:
            _scanner = pygfried.Scanner()
        return _scanner


def _siegfried(path: Path) -> tuple[str, str | None, str | None, str | None, str]:
    try:
        result = _get_scanner().identify(str(path), detailed=True)
        entry = result["files"][0]
    except (RuntimeError, OSError, ValueError, KeyError, IndexError, TypeError) as e:
        return "UNKNOWN", None, None, None, f"identification failed: {e}"
    error = entry.get("errors") or ""
    match = next((m for m in entry.get("matches") or [] if m.get("ns") == "pronom"), None)
    if not match:
        return "UNKNOWN", None, None, None, error
    return (match.get("id") or "UNKNOWN", match.get("format") or None, match.get("version") or None,
            match.get("mime") or None, error)


def identify(path: Path) -> tuple[str, str | None, str | None, str | None]:
    """(PUID, format name, format version, MIME) from Siegfried's PRONOM signatures; PUID "UNKNOWN" if no match."""
    return _siegfried(Path(path))[:4]


def _magic(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return None
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "TIFF"
    if b"%PDF-" in head:  # readers accept the header anywhere in the first 1024 bytes
        return "PDF"
    return None


def inspect_scan(path: Path, where: str, dossier: str | None, *, min_dpi: int | None = None) -> ScanInfo:
    """Identify and inspect one scan. Every problem becomes a finding with this `where` and `dossier`; the
    finding's `path` parameter is `where` (or the file name when `where` is empty). `min_dpi` defaults to
    the profile's rules.min_dpi; a page fails below min_dpi * (1 - rules.dpi_tolerance)."""
    path = Path(path)
    rules = load_profile().rules
    minimum = min_dpi if min_dpi is not None else rules.get("min_dpi")
    tolerance = float(rules.get("dpi_tolerance", 0) or 0)
    shown = where or path.name
    puid, name, version, mime, error = _siegfried(path)
    info = ScanInfo(path, puid, name, version, mime)

    def add(code: str, **params) -> None:
        if "detail" in params:  # library messages name the file by its full (perhaps temporary) path
            params["detail"] = str(params["detail"]).replace(str(path), path.name)
        info.findings.append(Finding(code, where, {"path": shown, **params}, dossier))

    if puid == "UNKNOWN" and error:  # missing, empty, a directory, unreadable
        add("E-SCAN-UNREADABLE", detail=error)
        return info
    if mime not in rules.get("scan_mimes", []):
        kind = _magic(path) if puid == "UNKNOWN" else None
        if kind:
            add("E-SCAN-UNREADABLE",
                detail=f"begins like a {kind} but PRONOM cannot identify it (truncated or damaged)")
        else:
            add("E-SCAN-FORMAT", puid=puid)
        return info

    try:
        if mime == "application/pdf":
            pages = _inspect_pdf(path)
        else:  # image/tiff (or any raster type a profile allows)
            pages = _inspect_raster(path, tiff=(mime == "image/tiff"))
    except _Encrypted:
        add("E-SCAN-ENCRYPTED")
        return info
    except _Damaged as e:
        add("E-SCAN-UNREADABLE", detail=str(e))
        return info
    info.pages, info.page_info = len(pages), pages
    _judge(info, add, minimum, tolerance)
    return info


def _judge(info: ScanInfo, add, minimum: int | None, tolerance: float) -> None:
    total = len(info.page_info)
    if minimum:
        floor = minimum * (1 - tolerance)
        low = [p for p in info.page_info if p.dpi is not None and p.dpi < floor]
        if low:  # once per file: the first low page, the lowest resolution, how many pages
            worst = min(p.dpi for p in low)
            add("E-SCAN-DPI", page=low[0].number, dpi=int(round(low[0].dpi)), lowest=int(round(worst)),
                count=len(low), total=total, minimum=minimum)
    no_image = [p for p in info.page_info if not p.has_image]
    if no_image:
        add("W-SCAN-NO-IMAGE", page=no_image[0].number, count=len(no_image), total=total)
    unknown = [p for p in info.page_info if p.has_image and p.dpi is None]
    if unknown and minimum:
        add("W-SCAN-DPI-UNKNOWN", page=unknown[0].number, count=len(unknown), total=total, minimum=minimum)
    grey = [p for p in info.page_info if p.colour in NOT_COLOUR]
    if grey:
        first = grey[0]
        kind = "bilevel" if first.colour == "bilevel" else "grayscale"
        add("W-SCAN-NOT-COLOUR", page=first.number, detail=f"{first.bits or '?'}-bit {kind}",
            count=len(grey), total=total)


# --- PDF ----------------------------------------------------------------------------------------------

class _Encrypted(Exception):
    pass


def _inspect_pdf(path: Path) -> list[PageInfo]:
    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError as e:
        raise _Encrypted() from e
    except (pikepdf.PikepdfError, RuntimeError, OSError, ValueError) as e:  # PdfError, QpdfRuntimeError
        raise _Damaged(str(e)) from e
    with pdf:
        if pdf.is_encrypted:
            raise _Encrypted()
        pages: list[PageInfo] = []
        number = 0
        try:
            for number, page in enumerate(pdf.pages, 1):
                pages.append(_pdf_page(number, page.obj))
        except _Damaged as e:
            raise _Damaged(f"page {number}: {e}") from e
        except _PDF_ERRORS as e:
            raise _Damaged(f"page {number}: {type(e).__name__}: {e}") from e
        problems = pdf.get_warnings()
        if problems:  # qpdf repaired something while reading: the master is damaged
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            raise _Damaged("; ".join(str(w) for w in problems[:3]) + more)
        if not pages:
            raise _Damaged("the PDF has no pages")
        return pages


def _pdf_page(number: int, page: pikepdf.Dictionary) -> PageInfo:
    box = page.get("/MediaBox")
    if not isinstance(box, pikepdf.Array) or len(box) != 4:
        raise _Damaged("no valid /MediaBox")
    llx, lly, urx, ury = (float(v) for v in box)
    unit = float(page.get("/UserUnit", 1) or 1)
    width, height = abs(urx - llx) * unit, abs(ury - lly) * unit
    if int(page.get("/Rotate", 0) or 0) % 180 == 90:
        width, height = height, width
    placed = []  # (area pt², dpi_x, dpi_y, colour, bits)
    for image, ctm in _placements(page, page.get("/Resources"), _IDENTITY, 0, set()):
        a, b, c, d = ctm[:4]
        sx, sy = math.hypot(a, b) * unit, math.hypot(c, d) * unit
        if sx == 0 or sy == 0:
            continue
        w, h = image.get("/Width"), image.get("/Height")
        if not isinstance(w, int) or not isinstance(h, int) or w <= 0 or h <= 0:
            raise _Damaged("an image has no valid /Width or /Height")
        colour, bits = _pdf_colour(image)
        placed.append((abs(a * d - b * c) * unit * unit, w * 72 / sx, h * 72 / sy, colour, bits))
    if not placed:
        return PageInfo(number, width, height, has_image=False)
    largest = max(p[0] for p in placed)
    covering = [p for p in placed if p[0] >= largest / 2]
    sharpest = max(covering, key=lambda p: min(p[1], p[2]))
    tone = next((p for p in covering if p[3] in COLOUR), None) or sharpest
    return PageInfo(number, width, height, sharpest[1], sharpest[2], tone[3], tone[4])


def _mul(m, n) -> tuple[float, ...]:
    """m × n for PDF matrices [a b c d e f] (row vectors): apply m, then n."""
    a1, b1, c1, d1, e1, f1 = m
    a2, b2, c2, d2, e2, f2 = n
    return (a1 * a2 + b1 * c2, a1 * b2 + b1 * d2, c1 * a2 + d1 * c2, c1 * b2 + d1 * d2,
            e1 * a2 + f1 * c2 + e2, e1 * b2 + f1 * d2 + f2)


def _placements(target, resources, ctm, depth: int, seen: set):
    """Yield (image XObject, CTM) for each image `target` (a page or a Form XObject) draws."""
    xobjects = resources.get("/XObject") if isinstance(resources, pikepdf.Dictionary) else None
    if not _may_hold_images(xobjects, depth):
        return  # e.g. a page or form holding only an OCR text layer: its content stream is not parsed
    stack = []
    for operands, op in pikepdf.parse_content_stream(target, "q Q cm Do"):
        op = str(op)
        if op == "q":
            stack.append(ctm)
        elif op == "Q":
            ctm = stack.pop() if stack else ctm
        elif op == "cm" and len(operands) == 6:
            ctm = _mul(tuple(float(v) for v in operands), ctm)
        elif op == "Do" and operands and isinstance(xobjects, pikepdf.Dictionary):
            xobj = xobjects.get(operands[0])
            if not isinstance(xobj, pikepdf.Stream):
                continue
            subtype = xobj.get("/Subtype")
            if subtype == pikepdf.Name.Image:
                yield xobj, ctm
            elif subtype == pikepdf.Name.Form and depth < _MAX_FORM_DEPTH and xobj.objgen not in seen:
                matrix = xobj.get("/Matrix")
                m = tuple(float(v) for v in matrix) if isinstance(matrix, pikepdf.Array) and len(matrix) == 6 \
                    else _IDENTITY
                inner = xobj.get("/Resources", resources)
                yield from _placements(xobj, inner, _mul(m, ctm), depth + 1, seen | {xobj.objgen})


def _may_hold_images(xobjects, depth: int) -> bool:
    if not isinstance(xobjects, pikepdf.Dictionary) or depth > _MAX_FORM_DEPTH:
        return False
    for key in xobjects.keys():
        xobj = xobjects.get(key)
        if not isinstance(xobj, pikepdf.Stream):
            continue
        if xobj.get("/Subtype") == pikepdf.Name.Image:
            return True
        inner = xobj.get("/Resources")
        if xobj.get("/Subtype") == pikepdf.Name.Form and (
                not isinstance(inner, pikepdf.Dictionary) or _may_hold_images(inner.get("/XObject"), depth + 1)):
            return True  # a form without /Resources may use its parent's
    return False


def _pdf_colour(image: pikepdf.Stream) -> tuple[str | None, int | None]:
    if image.get("/ImageMask", False) is True:
        return "bilevel", 1
    filters = image.get("/Filter")
    names = {str(f) for f in filters} if isinstance(filters, pikepdf.Array) else {str(filters)}
    if names & {"/JBIG2Decode", "/CCITTFaxDecode"}:
        return "bilevel", 1
    bpc = image.get("/BitsPerComponent")
    bits = bpc if isinstance(bpc, int) and bpc > 0 else None
    kind = _space(image.get("/ColorSpace"))  # None for JPX without /ColorSpace: unknown, not judged
    if kind == "gray" and bits == 1:
        return "bilevel", 1
    return kind, bits


_DEVICE = {"/DeviceRGB": "rgb", "/CalRGB": "rgb", "/DeviceGray": "gray", "/CalGray": "gray",
           "/DeviceCMYK": "cmyk", "/Lab": "lab", "/Separation": "separation", "/DeviceN": "devicen"}


def _space(cs, depth: int = 0) -> str | None:
    if isinstance(cs, pikepdf.Name):
        return _DEVICE.get(str(cs))
    if not isinstance(cs, pikepdf.Array) or len(cs) == 0 or depth > 3:
        return None
    head = str(cs[0])
    if head == "/ICCBased" and len(cs) > 1 and isinstance(cs[1], pikepdf.Stream):
        n = cs[1].get("/N")
        if n in (1, 3, 4):
            return {1: "gray", 3: "rgb", 4: "cmyk"}[n]
        return _space(cs[1].get("/Alternate"), depth + 1)
    if head in ("/Indexed", "/I") and len(cs) > 1:
        return "gray" if _space(cs[1], depth + 1) == "gray" else "indexed"
    return _DEVICE.get(head)


# --- TIFF and other rasters (Pillow) ---------------------------------------------------------------------

_MODES = {"1": ("bilevel", 1), "L": ("gray", 8), "LA": ("gray", 8), "La": ("gray", 8), "I": ("gray", 32),
          "F": ("gray", 32), "I;16": ("gray", 16), "I;16L": ("gray", 16), "I;16B": ("gray", 16),
          "I;16N": ("gray", 16), "P": ("indexed", 8), "PA": ("indexed", 8), "RGB": ("rgb", 8),
          "RGBA": ("rgb", 8), "RGBX": ("rgb", 8), "RGBa": ("rgb", 8), "CMYK": ("cmyk", 8),
          "YCbCr": ("rgb", 8), "LAB": ("lab", 8), "HSV": ("rgb", 8)}


def _inspect_raster(path: Path, tiff: bool) -> list[PageInfo]:
    pages: list[PageInfo] = []
    try:
        size = path.stat().st_size
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Image.open(path) as img:
                for number, frame in enumerate(ImageSequence.Iterator(img), 1):
                    pages.append(_raster_page(number, frame, size, tiff))
    except Image.DecompressionBombError as e:
        raise _Damaged(f"too many pixels to be handled safely (decompression bomb): {e}") from e
    except _PIL_ERRORS as e:
        raise _Damaged(f"page {len(pages) + 1}: {type(e).__name__}: {e}") from e
    # Pillow warns of malformed tags and short reads ("Tag data larger than file", "Truncated File Read"):
    # damage. Pixels are never decoded here, so an image between Pillow's warning and error limits is fine.
    damage = [str(w.message) for w in caught if not issubclass(w.category, Image.DecompressionBombWarning)]
    if damage:
        raise _Damaged("; ".join(damage[:3]) + (f" (+{len(damage) - 3} more)" if len(damage) > 3 else ""))
    if not pages:
        raise _Damaged("the image has no pages")
    return pages


def _raster_page(number: int, frame: Image.Image, size: int, tiff: bool) -> PageInfo:
    w, h = frame.size
    colour, bits = _MODES.get(frame.mode, (None, None))
    dpi = None
    if tiff:
        tags = frame.tag_v2
        ends = [o + c for o, c in zip(_ints(tags.get(273) or tags.get(324)), _ints(tags.get(279) or tags.get(325)))]
        if ends and max(ends) > size:
            raise _Damaged(f"page {number}: image data runs to byte {max(ends)}, past the end of the file "
                           f"({size} bytes): truncated")
        per_sample = _ints(tags.get(258))
        if per_sample and colour != "bilevel":
            bits = per_sample[0]
        dpi = _tiff_dpi(tags)
    else:
        raw = frame.info.get("dpi")
        if raw and len(raw) == 2 and all(_positive(v) for v in raw):
            dpi = (float(raw[0]), float(raw[1]))
    if dpi is None:
        return PageInfo(number, None, None, None, None, colour, bits)
    return PageInfo(number, w / dpi[0] * 72, h / dpi[1] * 72, dpi[0], dpi[1], colour, bits)


def _ints(value) -> list[int]:
    if value is None:
        return []
    if isinstance(value, (tuple, list)):
        return [int(v) for v in value]
    return [int(value)]


def _positive(v) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError, ZeroDivisionError):
        return False
    return math.isfinite(f) and f > 0


def _tiff_dpi(tags) -> tuple[float, float] | None:
    """DPI from XResolution/YResolution and ResolutionUnit (TIFF 6.0: 1 none, 2 inch (default), 3 cm)."""
    x, y = tags.get(282), tags.get(283)
    if not _positive(x):
        return None
    y = y if _positive(y) else x
    unit = tags.get(296, 2)
    factor = {2: 1.0, 3: 2.54}.get(int(unit) if isinstance(unit, int) else -1)
    if factor is None:  # "no absolute unit": only an aspect ratio
        return None
    return float(x) * factor, float(y) * factor
