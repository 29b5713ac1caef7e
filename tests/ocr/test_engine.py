"""The ingest OCR engine, with the real ocrmypdf and tesseract `vie`: one run_ocr over a few one-page documents."""

from __future__ import annotations

import hashlib
import io
import threading
import zlib
from difflib import SequenceMatcher
from pathlib import Path

import pikepdf
import pytest
from PIL import Image, ImageChops

from preserve.ocr import engine, skew
from preserve.ocr.degrade import DPI, degrade, header_columns, make_page, sample_spec
from preserve.sip.sample import render_pages

pytestmark = pytest.mark.skipif(not __import__("shutil").which("ocrmypdf"), reason="ocrmypdf not installed")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Five documents in one run: a degraded generated page, a sample page (two-column header), a PNG that
    states no resolution, a truncated PDF and a page fed 2.5° crooked."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("out")
    img, truth = make_page(11)
    degrade(img, "mild", 11).save(src / "mild.pdf", "PDF", resolution=DPI)
    spec = sample_spec(5)
    render_pages(spec, 1)[0].save(src / "sample.pdf", "PDF", resolution=DPI, quality=70)
    render_pages(sample_spec(6), 1)[0].save(src / "nodpi.png", "PNG")  # no pHYs chunk: no resolution
    img2, tilted_truth = make_page(12)
    img2.rotate(2.5, resample=Image.BICUBIC, fillcolor=img2.getpixel((2, 2))).save(src / "tilted.pdf", "PDF",
                                                                                 resolution=DPI, quality=75)
    good = (src / "sample.pdf").read_bytes()
    (src / "broken.pdf").write_bytes(good[: len(good) // 3])
    names = ["mild.pdf", "sample.pdf", "broken.pdf", "nodpi.png", "tilted.pdf"]
    jobs = [engine.OcrJob(src / n, out / f"{Path(n).stem}.ocr.pdf", key=f"HD-{k}") for k, n in enumerate(names)]
    before = {n: sha256(src / n) for n in names}
    seen: list[tuple[str, str]] = []
    results = engine.run_ocr(jobs, cores=2, on_done=lambda r: seen.append((r.key, threading.current_thread().name)))
    return {"src": src, "out": out, "jobs": jobs, "results": results, "before": before, "truth": truth,
            "spec": spec, "tilted_truth": tilted_truth, "seen": seen, "by": {Path(n).stem: r for n, r in zip(names, results)}}


def test_results_in_job_order_and_progress_from_calling_thread(run):
    assert [r.key for r in run["results"]] == [j.key for j in run["jobs"]]
    assert sorted(k for k, _ in run["seen"]) == sorted(j.key for j in run["jobs"])
    assert {t for _, t in run["seen"]} == {threading.current_thread().name}


def test_known_words_found(run):
    by = run["by"]
    assert by["mild"].ok and by["sample"].ok and by["nodpi"].ok
    mild = " ".join(by["mild"].text.split())
    assert "ĐẢNG CỘNG SẢN VIỆT NAM" in mild
    signer = run["truth"].splitlines()[-1]
    assert signer in mild
    words = set(run["truth"].split())
    assert len(words & set(mild.split())) / len(words) > 0.9
    sample = by["sample"].text
    assert run["spec"]["signer"] in " ".join(sample.split())
    assert "ĐẢNG CỘNG SẢN VIỆT NAM" in by["nodpi"].text


def test_tilted_page_reads_in_order(run):
    r = run["by"]["tilted"]
    assert r.ok
    lines = [" ".join(x.split()) for x in r.text.splitlines() if x.strip()]
    truth = run["tilted_truth"].splitlines()
    whole = sum(x in lines for x in truth)
    assert whole / len(truth) > 0.6  # unstraightened, neighbouring lines interleave and almost none is whole


def test_two_column_header_lines_come_out_whole_and_in_column_order(run):
    lines = [" ".join(x.split()) for x in run["by"]["sample"].text.splitlines() if x.strip()]
    def where(want: str) -> int:  # the extracted line that is this header line, give or take an OCR slip
        best = max(range(len(lines)), key=lambda k: SequenceMatcher(None, want, lines[k]).ratio())
        assert SequenceMatcher(None, want, lines[best]).ratio() > 0.85, (want, lines[:10])
        return best

    for column in header_columns(run["spec"]):
        at = [where(x) for x in column]  # each header line is one extracted line, not words of two
        assert at == sorted(at)


def test_output_is_pdfa2(run):
    for name in ("mild", "sample", "nodpi"):
        dest = run["by"][name].dest
        with pikepdf.open(dest) as pdf:
            assert pdf.open_metadata().get("pdfaid:part") == "2"
        assert engine.pdfa_problems(dest) == []
    assert any("pdfaid:part" in p for p in engine.pdfa_problems(run["src"] / "sample.pdf"))
    assert engine.pdfa_problems(run["src"] / "broken.pdf")


def test_sources_untouched(run):
    assert {n: sha256(run["src"] / n) for n in run["before"]} == run["before"]


def first_image(pdf_path: Path) -> tuple[Image.Image, float]:
    """The first page's image, decoded, and its resolution on the page (pixels per inch)."""
    with pikepdf.open(pdf_path) as pdf:
        page = pdf.pages[0]
        obj = next(iter((page.get_images() if hasattr(page, "get_images") else page.images).values()))
        raw, filt = obj.read_raw_bytes(), obj.get("/Filter")
        if isinstance(filt, pikepdf.Array):  # Flate over DCT, had ocrmypdf's optimiser run
            raw = zlib.decompress(raw)
            filt = filt[-1]
        assert filt == "/DCTDecode"
        width_pt = float(page.mediabox[2]) - float(page.mediabox[0])
        return Image.open(io.BytesIO(raw)).convert("RGB"), int(obj.Width) / (width_pt / 72)


def test_straight_scan_keeps_its_pixels(run):
    """A straight scan's page image is its own JPEG, not a resampled or re-compressed one."""
    for name in ("mild", "sample"):
        assert "--deskew" not in run["by"][name].options and run["by"][name].skew < engine.DESKEW_FROM
        (a, _), (b, dpi) = first_image(run["src"] / f"{name}.pdf"), first_image(run["by"][name].dest)
        assert a.size == b.size and ImageChops.difference(a, b).getbbox() is None and abs(dpi - DPI) < 1


def test_crooked_scan_is_straightened_in_colour_at_the_same_resolution(run):
    r = run["by"]["tilted"]
    assert "--deskew" in r.options and 2.0 < r.skew < 3.0
    (a, _), (b, dpi) = first_image(run["src"] / "tilted.pdf"), first_image(r.dest)
    assert b.mode == "RGB" and b.size == a.size and abs(dpi - DPI) < 1


def test_damaged_input_fails_alone(run):
    bad = run["by"]["broken"]
    assert not bad.ok and bad.text == "" and "exit 2" in bad.error and "HD-2" in bad.error
    assert not bad.dest.exists()
    assert sum(r.ok for r in run["results"]) == 4


def test_no_temporary_files_left(run):
    assert sorted(p.name for p in run["out"].iterdir()) == ["mild.ocr.pdf", "nodpi.ocr.pdf", "sample.ocr.pdf",
                                                          "tilted.ocr.pdf"]


def test_extract_text_matches_result(run):
    r = run["by"]["mild"]
    assert engine.extract_text(r.dest) == r.text and r.seconds > 0


def test_existing_dest_is_never_overwritten(tmp_path):
    dest = tmp_path / "x.pdf"
    dest.write_bytes(b"keep")
    src = tmp_path / "src.pdf"
    Image.new("RGB", (100, 100), "white").save(src, "PDF", resolution=DPI)
    (res,) = engine.run_ocr([engine.OcrJob(src, dest, "K")])
    assert not res.ok and "already exists" in res.error and dest.read_bytes() == b"keep"


def test_tools_and_options():
    tools = engine.ocr_tools()
    assert tools["ocrmypdf"][0].isdigit() and tools["tesseract"][0].isdigit() and tools["ghostscript"]
    assert "vie" in tools["languages"]
    opts = engine.ocr_options()
    assert opts[:2] == ["-l", "vie"] and "pdfa-2" in opts and "--skip-text" in opts and "--deskew" not in opts
    assert engine.ocr_options(deskew=True) == [*opts, "--deskew"]


def test_plan_shares_the_cores():
    assert engine.plan(1, 2) == (1, 2)
    assert engine.plan(3, 2) == (2, 1)
    assert engine.plan(2, 8) == (2, 4)


@pytest.mark.parametrize("angle", [0.0, 0.8, -1.5, 3.0])
def test_skew_is_measured(tmp_path, angle):
    img, _ = make_page(13)
    img.rotate(angle, resample=Image.BICUBIC, fillcolor=img.getpixel((2, 2))).save(tmp_path / "p.pdf", "PDF",
                                                                                 resolution=DPI, quality=75)
    assert abs(skew.skew(tmp_path / "p.pdf") - abs(angle)) <= 0.25
    assert abs(skew.page_skew(skew.page_images(tmp_path / "p.pdf")[0]) + angle) <= 0.25  # the straightening angle


def test_timeout_kills_the_run_and_leaves_nothing(tmp_path):
    img, _ = make_page(14)
    img.save(tmp_path / "slow.pdf", "PDF", resolution=DPI, quality=75)
    out = tmp_path / "out"
    out.mkdir()
    (res,) = engine.run_ocr([engine.OcrJob(tmp_path / "slow.pdf", out / "slow.ocr.pdf", "T")], page_seconds=0.15)
    assert not res.ok and "timed out" in res.error and list(out.iterdir()) == []
