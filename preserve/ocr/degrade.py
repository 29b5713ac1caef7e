"""Scanned-looking Vietnamese pages whose exact text is known, and seeded scan defects to apply to them.

`preserve.sip.sample.render_pages` draws a two-column header and signature block whose reading order is
ambiguous, and it does not return its text. To measure OCR against an exact reference this module draws one
page in the same visual style (DejaVu fonts, Party header, title, body from `text_bank()`, signer under a red
seal) but one line of text per row, so the reading order, and with it the ground truth, is unambiguous.
"""

from __future__ import annotations

import io
import random
import unicodedata
from datetime import date
from typing import Callable

from PIL import Image, ImageDraw, ImageFilter

from preserve.sip.sample import BLUE, INK, RED, _font, _viet_date, _wrap, text_bank

DPI = 200
LEVELS = {  # rotation (max degrees), gaussian blur radius (px), JPEG quality, speckles per megapixel, yellowing
    "clean": (0.0, 0.0, None, 0, 0.0),
    "mild": (0.6, 0.6, 75, 40, 0.3),
    "heavy": (1.5, 1.2, 40, 250, 0.7),
    "tilted": (3.0, 0.6, 75, 40, 0.3),  # mild defects, but fed crooked: up to ±3°, common on a flatbed
}


def make_page(seed: int, dpi: int = DPI) -> tuple[Image.Image, str]:
    """One A4 page and its reading-order text (NFC, one line per drawn row): the OCR ground truth."""
    bank, rng = text_bank(), random.Random(seed)
    mm, pt = dpi / 25.4, dpi / 72
    W, H = round(210 * mm), round(297 * mm)
    left, right, top, bottom = 30 * mm, W - 15 * mm, 20 * mm, H - 20 * mm
    img = Image.new("RGB", (W, H), (247, 243, 232))
    d, rows = ImageDraw.Draw(img), []

    def put(text: str, font, y: float, align: str = "l") -> None:
        x = {"l": left, "c": (left + right) / 2, "r": right}[align]
        d.text((x, y), text, font=font, fill=INK, anchor={"l": "la", "c": "ma", "r": "ra"}[align])
        rows.append(text)

    organ, kind = rng.choice(bank["organs"]), rng.choice(bank["types"])
    noun, issued = rng.choice(bank["topics"]), date(rng.randint(1955, 1965), rng.randint(1, 12), rng.randint(1, 28))
    fill = {"noun": noun, "year": issued.year, "year1": issued.year + 1, "q": rng.randint(1, 4)}
    hb, hr, hi = (_font(n, round(12 * pt)) for n in ("DejaVuSerif-Bold", "DejaVuSerif", "DejaVuSerif-Italic"))
    body, bold = _font("DejaVuSerif", round(13 * pt)), _font("DejaVuSerif-Bold", round(13 * pt))
    lh, y = round(13 * pt * 1.45), top
    for text, font, align in [("ĐẢNG CỘNG SẢN VIỆT NAM", hb, "r")] + [(h, hb, "l") for h in organ["header"]] + [
            (f"Số {rng.randint(1, 150)}-{kind['abbr']}/{organ['suffix']}", hr, "l"),
            (f"{bank['fonds']['place']}, {_viet_date(issued)}", hi, "r")]:
        put(text, font, y, align)
        y += round(12 * pt * 1.4)
    y += lh
    put(kind["name"].upper(), _font("DejaVuSerif-Bold", round(15 * pt)), y, "c")
    y += round(15 * pt * 1.5)
    for line in _wrap(rng.choice(bank["subjects"]).format(**fill), bold, 140 * mm):
        put(line, bold, y, "c")
        y += round(13 * pt * 1.4)
    y += lh
    paras = bank["paragraphs"][rng.randrange(len(bank["paragraphs"])):] + bank["paragraphs"]
    heading, limit = rng.choice(bank["headings"]), bottom - 55 * mm
    for line in [heading] + [w for p in paras for w in _wrap(p.format(**fill), body, right - left)]:
        if y + lh > limit:
            break
        put(line, bold if line == heading else body, y)
        y += lh
    _sign(d, organ, rng.choice(bank["signers"]), y + lh, mm, pt, right, put)
    return img, unicodedata.normalize("NFC", "\n".join(rows))


def _sign(d: ImageDraw.ImageDraw, organ: dict, signer: str, y: float, mm: float, pt: float, right: float,
          put: Callable[..., None]) -> None:
    """Signing lines, a blue stroke and the signer's name, with the red seal over them as on a real document."""
    sb, lh = _font("DejaVuSerif-Bold", round(13 * pt)), round(13 * pt * 1.4)
    for k, line in enumerate(organ["sign"]):
        put(line, sb, y + k * lh, "r")
    sy, cx = y + len(organ["sign"]) * lh + 12 * mm, right - 30 * mm
    d.line([(cx - 15 * mm + t * mm / 2, sy + (t % 7) * mm / 3) for t in range(50)], fill=BLUE, width=round(1.2 * pt))
    put(signer, sb, sy + 20 * mm, "r")
    sx = right - 38 * mm  # over the left half of the signing lines and the name, as a seal is stamped
    for r in (17 * mm, 12 * mm):
        d.ellipse((sx - r, sy - r, sx + r, sy + r), outline=RED, width=round(1.2 * pt))
    d.text((sx, sy), "★", font=_font("DejaVuSans", round(22 * pt)), fill=RED, anchor="mm")


def degrade(img: Image.Image, level: str, seed: int) -> Image.Image:
    """The page as a worn scanner sees it: tilt, yellowed paper, speckle, blur, JPEG; same seed, same bytes."""
    angle, blur, quality, speckles, yellow = LEVELS[level]
    rng = random.Random(f"{seed}:{level}")
    out = img.convert("RGB")
    if yellow:  # paper yellowing: a warm multiply, strongest in blue
        r, g, b = out.split()
        out = Image.merge("RGB", (r, g.point(lambda v: round(v * (1 - 0.04 * yellow))),
                                  b.point(lambda v: round(v * (1 - 0.18 * yellow)))))
    if speckles:
        d = ImageDraw.Draw(out)
        for _ in range(round(speckles * out.width * out.height / 1e6)):
            x, y, s = rng.uniform(0, out.width), rng.uniform(0, out.height), rng.uniform(0.5, 2.0)
            d.ellipse((x - s, y - s, x + s, y + s), fill=(rng.randint(40, 110),) * 3)
    if angle:
        bg = out.getpixel((2, 2))
        out = out.rotate(rng.uniform(-angle, angle), resample=Image.BICUBIC, fillcolor=bg)
    if blur:
        out = out.filter(ImageFilter.GaussianBlur(blur))
    if quality:
        buf = io.BytesIO()
        out.save(buf, "JPEG", quality=quality)
        out = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return out


def sample_spec(seed: int) -> dict:
    """A `preserve.sip.sample.render_pages` spec (two-column Party header, signer), drawn from the text bank."""
    bank, rng = text_bank(), random.Random(seed)
    organ, kind = rng.choice(bank["organs"]), rng.choice(bank["types"])
    noun, issued = rng.choice(bank["topics"]), date(rng.randint(1955, 1965), rng.randint(1, 12), rng.randint(1, 28))
    fill = {"noun": noun, "year": issued.year, "year1": issued.year + 1, "q": rng.randint(1, 4)}
    return {"seed": rng.getrandbits(32), "organ": organ, "type": kind["name"], "number": str(rng.randint(1, 150)),
            "notation": f"{kind['abbr']}/{organ['suffix']}", "date": issued,
            "subject": rng.choice(bank["subjects"]).format(**fill), "signer": rng.choice(bank["signers"]),
            "noun": noun, "paper": (246, 241, 225), "body_font": "DejaVuSerif"}


def header_columns(spec: dict) -> tuple[list[str], list[str]]:
    """The lines of a sample page's two-column header, each column top to bottom (NFC): (left, right)."""
    left = [*spec["organ"]["header"], f"Số {spec['number']}-{spec['notation']}"]
    right = ["ĐẢNG CỘNG SẢN VIỆT NAM", f"{text_bank()['fonds']['place']}, {_viet_date(spec['date'])}"]
    return [unicodedata.normalize("NFC", x) for x in left], [unicodedata.normalize("NFC", x) for x in right]
