"""The metadata profile (metadata_schemas/*.yaml): fields, Vietnamese labels, code lists and rules, as data."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "metadata_schemas"
DEFAULT_PROFILE = "vn-party-archive"


def fold(text: str) -> str:
    """Fold text for matching: no diacritics (đ→d), lower case, letters and digits only."""
    text = unicodedata.normalize("NFD", str(text)).replace("đ", "d").replace("Đ", "D")
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^0-9a-z]", "", text.lower())


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    required: bool = False
    kind: str = "text"  # text | id | int | date
    codes: str | None = None  # name of a code list


@dataclass(frozen=True)
class Sheet:
    name: str
    csv: str
    fields: tuple[Field, ...]

    def field(self, key: str) -> Field:
        for f in self.fields:
            if f.key == key:
                return f
        raise KeyError(key)

    def match_header(self, header: str) -> Field | None:
        """The field a column header names: its key or its Vietnamese label, without case or diacritics."""
        h = fold(header)
        if not h:
            return None
        for f in self.fields:
            if h == fold(f.key) or h == fold(f.label):
                return f
        return None


class Profile:
    def __init__(self, data: dict):
        self.name: str = data["profile"]
        self.version = data.get("version", 1)
        self.sheets: dict[str, Sheet] = {
            name: Sheet(name, s["csv"], tuple(Field(**f) for f in s["fields"])) for name, s in data["sheets"].items()
        }
        self.code_lists: dict[str, dict[str, str]] = {k: {str(c): t for c, t in v.items()} for k, v in data["codes"].items()}
        self.rules: dict = data["rules"]

    @property
    def dossier(self) -> Sheet:
        return self.sheets["HoSo"]

    @property
    def document(self) -> Sheet:
        return self.sheets["TaiLieu"]

    def resolve_code(self, list_name: str, value: str) -> str | None:
        """The code for a value that holds either the code ("01", "1") or its text ("Vĩnh viễn"); None if unknown."""
        table = self.code_lists[list_name]
        v = str(value).strip()
        if v in table:
            return v
        if v.isdigit() and v.zfill(2) in table:
            return v.zfill(2)
        fv = fold(v)
        for code, text in table.items():
            if fv == fold(text):
                return code
        # "01 - Vĩnh viễn" / "01. Vĩnh viễn"
        m = re.match(r"^(\d{1,2})\s*[-.:)]?\s*(.+)$", v)
        if m and m.group(1).zfill(2) in table and fold(m.group(2)) == fold(table[m.group(1).zfill(2)]):
            return m.group(1).zfill(2)
        return None

    def code_text(self, list_name: str, code: str | None) -> str:
        return self.code_lists[list_name].get(code or "", "")

    def allowed(self, list_name: str) -> str:
        return ", ".join(f"{c} {t}" for c, t in self.code_lists[list_name].items())


@lru_cache(maxsize=4)
def load_profile(name: str = DEFAULT_PROFILE) -> Profile:
    path = SCHEMA_DIR / f"{name}.yaml"
    return Profile(yaml.safe_load(path.read_text(encoding="utf-8")))
