"""An ingested repository whose records cover every access class, and users of every kind (module scope: one
ingest for many tests). The classes are set in the batch's own tailieu.csv / hoso.csv before ingest."""

from __future__ import annotations


import pytest

from preserve.repository import Repository
from preserve.sip.sample import edit_csv, make_sample

# class name -> (dossier mode, document mode, document secrecy); one dossier of one document each
CLASSES = {
    "open": ("01", "", ""),
    "conditional": ("02", "", ""),
    "secret-mode": ("03", "", ""),
    "secret-mat": ("01", "", "Mật"),
    "secret-toimat": ("01", "01", "Tối mật"),
}
PASSWORD = "mat-khau-du-dai-1"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(repo, {class: docCode}, {class: fileCode}, fonds code) with users: reader, granted, other, archivist,
    archivist2, admin, auditor, disabled."""
    tmp = tmp_path_factory.mktemp("access")
    info = make_sample(tmp / "lo", dossiers=len(CLASSES), docs=1, seed=4, form="csv", checksums=False, pages=(2, 2))
    for i, (dmode, mode, secrecy) in enumerate(CLASSES.values()):
        edit_csv(tmp / "lo" / "hoso.csv", "HoSo", {i: {"mode": dmode}})
        edit_csv(tmp / "lo" / "tailieu.csv", "TaiLieu", {i: {"mode": mode, "secrecy": secrecy}})
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
