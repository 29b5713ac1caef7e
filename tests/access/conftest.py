"""An ingested repository whose records cover every access class, and users of every kind (module scope: one
ingest for many tests). The classes are set in the batch's own tailieu.csv / hoso.csv before ingest."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from preserve.repository import Repository
from preserve.sip.profile import load_profile
from preserve.sip.sample import make_sample

# class name -> (dossier mode, document mode, document secrecy); one dossier of one document each
CLASSES = {
    "open": ("01", "", ""),
    "conditional": ("02", "", ""),
    "secret-mode": ("03", "", ""),
    "secret-mat": ("01", "", "Mật"),
    "secret-toimat": ("01", "01", "Tối mật"),
}
PASSWORD = "mat-khau-du-dai-1"


def _set(path: Path, sheet: str, row: int, **values: str) -> None:
    """Set fields (by profile key) of one data row of a csv sheet, whether its header uses keys or labels."""
    fields = {f.key: f for f in load_profile().sheets[sheet].fields}
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    for key, value in values.items():
        col = next(i for i, h in enumerate(header) if h in (key, fields[key].label))
        rows[row + 1][col] = value
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(repo, {class: docCode}, {class: fileCode}, fonds code) with users: reader, granted, other, archivist,
    archivist2, admin, auditor, disabled."""
    tmp = tmp_path_factory.mktemp("access")
    info = make_sample(tmp / "lo", dossiers=len(CLASSES), docs=1, seed=4, form="csv", checksums=False, pages=(2, 2))
    for i, (dmode, mode, secrecy) in enumerate(CLASSES.values()):
        _set(tmp / "lo" / "hoso.csv", "HoSo", i, mode=dmode)
        _set(tmp / "lo" / "tailieu.csv", "TaiLieu", i, mode=mode, secrecy=secrecy)
    repo = Repository.init(tmp / "repo", "Lưu trữ lịch sử Tỉnh ủy (test)", offsite=False)
    result = repo.ingest(tmp / "lo")
    assert len(result.aips) == len(CLASSES), result
    fonds = repo.show_aip(result.aips[0]["id"])["dossier"]["fondsCode"]
    users = repo.users()
    users.add("reader", "reader", full_name="Nguyễn Thị Hòa", password=PASSWORD)
    users.add("granted", "reader", full_name="Trần Văn Bình", fonds=[fonds])
    users.add("other", "reader", fonds=["KHAC"])
    users.add("archivist", "archivist", full_name="Lê Thị Lan")
    users.add("archivist2", "archivist")
    users.add("admin", "admin")
    users.add("auditor", "auditor")
    users.add("disabled", "reader", fonds=[fonds])
    users.set_disabled("disabled", True)
    docs = dict(zip(CLASSES, info.doc_codes))
    dossiers = dict(zip(CLASSES, info.file_codes))
    yield repo, docs, dossiers, fonds
    repo.close()
