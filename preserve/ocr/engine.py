"""OCR at ingest: a PDF/A-2 two-layer copy (the scan's own images + invisible Vietnamese text) of each scan.

One `ocrmypdf` process per document (the CLI, as Debian ships it; it is not importable from the venv), with
tesseract's `vie` model. With D documents and C cores, min(D, C) processes run at once and each gets
`--jobs` ≈ C / min(D, C), so a single long document spreads its pages over every core and many short ones run
side by side. Tesseract's own OpenMP threads are turned off (OMP_THREAD_LIMIT=1): left to itself, ocrmypdf
gives tesseract `--jobs` ÷ pages threads on short documents, and one-page documents then took 1.8-3.6× as long
per page here as with one thread and documents side by side (bench/README.md, OCR section).

The source scan is only read. A scan measured crooked gets --deskew (see OPTIONS). Each output is written to a
hidden temporary name beside `dest`, text-extracted, fsynced and then linked to `dest`, so a killed run leaves no
partial `dest` (a stale temporary is removed by the next run for the same `dest`). One bad document gives a
failed `OcrResult`, never an exception; only a missing OCR tool (UsageError) stops the run.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from preserve.atomic import fsync_dir
from preserve.errors import UsageError
from preserve.ocr.skew import skew as measure_skew

OCR_LANG = "vie"
IMAGE_DPI = 200  # assumed for images that do not state their resolution (the scans are made at 200 dpi)
TIMEOUT_PER_PAGE = 60  # seconds allowed per page (plus one page's worth); generous: a page takes 2–4 s on one core
IMAGE_SUFFIXES = {".tif", ".tiff", ".jpg", ".jpeg", ".png", ".jp2", ".bmp", ".gif"}

# Chosen with bench/ocr.py (see bench/README.md, OCR section). Tesseract's default page segmentation gives
# pdftotext the two-column header lines whole and the body in order on straight pages. From about 0.6° of tilt
# up, neighbouring lines come out interleaved (CER 12 % at 1°, 28 % on pages tilted up to ±3°), which --deskew
# mends (3 %); but straightening resamples the page image, which ocrmypdf then stores re-encoded (JPEG q95), and
# costs recognition on straight pages (mild CER 1.3 % → 2.6 %). So --deskew is given only to documents whose
# scan measures (preserve.ocr.skew) at least DESKEW_FROM degrees on some page; a straight scan's JPEG passes
# into the OCR copy with its pixels unchanged. --optimize 0: ocrmypdf's optimiser would only wrap the JPEGs in
# Flate (same pixels, 15-25 % smaller, no faster). --skip-text: a born-digital page keeps its text and is not refused.
OPTIONS = ["-l", OCR_LANG, "--output-type", "pdfa-2", "--optimize", "0", "--skip-text", "-q"]
DESKEW_FROM = 0.5  # degrees

EXIT_CODES = {  # ocrmypdf's ExitCode values, as a short reason
    1: "bad arguments", 2: "input file cannot be read or is damaged", 3: "a required program is missing",
    4: "the output PDF is invalid", 5: "file access error", 6: "the file already has text",
    7: "a helper program (tesseract, Ghostscript) failed", 8: "the PDF is encrypted",
    9: "invalid configuration", 10: "PDF/A conversion failed", 15: "unexpected error", 130: "interrupted",
}


@dataclass
class OcrJob:
    src: Path  # the scan (PDF, TIFF, JPEG, PNG); never modified
    dest: Path  # the PDF/A-2 to write; its folder exists and it does not
    key: str  # the document code, for progress and errors
    pages: int | None = None  # page count when known (sizes the timeout and --jobs); counted when None


@dataclass
class OcrResult:
    key: str
    dest: Path
    ok: bool
    text: str  # pdftotext -enc UTF-8 of dest, NFC; "" when failed
    error: str | None  # short reason when not ok
    seconds: float
    options: list[str] = field(default_factory=list)  # the exact ocrmypdf arguments this document got
    skew: float | None = None  # the scan's largest page tilt, degrees, as measured (None: not measured)


def _missing(what: str) -> UsageError:
    return UsageError(
        f"Không chạy được OCR: thiếu {what}. / OCR cannot run: {what} is missing.",
        hint="chạy `make setup` hoặc `apt-get install ocrmypdf tesseract-ocr-vie poppler-utils`, hoặc đặt "
             "`ocr = \"off\"` trong preserve.toml / run `make setup` or `apt-get install ocrmypdf "
             "tesseract-ocr-vie poppler-utils`, or set `ocr = \"off\"` in preserve.toml")


def _version(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    out = (p.stdout or p.stderr).strip()
    return out.splitlines()[0].strip() if p.returncode == 0 and out else ""


@functools.cache
def ocr_tools() -> dict:
    """Versions of the OCR programs and tesseract's languages; UsageError when ocrmypdf or `vie` is missing."""
    ocrmypdf = _version(["ocrmypdf", "--version"])
    if not ocrmypdf:
        raise _missing("ocrmypdf")
    tess = _version(["tesseract", "--version"])
    if not tess:
        raise _missing("tesseract")
    langs = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True).stdout.splitlines()[1:]
    langs = sorted(x.strip() for x in langs if x.strip())
    if OCR_LANG not in langs:
        raise _missing(f"tesseract-ocr-{OCR_LANG} (ngôn ngữ / language '{OCR_LANG}')")
    try:  # pdftotext -v writes "pdftotext version 22.02.0" to stderr and exits 0 (older: 99)
        p = subprocess.run(["pdftotext", "-v"], capture_output=True, text=True)
        pdftotext = (p.stderr or p.stdout).split("version", 1)[1].split()[0]
    except (OSError, IndexError):
        raise _missing("pdftotext (poppler-utils)") from None
    return {"ocrmypdf": ocrmypdf.split("+")[0], "tesseract": tess.split()[-1],
            "ghostscript": _version(["gs", "--version"]), "pdftotext": pdftotext, "languages": langs}


def ocr_options(deskew: bool = False) -> list[str]:
    """The ocrmypdf arguments a document gets, for the PREMIS creation event: with `--deskew` for a crooked scan
    (OcrResult.options has each document's exact list). Also, per document, `--jobs N` (a CPU share, no effect
    on the result) and, for an image that states no resolution, `--image-dpi 200`."""
    return [*OPTIONS, "--deskew"] if deskew else list(OPTIONS)


def extract_text(pdf: Path | bytes) -> str:
    """The text layer as other tools see it: `pdftotext -enc UTF-8`, NFC. `pdf`: a file, or its bytes (read by
    pdftotext from its standard input)."""
    data = pdf if isinstance(pdf, bytes) else None
    p = subprocess.run(["pdftotext", "-enc", "UTF-8", "-" if data is not None else str(pdf), "-"], input=data,
                       capture_output=True, timeout=600)
    if p.returncode:
        raise RuntimeError(f"pdftotext failed ({p.returncode}): {_last_line(p.stderr)}")
    return unicodedata.normalize("NFC", p.stdout.decode("utf-8", "replace"))


def pdfa_problems(pdf: Path) -> list[str]:
    """[] when `pdf` declares PDF/A-2 (B or U) in its XMP and pikepdf finds nothing wrong; else the problems."""
    import pikepdf

    try:
        with pikepdf.open(pdf) as doc:
            problems = []
            if doc.is_encrypted:
                problems.append("encrypted")
            meta = doc.open_metadata()
            part, conf = meta.get("pdfaid:part"), meta.get("pdfaid:conformance")
            if part != "2":
                problems.append(f"XMP pdfaid:part is {part!r}, not '2'")
            if (conf or "").upper() not in ("B", "U"):
                problems.append(f"XMP pdfaid:conformance is {conf!r}, not 'B' or 'U'")
            if "/OutputIntents" not in doc.Root:
                problems.append("no OutputIntents (PDF/A needs an output intent)")
            check = getattr(doc, "check_pdf_syntax", None) or doc.check
            problems += [str(x) for x in check()]
            return problems
    except Exception as e:  # noqa: BLE001 - any failure to read it is the problem to report
        return [f"cannot open: {type(e).__name__}: {e}"]


def count_pages(src: Path) -> int | None:
    """Pages (PDF) or frames (image) in a scan; None when it cannot be read (ocrmypdf will say why)."""
    try:
        if src.suffix.lower() == ".pdf":
            import pikepdf
            with pikepdf.open(src) as pdf:
                return len(pdf.pages)
        from PIL import Image
        with Image.open(src) as im:
            return getattr(im, "n_frames", 1)
    except Exception:  # noqa: BLE001
        return None


def _needs_dpi(src: Path) -> bool:
    """An image whose file states no usable resolution (ocrmypdf refuses those without --image-dpi)."""
    if src.suffix.lower() not in IMAGE_SUFFIXES:
        return False
    from PIL import Image
    try:
        with Image.open(src) as im:
            dpi = im.info.get("dpi") or (im.info.get("jfif_density") if im.info.get("jfif_unit") else None)
            return not dpi or min(float(d) for d in dpi) < 10
    except Exception:  # noqa: BLE001 - unreadable: let ocrmypdf report it
        return False


def _last_line(err: bytes | str) -> str:
    text = err.decode("utf-8", "replace") if isinstance(err, bytes) else err
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    return lines[-1][:300] if lines else ""


def _temp_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.ocr-tmp-{os.getpid()}-{threading.get_ident()}.pdf")


def _clear_stale(dest: Path) -> None:
    for old in dest.parent.glob(f".{dest.name}.ocr-tmp-*"):
        old.unlink(missing_ok=True)


_LIVE: set[subprocess.Popen] = set()  # running ocrmypdf processes, killed if the caller is interrupted
_LOCK = threading.Lock()


def _kill(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)  # its own process group: ocrmypdf, tesseract, gs
    except ProcessLookupError:
        pass


def _run_one(job: OcrJob, jobs: int, fixed: list[str] | None, page_seconds: float = TIMEOUT_PER_PAGE) -> OcrResult:
    t0 = time.perf_counter()
    options, tilt = fixed, None

    def fail(reason: str) -> OcrResult:
        return OcrResult(job.key, job.dest, False, "", f"{job.key}: {reason}", time.perf_counter() - t0,
                         options or [], tilt)

    src, dest = Path(job.src), Path(job.dest)
    if dest.exists():
        return fail(f"{dest.name} already exists; an OCR copy is never overwritten")
    if not src.is_file():
        return fail(f"no such file: {src}")
    pages = job.pages or count_pages(src) or 1
    if options is None:
        try:
            tilt = round(measure_skew(src), 2)
        except Exception:  # noqa: BLE001 - unreadable: ocrmypdf will say why
            tilt = None
        options = ocr_options(deskew=tilt is not None and tilt >= DESKEW_FROM)
    _clear_stale(dest)
    tmp = _temp_name(dest)
    if _needs_dpi(src):  # part of what decides the result, so part of the options recorded
        options = [*options, "--image-dpi", str(IMAGE_DPI)]
    cmd = ["ocrmypdf", *options, "--jobs", str(max(1, min(jobs, pages))), "--", str(src), str(tmp)]
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    timeout = page_seconds * (pages + 1)  # one page's worth for start-up and the PDF/A conversion
    try:
        # own session, so that a timeout kills ocrmypdf with its tesseract and Ghostscript children
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
        with _LOCK:
            _LIVE.add(p)
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(p)
            p.communicate()
            return fail(f"timed out after {timeout} s ({pages} pages)")
        finally:
            with _LOCK:
                _LIVE.discard(p)
        if p.returncode:
            meaning = EXIT_CODES.get(p.returncode, "failed")
            last = _last_line(err)
            return fail(f"ocrmypdf exit {p.returncode} ({meaning})" + (f": {last}" if last else ""))
        if not tmp.is_file() or tmp.stat().st_size == 0:
            return fail("ocrmypdf wrote no output")
        text = extract_text(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        try:  # link, not rename: never replaces a dest that appeared meanwhile
            os.link(tmp, dest)
        except FileExistsError:
            return fail(f"{dest.name} appeared during OCR; left as it was")
        except OSError:  # a file system without hard links
            os.rename(tmp, dest)
        fsync_dir(dest.parent)
        return OcrResult(job.key, dest, True, text, None, time.perf_counter() - t0, options, tilt)
    except Exception as e:  # noqa: BLE001 - one bad document never stops the others
        return fail(f"{type(e).__name__}: {e}")
    finally:
        tmp.unlink(missing_ok=True)


def plan(n_docs: int, cores: int | None = None) -> tuple[int, int]:
    """(documents at once, ocrmypdf --jobs each) for n_docs documents on `cores` cores."""
    cores = max(1, cores or os.cpu_count() or 1)
    at_once = max(1, min(n_docs, cores))
    return at_once, max(1, cores // at_once)


def run_ocr(jobs: list[OcrJob], *, cores: int | None = None,
            on_done: Callable[[OcrResult], None] | None = None, options: list[str] | None = None,
            page_seconds: float | None = None) -> list[OcrResult]:
    """OCR every job, in parallel over documents and pages; results in job order. `on_done` is called from the
    calling thread as each document finishes, for progress. `options`, if given, is used for every document
    instead of choosing ocr_options(deskew=…) by each scan's measured skew (for benchmarks). A document taking
    longer than `page_seconds` (default TIMEOUT_PER_PAGE) × (its pages + 1) is stopped and fails."""
    if not jobs:
        return []
    ocr_tools()  # the tools must be there: UsageError otherwise, before any work
    at_once, per = plan(len(jobs), cores)
    results: list[OcrResult | None] = [None] * len(jobs)
    pool = ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="ocr")
    try:
        opts = None if options is None else list(options)
        secs = TIMEOUT_PER_PAGE if page_seconds is None else float(page_seconds)
        futures = {pool.submit(_run_one, job, per, opts, secs): i for i, job in enumerate(jobs)}
        for fut in as_completed(futures):
            i = futures[fut]
            results[i] = res = fut.result()
            if on_done:
                on_done(res)
    except BaseException:  # interrupted (Ctrl-C) or on_done raised: stop the running OCR, start no more
        pool.shutdown(wait=False, cancel_futures=True)
        with _LOCK:
            for p in list(_LIVE):
                _kill(p)
        raise
    pool.shutdown()
    return results  # type: ignore[return-value]
