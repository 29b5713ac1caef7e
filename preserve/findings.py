"""Findings and reports: every validator and audit returns these instead of raising.

A finding has a stable code (preserve/data/codes.yaml), a severity, a location (`where`), parameters, and a
message in Vietnamese and English rendered from the code's templates. `dossier` names the fileCode a finding
belongs to; an error with no dossier is batch-level and refuses the whole batch.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable

import yaml

CRITICAL, ERROR, WARNING, INFO = "critical", "error", "warning", "info"
_SEVERITY = {"C": CRITICAL, "E": ERROR, "W": WARNING, "I": INFO}
SEVERITY_RANK = {INFO: 0, WARNING: 1, ERROR: 2, CRITICAL: 3}  # for minimum-severity filters


@lru_cache(maxsize=1)
def codes() -> dict[str, dict[str, str]]:
    """The registry of finding codes, loaded once from preserve/data/codes.yaml."""
    text = resources.files("preserve").joinpath("data/codes.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


class _Lenient(dict):
    def __missing__(self, key: str) -> str:  # a template naming a param the caller did not give
        return "{" + key + "}"


def _render(template: str, params: dict[str, Any], lang: str) -> str:
    """A param may be {"vi": ..., "en": ...}: each message takes its own language's text."""
    local = {k: (v.get(lang, "") if isinstance(v, dict) else v) for k, v in params.items()}
    return string.Formatter().vformat(template, (), _Lenient(local))


def bilingual(vi: str, en: str) -> dict[str, str]:
    """A finding parameter with a text for each message language."""
    return {"vi": vi, "en": en}


@dataclass(frozen=True)
class Finding:
    code: str
    where: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    dossier: str | None = None  # fileCode this finding refuses; None = batch-level

    def __post_init__(self) -> None:
        if self.code not in codes():
            raise KeyError(f"unknown finding code {self.code!r}: add it to preserve/data/codes.yaml")

    @property
    def severity(self) -> str:
        return _SEVERITY[self.code[0]]

    @property
    def message_vi(self) -> str:
        return _render(codes()[self.code]["vi"], self.params, "vi")

    @property
    def message_en(self) -> str:
        return _render(codes()[self.code]["en"], self.params, "en")

    def hint(self, lang: str) -> str | None:
        """What to do next, in `lang` ("vi" or "en"), when the code has a hint."""
        hint = codes()[self.code].get("hint")
        return _render(hint[lang], self.params, lang) if hint else None

    @property
    def is_error(self) -> bool:
        return self.severity in (ERROR, CRITICAL)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "code": self.code,
            "severity": self.severity,
            "where": self.where,
            "message_vi": self.message_vi,
            "message_en": self.message_en,
            "params": {k: _jsonable(v) for k, v in self.params.items()},
        }
        if self.dossier is not None:
            d["dossier"] = self.dossier
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Finding":
        return cls(code=d["code"], where=d.get("where", ""), params=d.get("params", {}), dossier=d.get("dossier"))


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)


@dataclass
class Report:
    """An ordered collection of findings."""

    findings: list[Finding] = field(default_factory=list)

    def add(self, code: str, where: str = "", dossier: str | None = None, **params: Any) -> Finding:
        f = Finding(code, where, params, dossier)
        self.findings.append(f)
        return f

    def extend(self, findings: Iterable[Finding]) -> None:
        self.findings.extend(findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def batch_errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error and f.dossier is None]

    def refused_dossiers(self) -> set[str]:
        return {f.dossier for f in self.findings if f.is_error and f.dossier is not None}

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def for_dossier(self, file_code: str) -> list[Finding]:
        return [f for f in self.findings if f.dossier == file_code]

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "findings": [f.to_dict() for f in self.findings]}


def codes_markdown() -> str:
    """docs/codes.md, generated from the registry (a test keeps the two equal)."""
    lines = ["# Finding codes / Mã phát hiện", "",
             "Generated from `preserve/data/codes.yaml` by `python -m preserve.findings > docs/codes.md`. "
             "Codes are stable: never renamed or reused. `E-` errors refuse (the batch, or only the dossier the "
             "finding names), `W-` warnings are reported and accepted (refused under `--strict`).", "",
             "| Code | Severity | Tiếng Việt | English |", "| --- | --- | --- | --- |"]
    for code, c in codes().items():
        vi, en = (c[k].replace("|", "\\|") for k in ("vi", "en"))
        lines.append(f"| `{code}` | {_SEVERITY[code[0]]} | {vi} | {en} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(codes_markdown(), end="")
