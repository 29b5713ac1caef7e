"""The OCR bench's page generator: deterministic, A4 at 200 dpi, Vietnamese ground truth, defects as named."""

from __future__ import annotations

import unicodedata

import pytest
from PIL import Image, ImageChops, ImageFilter, ImageStat

from preserve.ocr.degrade import DPI, degrade, make_page


@pytest.fixture(scope="module")
def page() -> tuple[Image.Image, str]:
    return make_page(7)


@pytest.fixture(scope="module")
def levels(page) -> dict[str, Image.Image]:
    """Each level applied once to the same page with the same seed: degrading takes about half a second."""
    return {lv: degrade(page[0], lv, 1) for lv in ("clean", "mild", "heavy")}


def sharpness(img: Image.Image) -> float:
    """Variance of the Laplacian on grey: blur removes high frequencies and lowers it."""
    lap = img.convert("L").filter(ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], scale=1, offset=128))
    return ImageStat.Stat(lap).var[0]


def red_pixels(img: Image.Image) -> int:
    """Seal-red pixels (strong red, weak green and blue): ink and paper are never this colour."""
    r, g, b = img.convert("RGB").split()
    mask = ImageChops.multiply(ImageChops.multiply(r.point(lambda v: 255 if v > 150 else 0),
                                                   g.point(lambda v: 255 if v < 110 else 0)),
                               b.point(lambda v: 255 if v < 110 else 0))
    return mask.histogram()[255]


def test_same_seed_same_bytes(page):
    img2, text2 = make_page(7)
    assert page[0].tobytes() == img2.tobytes() and page[1] == text2
    again = degrade(img2, "heavy", 3).tobytes()
    assert degrade(page[0], "heavy", 3).tobytes() == again != degrade(page[0], "heavy", 4).tobytes()
    assert make_page(8)[1] != page[1]


def test_a4_at_200_dpi(page, levels):
    for img in (page[0], *levels.values()):
        assert img.size == (round(210 / 25.4 * DPI), round(297 / 25.4 * DPI)) == (1654, 2339)


def test_ground_truth_is_nfc_vietnamese(page):
    text = page[1]
    assert len(text.split()) > 200
    assert unicodedata.is_normalized("NFC", text)
    assert "ĐẢNG CỘNG SẢN VIỆT NAM" in text
    assert sum(ch in "ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ" for ch in text.lower()) > 100


def test_levels_blur_as_intended(levels):
    clean, mild, heavy = (sharpness(levels[lv]) for lv in ("clean", "mild", "heavy"))
    assert clean > mild * 1.3 and mild > heavy * 1.3


def test_paper_yellows_with_the_level(levels):
    def warmth(img: Image.Image) -> float:
        r, _, b = ImageStat.Stat(img.convert("RGB")).mean
        return r - b
    assert warmth(levels["clean"]) < warmth(levels["mild"]) < warmth(levels["heavy"])


def test_red_seal_survives_heavy_defects(page, levels):
    assert red_pixels(page[0]) > 3000
    assert red_pixels(levels["heavy"]) > 1500
    assert red_pixels(Image.new("RGB", page[0].size, (247, 243, 232))) == 0
