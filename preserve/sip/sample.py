"""Realistic sample scan batches (SIPs) for tests, demos and benchmarks; the same seed gives the same bytes.

A batch is a folder: a workbook (mucluc.xlsx with sheets HoSo and TaiLieu, or hoso.csv + tailieu.csv), one PDF
per document under scans/<fileCode>/<docCode>.pdf (A4 page images at 200 dpi, JPEG in the PDF, Vietnamese Party
document layout drawn with DejaVu fonts) and checksums.sha256. `defects` inject named problems (see DEFECTS);
each names the finding codes a validator must raise for it. Doc-level defects take distinct documents in order
(first dossier first) and start again at the first document when all are taken, so make at least as many
documents as doc-level defects when combining many. Batch-level defects (no-workbook, bad-workbook, symlink,
unicode-collision) may stop a validator before it reaches the others.
"""

from __future__ import annotations

import calendar
import copy
import csv
import hashlib
import io
import math
import os
import random
import re
import shutil
import stat
import time
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import bagit
import pikepdf
import yaml
from openpyxl import Workbook
from openpyxl.styles import Font
from PIL import Image, ImageDraw, ImageFont

from preserve.errors import UsageError
from preserve.sip.profile import load_profile

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FIXED_TIME = (2025, 1, 1, 0, 0, 0)  # every timestamp written into a sample (PDF info, xlsx, zip entries)
DPI, JPEG_QUALITY = 200, 70
INK, RED, BLUE = (30, 30, 36), (196, 44, 44), (32, 52, 140)
DATE_FORMS = ("dmy", "iso", "my", "y")  # dd/mm/yyyy, yyyy-mm-dd, mm/yyyy, yyyy


class DefectSpec(NamedTuple):
    description: str
    codes: frozenset[str]  # finding codes the defect must raise
    also: frozenset[str] = frozenset()  # codes that may also appear as a side effect


@dataclass
class SampleInfo:
    root: Path
    file_codes: list[str]
    doc_codes: list[str]
    defects: list[str]
    expected_codes: set[str]
    form: str = "xlsx"
    pages: dict[str, int] = field(default_factory=dict)  # docCode -> pages in its scan
    targets: dict[str, str] = field(default_factory=dict)  # defect -> the path or code it touched


@lru_cache(maxsize=1)
def text_bank() -> dict:
    return yaml.safe_load(resources.files("preserve").joinpath("data/sample_text.yaml").read_text(encoding="utf-8"))


@lru_cache(maxsize=64)
def _font(name: str, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / f"{name}.ttf"), px)


# --- the model: dossiers and documents, codes computed when the batch is finalised -----------------------


@dataclass
class _Dossier:
    row: dict[str, Any]
    docs: list["_Doc"] = field(default_factory=list)
    code_override: str | None = None
    doc_offset: int = 0
    page_offset: int = 0
    used: set[str] = field(default_factory=set)
    code: str = ""


@dataclass
class _Doc:
    row: dict[str, Any]
    ordinal: int
    pages: int
    spec: dict[str, Any]  # what the page images show
    dossier: _Dossier | None
    orphan_code: str = ""  # fileCode of a document whose dossier is not in HoSo
    shift: int = 0  # docCode ordinal = ordinal + shift
    name: str | None = None  # file stem, if not the docCode
    subdir: str = ""
    ext: str = ".pdf"
    kind: str = "pdf"  # pdf | jpg | png
    dpi: int = DPI
    mode: str = "RGB"
    stated: Any = None  # numberOfPage in the sheet, if not `pages`
    code: str = ""
    file: str = ""


@dataclass
class _Batch:
    root: Path
    seed: int
    form: str
    dossiers: list[_Dossier]
    orphans: list[_Doc] = field(default_factory=list)
    taken: list[int] = field(default_factory=list)  # id() of documents a defect has taken
    post: list[Callable[[], None]] = field(default_factory=list)  # run after the scans are written
    extra_column: tuple[str, str] | None = None  # (sheet, header)
    drop_column: tuple[str, str] | None = None  # (sheet, field key)
    workbook: str = "ok"  # ok | none | garbage
    bad_sum: _Doc | None = None

    def docs(self) -> list[_Doc]:
        return [d for s in self.dossiers for d in s.docs] + self.orphans

    def take_doc(self) -> _Doc:
        docs = [d for s in self.dossiers for d in s.docs]
        free = sorted((d for d in docs if id(d) not in self.taken), key=lambda d: "malformed" in d.dossier.used)
        doc = free[0] if free else docs[len(self.taken) % len(docs)]
        self.taken.append(id(doc))
        return doc

    def take_dossier(self, *fields: str) -> _Dossier:
        s = next((s for s in self.dossiers if fields[0] not in s.used), self.dossiers[0])
        s.used.update(fields)
        return s


def _fmt_date(d: date, form: str) -> str:
    return {"dmy": f"{d.day:02d}/{d.month:02d}/{d.year}", "iso": d.isoformat(), "my": f"{d.month:02d}/{d.year}",
            "y": str(d.year)}[form]


def _floor(d: date, form: str) -> date:
    return {"my": d.replace(day=1), "y": date(d.year, 1, 1)}.get(form, d)


def _build(root: Path, dossiers: int, docs: int, seed: int, form: str, pages: tuple[int, int]) -> _Batch:
    bank, rng = text_bank(), random.Random(seed)
    fonds = bank["fonds"]
    base = rng.randint(10, 300)
    maint = ["01", "Vĩnh viễn", "01 - Vĩnh viễn"]
    modes = ["01", "Sử dụng có điều kiện", "03", "Công khai", "02"]
    out = []
    for i in range(dossiers):
        year = rng.randint(1955, 1965)
        f_start, f_end = DATE_FORMS[(seed + i) % 4], DATE_FORMS[(seed + i + 1) % 4]
        start = date(year, rng.randint(1, 6), rng.randint(1, 28))
        end = date(year + (1 if f_end == "y" else rng.randint(0, 1)), rng.randint(7, 12), rng.randint(1, 28))
        last = _floor(end, f_end)  # documents lie within [start, floor(end)]: safe however partial dates are read
        noun = rng.choice(bank["topics"])
        types = rng.sample(bank["types"], min(docs, 3)) if docs else []
        dates = sorted(start + timedelta(days=rng.randint(0, (last - start).days)) for _ in range(docs))
        names = [t["name"] for t in types]
        tmpl = rng.choice(bank["dossier_titles"])
        span = str(year) if last.year == year else f"{year}-{last.year}"
        title = tmpl.format(types=", ".join([names[0]] + [n.lower() for n in names[1:]]) if names else "Tài liệu",
                            types_lower=", ".join(n.lower() for n in names) or "tài liệu", noun=noun, year=span)
        row = {"fondsCode": fonds["code"], "fondsName": fonds["name"], "catalogNo": fonds["catalog"],
               "fileNo": str(base + i), "boxNo": str((base + i) // 10 + 1), "title": title,
               "maintenance": maint[(seed + i) % 3], "mode": modes[(seed + i) % len(modes)], "language": "Tiếng Việt",
               "startDate": _fmt_date(start, f_start), "endDate": _fmt_date(end, f_end),
               "format": rng.choice(["01", "Tốt"]), "keyword": ", ".join(rng.sample(bank["keywords"], 2)),
               "inforSign": "", "description": rng.choice(["", "Hồ sơ đã được chỉnh lý hoàn chỉnh"])}
        dossier = _Dossier(row)
        for j in range(docs):
            t, organ, issued = rng.choice(types), rng.choice(bank["organs"]), dates[j]
            subject = rng.choice(bank["subjects"]).format(noun=noun, year=issued.year, year1=issued.year + 1,
                                                          q=rng.randint(1, 4))
            signer, number = rng.choice(bank["signers"]), str(rng.randint(1, 150))
            n = rng.randint(*pages)
            drow = {"docOrdinal": j + 1, "typeName": t["name"] if rng.random() < 0.7 else t["code"],
                    "codeNumber": number, "codeNotation": f"{t['abbr']}/{organ['suffix']}",
                    "issuedDate": _fmt_date(issued, rng.choice(["dmy", "dmy", "iso"])), "organName": organ["name"],
                    "subject": subject, "language": "Tiếng Việt", "signer": signer, "secrecy": "",
                    "mode": rng.choice(["", row["mode"]]), "autograph": "", "keyword": row["keyword"],
                    "description": ""}
            spec = {"seed": rng.getrandbits(32), "organ": organ, "type": t["name"], "number": number,
                    "notation": drow["codeNotation"], "date": issued, "subject": subject, "signer": signer,
                    "noun": noun, "paper": (rng.randint(243, 249), rng.randint(238, 244), rng.randint(220, 230)),
                    "body_font": rng.choice(["DejaVuSerif", "DejaVuSerif", "DejaVuSansMono"])}
            dossier.docs.append(_Doc(drow, j + 1, n, spec, dossier))
        out.append(dossier)
    return _Batch(root, seed, form, out)


def _finalise(b: _Batch) -> None:
    for s in b.dossiers:
        s.code = s.code_override or ".".join(str(s.row[k]) for k in ("fondsCode", "catalogNo", "fileNo"))
        s.row["fileCode"] = s.code
        s.row["totalDoc"] = len(s.docs) + s.doc_offset
        stated = [d.stated if isinstance(d.stated, int) else d.pages for d in s.docs]
        s.row["numberOfPage"] = sum(stated) + s.page_offset
        s.row["numberOfPaper"] = sum((p + 1) // 2 for p in stated)
    for d in b.docs():
        fc = d.dossier.code if d.dossier else d.orphan_code
        d.code = f"{fc}.{d.ordinal + d.shift:03d}"
        d.file = f"scans/{fc}/{d.subdir}{d.name or d.code}{d.ext}"
        d.row.update(docCode=d.code, fileCode=fc, numberOfPage=d.pages if d.stated is None else d.stated, file=d.file)


# --- page images ---------------------------------------------------------------------------------------


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float, indent: float = 0) -> list[str]:
    lines, cur = [], ""
    for w in text.split():
        t = f"{cur} {w}" if cur else w
        if not cur or font.getlength(t) <= width - (indent if not lines else 0):
            cur = t
        else:
            lines.append(cur)
            cur = w
    return lines + [cur] if cur else lines


def _viet_date(d: date) -> str:
    month = f"{d.month:02d}" if d.month < 3 else str(d.month)  # NĐ 30/2020: 0 before days < 10, months 1 and 2
    return f"ngày {d.day:02d} tháng {month} năm {d.year}"


def render_pages(spec: dict[str, Any], pages: int, dpi: int = DPI, mode: str = "RGB") -> list[Image.Image]:
    """Draw the pages of one document: Party document layout, Vietnamese text, A4 at `dpi`."""
    bank, rng = text_bank(), random.Random(spec["seed"])
    mm, pt = dpi / 25.4, dpi / 72
    W, H = round(210 * mm), round(297 * mm)
    left, right, top, bottom = 30 * mm, W - 15 * mm, 20 * mm, H - 20 * mm
    body, bold = _font(spec["body_font"], round(13 * pt)), _font("DejaVuSerif-Bold", round(13 * pt))
    lh = round(13 * pt * 1.45)
    fill = {"noun": spec["noun"], "year": spec["date"].year, "year1": spec["date"].year + 1, "q": rng.randint(1, 4)}

    paras = bank["paragraphs"][rng.randrange(len(bank["paragraphs"])):] + bank["paragraphs"]

    def stream():  # body lines, forever: (text, font, x offset, ends a paragraph)
        k = 0
        for heading in bank["headings"] * 100:
            yield "", body, 0, True
            yield heading, bold, 0, False
            for _ in range(rng.randint(1, 3)):
                wrapped = _wrap(paras[k % len(paras)].format(**fill), body, right - left, 10 * mm)
                for j, line in enumerate(wrapped):
                    yield line, body, (10 * mm if j == 0 else 0), j == len(wrapped) - 1
                k += 1

    lines, out = stream(), []
    for i in range(pages):
        img = Image.new("RGB", (W, H), spec["paper"])
        d = ImageDraw.Draw(img)
        for _ in range(rng.randint(2, 5)):  # foxing: faint stains on old paper
            x, y, r = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(5, 25) * mm
            stain = tuple(c - rng.randint(4, 10) for c in spec["paper"])
            d.ellipse((x - r, y - r * 0.7, x + r, y + r * 0.7), fill=stain)
        y = _header(d, spec, W, mm, pt, left, right, top) if i == 0 else top + lh
        if i:
            d.text((W / 2, top), str(i + 1), font=_font("DejaVuSerif", round(12 * pt)), fill=INK, anchor="ma")
        last = i == pages - 1
        budget, limit, done = (rng.randint(3, 8) if last else 10**6), bottom - (80 * mm if last else 0), False
        while not (done and budget <= 0) and y + lh <= limit:  # the last page ends with a whole paragraph
            text, font, dx, done = next(lines)
            d.text((left + dx, y), text, font=font, fill=INK)
            y, budget = y + lh, budget - 1
        if last:
            _signature(d, spec, y + lh, mm, pt, left, right)
        out.append(img if mode == "RGB" else img.convert(mode))
    return out


def _header(d: ImageDraw.ImageDraw, spec: dict, W: int, mm: float, pt: float, left: float, right: float,
            top: float) -> float:
    hb, hr = _font("DejaVuSerif-Bold", round(12 * pt)), _font("DejaVuSerif", round(12 * pt))
    hi, lh = _font("DejaVuSerif-Italic", round(12 * pt)), round(12 * pt * 1.4)
    y, lx = top, left + 36 * mm
    for line in spec["organ"]["header"] + ["*", f"Số {spec['number']}-{spec['notation']}"]:
        d.text((lx, y), line, font=hb if line.isupper() else hr, fill=INK, anchor="ma")
        y += lh
    party, when = "ĐẢNG CỘNG SẢN VIỆT NAM", f"{text_bank()['fonds']['place']}, {_viet_date(spec['date'])}"
    rx = right - max(hb.getlength(party), hi.getlength(when)) / 2
    d.text((rx, top), party, font=hb, fill=INK, anchor="ma")
    w = hb.getlength(party) / 2
    d.line((rx - w, top + lh * 0.95, rx + w, top + lh * 0.95), fill=INK, width=max(1, round(pt)))
    d.text((rx, top + lh * 1.7), when, font=hi, fill=INK, anchor="ma")
    cx, y = (left + right) / 2, max(y, top + 3 * lh) + lh
    d.text((cx, y), spec["type"].upper(), font=_font("DejaVuSerif-Bold", round(15 * pt)), fill=INK, anchor="ma")
    y += round(15 * pt * 1.5)
    sub = _font("DejaVuSerif-Bold", round(13 * pt))
    for line in _wrap(spec["subject"], sub, 140 * mm):
        d.text((cx, y), line, font=sub, fill=INK, anchor="ma")
        y += round(13 * pt * 1.4)
    d.line((cx - 15 * mm, y + 2 * mm, cx + 15 * mm, y + 2 * mm), fill=INK, width=max(1, round(pt)))
    return y + 8 * mm


def _signature(d: ImageDraw.ImageDraw, spec: dict, y: float, mm: float, pt: float, left: float,
               right: float) -> None:
    small, smallb = _font("DejaVuSerif", round(10 * pt)), _font("DejaVuSerif-BoldItalic", round(11 * pt))
    d.text((left, y), "Nơi nhận:", font=smallb, fill=INK)
    for k, r in enumerate(text_bank()["recipients"]):
        d.text((left, y + (k + 1) * 11 * pt * 1.3), f"- {r}{'.' if k == 5 else ','}", font=small, fill=INK)
    cx, sb, lh = right - 42 * mm, _font("DejaVuSerif-Bold", round(13 * pt)), round(13 * pt * 1.4)
    for k, line in enumerate(spec["organ"]["sign"]):
        d.text((cx, y + k * lh), line, font=sb, fill=INK, anchor="ma")
    sy = y + len(spec["organ"]["sign"]) * lh + 14 * mm
    phase = random.Random(spec["seed"]).uniform(0, 3)
    sx = cx - 14 * mm
    for r in (17 * mm, 12 * mm):  # the red seal, a star at its centre
        d.ellipse((sx - r, sy - r, sx + r, sy + r), outline=RED, width=round(1.2 * pt))
    d.text((sx, sy), "★", font=_font("DejaVuSans", round(22 * pt)), fill=RED, anchor="mm")
    pts = [(cx - 10 * mm + t * mm / 2, sy + 3 * mm * math.sin(t / 3 + phase) - t * mm / 8) for t in range(70)]
    d.line(pts, fill=BLUE, width=round(1.2 * pt), joint="curve")
    d.text((cx, sy + 20 * mm), spec["signer"], font=sb, fill=INK, anchor="ma")


def _write_scan(path: Path, doc: _Doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    imgs = render_pages(doc.spec, doc.pages, doc.dpi, doc.mode)
    if doc.kind == "jpg":
        imgs[0].save(path, "JPEG", quality=JPEG_QUALITY, dpi=(doc.dpi, doc.dpi))
    elif doc.kind == "png":
        imgs[0].save(path, "PNG", dpi=(doc.dpi, doc.dpi))
    else:
        fixed = time.gmtime(calendar.timegm(FIXED_TIME))
        imgs[0].save(path, "PDF", resolution=doc.dpi, save_all=True, append_images=imgs[1:], quality=JPEG_QUALITY,
                     title=doc.code, producer="preserve sample", creationDate=fixed, modDate=fixed)


# --- workbook and checksums ----------------------------------------------------------------------------


def _sheet_rows(b: _Batch, sheet: str, labels: bool) -> tuple[list[str], list[list[Any]]]:
    prof = load_profile().sheets[sheet]
    fields = [f for f in prof.fields if b.drop_column != (sheet, f.key)]
    header = [f.label if labels else f.key for f in fields]
    rows = [s.row for s in b.dossiers] if sheet == "HoSo" else [d.row for d in b.docs()]
    body = [[r.get(f.key, "") for f in fields] for r in rows]
    if b.extra_column and b.extra_column[0] == sheet:
        header.append(b.extra_column[1])
        body = [r + ["Đã kiểm tra"] for r in body]
    return header, body


def _write_workbook(b: _Batch) -> None:
    labels = {"HoSo": b.seed % 2 == 1, "TaiLieu": b.seed % 2 == 0}  # labels on one sheet, keys on the other
    if b.workbook == "none":
        return
    if b.workbook == "garbage":
        junk = b"\xff\xfe\xfa" + random.Random(f"{b.seed}:wb").randbytes(2048)
        (b.root / ("mucluc.xlsx" if b.form == "xlsx" else "hoso.csv")).write_bytes(junk)
        if b.form == "csv":
            _write_csv(b.root / "tailieu.csv", *_sheet_rows(b, "TaiLieu", labels["TaiLieu"]))
        return
    if b.form == "csv":
        for sheet in ("HoSo", "TaiLieu"):
            _write_csv(b.root / load_profile().sheets[sheet].csv, *_sheet_rows(b, sheet, labels[sheet]))
        return
    wb = Workbook()
    wb.remove(wb.active)
    for sheet in ("HoSo", "TaiLieu"):
        header, body = _sheet_rows(b, sheet, labels[sheet])
        ws = wb.create_sheet(sheet)
        ws.append(header)
        for row in body:
            ws.append([v if isinstance(v, int) else (None if v in ("", None) else str(v)) for v in row])
        for cell in ws[1]:
            cell.font = Font(bold=True)
            ws.column_dimensions[cell.column_letter].width = 18
        ws.freeze_panes = "A2"
    wb.properties.creator = "preserve sample"
    buf = io.BytesIO()
    wb.save(buf)
    (b.root / "mucluc.xlsx").write_bytes(_fixed_zip(buf.getvalue()))


def _write_csv(path: Path, header: list[str], body: list[list[Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(["" if v is None else v for v in r] for r in body)


def _fixed_zip(data: bytes) -> bytes:
    """Repack an xlsx with fixed timestamps (openpyxl stamps the time of saving into entries and core.xml)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "docProps/core.xml":
                body = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rb"\g<1>2025-01-01T00:00:00Z", body)
            zi = zipfile.ZipInfo(info.filename, FIXED_TIME)
            zi.compress_type, zi.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            dst.writestr(zi, body)
    return out.getvalue()


def _write_checksums(b: _Batch) -> None:
    lines = []
    for p in sorted(b.root.rglob("*"), key=lambda p: p.relative_to(b.root).as_posix()):
        rel = p.relative_to(b.root).as_posix()
        if p.is_symlink() or not p.is_file() or rel == "checksums.sha256":
            continue
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        if b.bad_sum is not None and rel == b.bad_sum.file:
            digest = hashlib.sha256(b"sai" + digest.encode()).hexdigest()
        lines.append(f"{digest}  {rel}\n")
    (b.root / "checksums.sha256").write_text("".join(lines), encoding="utf-8")


# --- defects ---------------------------------------------------------------------------------------------
# Each defect changes the model before the files are written (or queues work for after) and returns what it
# touched: a document, a dossier, or a path. Registered in the order they are applied.

DEFECTS: dict[str, DefectSpec] = {}
_APPLY: dict[str, Callable[[_Batch, random.Random], Any]] = {}


def _defect(name: str, description: str, codes: str, also: str = "", apply: Callable | None = None):
    DEFECTS[name] = DefectSpec(description, frozenset(codes.split()), frozenset(also.split()) - set(codes.split()))
    _APPLY[name] = apply


def _set(target: Any, **attrs: Any) -> Any:
    for k, v in attrs.items():
        setattr(target, k, v)
    return target


def _row(target: Any, **values: Any) -> Any:
    target.row.update(values)
    return target


def _later(b: _Batch, target: Any, fn: Callable[[], None]) -> Any:
    b.post.append(fn)
    return target


def _put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _extra_file(b: _Batch, rng: random.Random) -> Callable[[], str]:
    s = b.dossiers[0]
    path = lambda: f"scans/{s.code}/{s.code}.099.pdf"  # noqa: E731 - the code is known only when finalised
    _later(b, None, lambda: _write_scan(b.root / path(), _Doc({}, 99, 1, s.docs[0].spec, s)))
    return path


def _duplicate_doc(b: _Batch, rng: random.Random) -> _Doc:
    d = b.take_doc()
    twin = _set(copy.copy(d), row=dict(d.row), subdir="bosung/")
    d.dossier.docs.insert(d.dossier.docs.index(d) + 1, twin)
    b.taken.append(id(twin))
    return twin


def _unknown_dossier(b: _Batch, rng: random.Random) -> _Doc:
    src = b.dossiers[0].docs[0]
    row = dict(src.row, docOrdinal=1, secrecy="", issuedDate=_fmt_date(src.spec["date"], "dmy"))
    doc = _Doc(row, 1, 1, src.spec, None, orphan_code=f"{text_bank()['fonds']['code']}.1.999")
    b.orphans.append(doc)
    return doc


def _date_order(b: _Batch, rng: random.Random) -> _Dossier:
    s = b.take_dossier("dates")
    first = min(d.spec["date"] for d in s.docs)
    return _row(s, startDate=_fmt_date(first, "dmy"), endDate=_fmt_date(date(first.year - 2, 5, 19), "dmy"))


def _encrypt(path: Path) -> None:
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(path.read_bytes())) as pdf:  # RC4 and a static id: the same bytes every time
        enc = pikepdf.Encryption(user="matkhau", owner="chuso", R=4, aes=False, metadata=False)
        pdf.save(out, encryption=enc, static_id=True)
    path.write_bytes(out.getvalue())


def _damage(path: Path, rng: random.Random) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + rng.randbytes(512))


def _unicode_collision(b: _Batch, rng: random.Random) -> str:
    for form in ("NFC", "NFD"):
        name = unicodedata.normalize(form, "notes/Hải Dương.txt")
        _later(b, None, lambda name=name, form=form: _put(b.root / name, f"{form}\n".encode()))
    return "notes/Hải Dương.txt"


_XXE = ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE ghichu [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        "<ghichu>&xxe;</ghichu>\n")
_SCAN_ALSO = "E-SCAN-UNREADABLE E-SCAN-FORMAT E-COUNT-PAGES-DOC W-SCAN-NO-IMAGE"

# identifiers first: doc-level defects then avoid a malformed dossier, whose documents' codes go unchecked
_defect("bad-filecode", "a fileCode with catalogNo + 1, not fondsCode.catalogNo.fileNo; its documents use it",
        "E-ID-FILECODE-PARTS", apply=lambda b, r: _set(s := b.take_dossier("fileCode"), code_override=".".join(
            [s.row["fondsCode"], str(int(s.row["catalogNo"]) + 1), s.row["fileNo"]])))
_defect("malformed-id", "a fondsCode with a space (TU HD) and the fileCode and docCodes built from it",
        "E-ID-MALFORMED", "E-ID-FILECODE-PARTS E-ID-DOCCODE-PARTS E-FILE-NAME",
        apply=lambda b, r: _row(s := b.take_dossier("fileCode", "malformed"),
                                fondsCode=s.row["fondsCode"].replace("-", " ")))
_defect("missing-file", "a scan that a document row names is deleted", "E-FILE-MISSING",
        apply=lambda b, r: _later(b, d := b.take_doc(), lambda: (b.root / d.file).unlink()))
_defect("extra-file", "an extra PDF named like a document of the first dossier, <fileCode>.099.pdf, in no row",
        "E-FILE-UNREFERENCED", apply=_extra_file)
_defect("stray-file", "notes/ghichu.txt, a file of no dossier", "W-FILE-STRAY",
        apply=lambda b, r: _later(b, "notes/ghichu.txt", lambda: _put(
            b.root / "notes/ghichu.txt", text_bank()["stray_note"].encode() + b"\n")))
_defect("bad-filename", "a scan (and its file column) named tai-lieu-NN.pdf, not after its docCode", "E-FILE-NAME",
        apply=lambda b, r: _set(d := b.take_doc(), name=f"tai-lieu-{d.ordinal:02d}"))
_defect("bad-extension", "a scan saved as a one-page .jpg and named so in the sheet", "E-FILE-EXTENSION", _SCAN_ALSO,
        apply=lambda b, r: _set(b.take_doc(), kind="jpg", ext=".jpg", pages=1))
_defect("required-empty", "a dossier's title is empty", "E-FIELD-REQUIRED",
        apply=lambda b, r: _row(b.take_dossier("title"), title=""))
_defect("bad-code", "a dossier's mode is 99, not in the code list", "E-FIELD-CODE",
        apply=lambda b, r: _row(b.take_dossier("mode"), mode="99"))
_defect("bad-date", "a document's issuedDate does not exist (31/02/yyyy) or is malformed (yyyy-13-01)",
        "E-FIELD-DATE", "W-FIELD-DATE-RANGE", apply=lambda b, r: _row(
            d := b.take_doc(), issuedDate=r.choice(["31/02/{}", "{}-13-01"]).format(d.spec["date"].year)))
_defect("date-order", "a dossier's endDate is two years before its startDate", "E-FIELD-DATE-ORDER",
        "W-FIELD-DATE-RANGE", apply=_date_order)
_defect("bad-number", "a document's numberOfPage is a word (mười)", "E-FIELD-NUMBER",
        "E-COUNT-PAGES-DOC E-COUNT-PAGES-DOSSIER", apply=lambda b, r: _set(b.take_doc(), stated="mười"))
_defect("not-permanent", "a dossier's retention is 70 years (02 or '70 năm'), not permanent", "E-RULE-NOT-PERMANENT",
        apply=lambda b, r: _row(b.take_dossier("maintenance"), maintenance=r.choice(["02", "70 năm"])))
_defect("tuyet-mat", "a document is Tuyệt mật", "E-RULE-TUYET-MAT",
        apply=lambda b, r: _row(b.take_doc(), secrecy="Tuyệt mật"))
_defect("secret", "a document is Mật (its digitisation needs approval)", "W-RULE-SECRET-APPROVAL",
        apply=lambda b, r: _row(b.take_doc(), secrecy="Mật"))
_defect("bad-doccode", "a docCode with ordinal + 500, not its docOrdinal; its file is named after it",
        "E-ID-DOCCODE-PARTS", apply=lambda b, r: _set(b.take_doc(), shift=500))
_defect("duplicate-doc", "two document rows with the same docCode (the second file under bosung/; totals agree)",
        "E-ID-DUPLICATE", "E-FILE-SHARED E-COUNT-PAGES-DOSSIER", apply=_duplicate_doc)
_defect("unknown-dossier", "a document row (and its scan) whose fileCode <fonds>.1.999 is not in HoSo",
        "E-ID-DOSSIER-UNKNOWN", "W-FILE-STRAY E-FILE-UNREFERENCED", apply=_unknown_dossier)
_defect("totaldoc", "a dossier's totalDoc is one more than its document rows", "E-COUNT-TOTALDOC",
        apply=lambda b, r: _set(s := b.take_dossier("totalDoc"), doc_offset=s.doc_offset + 1))
_defect("page-count", "a document's numberOfPage is one more than its PDF's pages (the dossier total agrees)",
        "E-COUNT-PAGES-DOC", "E-COUNT-PAGES-DOSSIER", apply=lambda b, r: _set(d := b.take_doc(), stated=d.pages + 1))
_defect("dossier-pages", "a dossier's numberOfPage is two more than its documents' sum", "E-COUNT-PAGES-DOSSIER",
        apply=lambda b, r: _set(s := b.take_dossier("numberOfPage"), page_offset=s.page_offset + 2))
_defect("low-dpi", "a document scanned at 150 dpi (1240 x 1754 px A4, page size agrees)", "E-SCAN-DPI",
        apply=lambda b, r: _set(b.take_doc(), dpi=150))
_defect("grayscale", "a document scanned in greyscale (mode L)", "W-SCAN-NOT-COLOUR",
        apply=lambda b, r: _set(b.take_doc(), mode="L"))
_defect("encrypted", "a PDF encrypted with a user password", "E-SCAN-ENCRYPTED", _SCAN_ALSO,
        apply=lambda b, r: _later(b, d := b.take_doc(), lambda: _encrypt(b.root / d.file)))
_defect("damaged", "a PDF truncated to half its bytes plus 512 random bytes", "E-SCAN-UNREADABLE", _SCAN_ALSO,
        apply=lambda b, r: _later(b, d := b.take_doc(), lambda: _damage(b.root / d.file, r)))
_defect("not-pdf", "a file named .pdf whose content is a one-page PNG image", "E-SCAN-FORMAT", _SCAN_ALSO,
        apply=lambda b, r: _set(b.take_doc(), kind="png", pages=1))
_defect("checksum", "checksums.sha256 lists a wrong digest for one scan", "E-SUM-MISMATCH",
        apply=lambda b, r: _set(b, bad_sum=b.take_doc()).bad_sum)
_defect("unknown-column", "sheet HoSo has an extra column 'Cột lạ'", "W-WB-COLUMN-UNKNOWN",
        apply=lambda b, r: _set(b, extra_column=("HoSo", "Cột lạ")) and "HoSo: Cột lạ")
_defect("missing-column", "sheet HoSo has no title column (Tiêu đề hồ sơ)", "E-WB-COLUMN-MISSING",
        "E-FIELD-REQUIRED", apply=lambda b, r: _set(b, drop_column=("HoSo", "title")) and "HoSo: title")
_defect("no-workbook", "no workbook at all", "E-WB-MISSING", "W-FILE-STRAY E-FILE-UNREFERENCED",
        apply=lambda b, r: _set(b, workbook="none") and "workbook")
_defect("bad-workbook", "mucluc.xlsx is random bytes (in csv form: hoso.csv is not UTF-8)", "E-WB-UNREADABLE",
        "W-FILE-STRAY E-FILE-UNREFERENCED", apply=lambda b, r: _set(b, workbook="garbage") and "workbook")
_defect("xml-entity", "metadata/extra.xml declares a DOCTYPE with an external entity", "E-XML-ENTITY",
        "W-FILE-STRAY", apply=lambda b, r: _later(b, "metadata/extra.xml", lambda: _put(
            b.root / "metadata/extra.xml", _XXE.encode())))
_defect("unicode-collision", "notes/Hải Dương.txt twice, its name in NFC and in NFD", "E-PATH-COLLISION",
        "W-FILE-STRAY W-BAG-NORMALISATION", apply=_unicode_collision)
_defect("symlink", "lienket.txt, a symlink to /etc/passwd", "E-PATH-LINK", "W-FILE-STRAY E-PATH-UNSAFE",
        apply=lambda b, r: _later(b, "lienket.txt", lambda: os.symlink("/etc/passwd", b.root / "lienket.txt")))


def parse_defects(text: str | Sequence[str]) -> list[str]:
    """Defect names from 'a,b' or a list; UsageError for an unknown one."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in DEFECTS]
    if unknown:
        raise UsageError(f"unknown defect(s): {', '.join(unknown)}", hint=f"known: {', '.join(DEFECTS)}")
    return names


# --- the public API -------------------------------------------------------------------------------------


def edit_csv(path: Path, sheet: str, edits: dict[int, dict[str, str]]) -> list[dict[str, str]]:
    """Set fields (by profile key) of data rows (0 = the first) of a sample's csv sheet, whether its header uses
    keys or labels, to shape a batch (an access mode, a secrecy); returns every data row by key afterwards."""
    fields = load_profile().sheets[sheet].fields
    with Path(path).open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    cols = {fl.key: next(i for i, h in enumerate(header) if h in (fl.key, fl.label)) for fl in fields
            if any(h in (fl.key, fl.label) for h in header)}
    for row, values in edits.items():
        for key, value in values.items():
            rows[row + 1][cols[key]] = value
    with Path(path).open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return [{k: r[i] for k, i in cols.items()} for r in rows[1:]]


def make_sample(out: Path, dossiers: int = 2, docs: int = 3, seed: int = 1, defects: Sequence[str] = (),
                form: str = "xlsx", checksums: bool = True, pages: tuple[int, int] = (1, 3)) -> SampleInfo:
    """Write a sample scan batch to `out` (created; must not exist or be empty)."""
    out = Path(out)
    names = parse_defects(defects)
    if form not in ("xlsx", "csv"):
        raise UsageError(f"unknown workbook form {form!r}", hint="use xlsx or csv")
    if dossiers < 1 or docs < 1 or not 1 <= pages[0] <= pages[1]:
        raise UsageError("a sample needs at least one dossier, one document per dossier and one page per document")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty folder", hint="choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    b = _build(out, dossiers, docs, seed, form, tuple(pages))
    ordered = [n for n in DEFECTS if n in names]  # canonical order: the same bytes whatever order was asked
    touched = {n: _APPLY[n](b, random.Random(f"{seed}:{n}")) for n in ordered}
    _finalise(b)
    for d in b.docs():
        _write_scan(out / d.file, d)
    for fn in b.post:
        fn()
    _write_workbook(b)
    if checksums or "checksum" in ordered:
        _write_checksums(b)
    targets = {}
    for n, t in touched.items():
        t = t() if callable(t) else t
        targets[n] = t.file if isinstance(t, _Doc) else t.code if isinstance(t, _Dossier) else str(t)
    return SampleInfo(root=out, file_codes=[s.code for s in b.dossiers], doc_codes=[d.code for d in b.docs()],
                      defects=ordered, expected_codes=set().union(*(DEFECTS[n].codes for n in ordered)),
                      form=form, pages={d.code: d.pages for d in b.docs()}, targets=targets)


def zip_sample(root: Path, zip_path: Path) -> Path:
    """Zip a batch folder as officers do: one top-level folder; symlinks stay links; fixed timestamps."""
    root, zip_path = Path(root), Path(zip_path)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
            arc = f"{root.name}/{p.relative_to(root).as_posix()}"
            if p.is_symlink():
                zi = zipfile.ZipInfo(arc, FIXED_TIME)
                zi.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(zi, os.readlink(p))
            elif p.is_dir():
                zi = zipfile.ZipInfo(arc + "/", FIXED_TIME)
                zi.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                zf.writestr(zi, b"")
            else:
                zi = zipfile.ZipInfo(arc, FIXED_TIME)
                zi.compress_type, zi.external_attr = zipfile.ZIP_DEFLATED, (stat.S_IFREG | 0o644) << 16
                zf.writestr(zi, p.read_bytes())
    return zip_path


def bag_sample(root: Path, bag_dir: Path, bag_info: dict[str, str] | None = None) -> Path:
    """A BagIt bag (sha256 + sha512) at `bag_dir` whose payload (data/) is a copy of the batch `root`.

    Symlinks (the symlink defect) are put into data/ after bagging, unlisted: bagit refuses to bag them.
    """
    root, bag_dir = Path(root), Path(bag_dir)
    if bag_dir.exists() and any(bag_dir.iterdir()):
        raise UsageError(f"{bag_dir} exists and is not empty", hint="choose a new folder")
    links = [p for p in root.rglob("*") if p.is_symlink()]
    shutil.copytree(root, bag_dir, dirs_exist_ok=True, ignore=lambda d, names: [
        n for n in names if (Path(d) / n).is_symlink()])
    info = {"Source-Organization": "Tỉnh ủy Hải Dương", "External-Description": f"Lô số hóa mẫu {root.name}"}
    bagit.make_bag(str(bag_dir), bag_info={**info, **(bag_info or {})}, checksums=["sha256", "sha512"])
    for p in links:
        os.symlink(os.readlink(p), bag_dir / "data" / p.relative_to(root))
    return bag_dir
