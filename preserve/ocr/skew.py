"""How crooked a scan is, cheaply, so that only crooked documents get ocrmypdf's --deskew.

Straightening a page resamples its image (and ocrmypdf then stores it re-encoded), which costs a little
recognition on straight pages (bench/README.md, OCR section); not straightening a page tilted by 1° or more
makes pdftotext interleave neighbouring lines. Each page is rendered small and grey (pdftoppm at 50 dpi, or
Pillow for an image), and the angle whose horizontal projection of ink is sharpest (text rows line up) is the
skew: a coarse sweep then a fine one, each a Pillow rotate plus a 1-pixel-wide box resize.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

RENDER_DPI = 50
MAX_ANGLE = 5.0  # degrees searched either way


def page_images(src: Path) -> list[Image.Image]:
    """Every page of a scan, grey, at about RENDER_DPI."""
    if src.suffix.lower() == ".pdf":
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["pdftoppm", "-r", str(RENDER_DPI), "-gray", str(src), f"{tmp}/p"], check=True,
                           capture_output=True, timeout=600)
            out = []
            for p in sorted(Path(tmp).glob("p-*.pgm"), key=lambda p: int(p.stem.split("-")[-1])):
                with Image.open(p) as im:
                    out.append(im.convert("L"))
            return out
    out = []
    with Image.open(src) as im:
        for k in range(getattr(im, "n_frames", 1)):
            im.seek(k)
            dpi = im.info.get("dpi") or (200, 200)
            scale = RENDER_DPI / max(float(dpi[0]) or 200, 1)
            g = ImageOps.exif_transpose(im).convert("L") if k == 0 else im.convert("L")
            out.append(g.resize((max(1, round(g.width * scale)), max(1, round(g.height * scale))), Image.BOX))
    return out


def _sharpness(ink: Image.Image, angle: float) -> float:
    rows = ink.rotate(angle, resample=Image.BILINEAR, expand=False).resize((1, ink.height), Image.BOX)
    vals = rows.tobytes()
    return sum(v * v for v in vals) / len(vals)


def page_skew(grey: Image.Image) -> float:
    """The angle (degrees, counter-clockwise as Pillow rotates) that would straighten this page's text rows."""
    ink = grey.point(lambda v: 255 if v < 140 else 0)  # dark ink on paper, as white on black
    m = max(1, round(min(ink.size) * 0.04))  # drop the borders, where scanner edges and shadows lie
    ink = ink.crop((m, m, ink.width - m, ink.height - m))
    if ink.getbbox() is None:  # a blank page
        return 0.0
    best = max((k / 2 for k in range(-int(MAX_ANGLE * 2), int(MAX_ANGLE * 2) + 1)), key=lambda a: _sharpness(ink, a))
    return max((best + k / 20 for k in range(-10, 11)), key=lambda a: _sharpness(ink, a))


def skew(src: Path) -> float:
    """The largest |skew| of the scan's pages, in degrees."""
    return max((abs(page_skew(p)) for p in page_images(src)), default=0.0)
