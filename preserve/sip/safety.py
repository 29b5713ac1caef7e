"""Safe intake: hostile zips, folder trees and XML are refused before anything reads them for real.

- ``check_zip`` reads only the central directory: unsafe names, links, device entries, name collisions,
  encrypted or unsupported entries, and zip-bomb signs (total size, ratio, entry count, overlapping entries).
- ``extract_zip`` extracts into an empty folder only when ``check_zip`` found no error, never writes outside
  it, never creates or follows a link, and counts the real bytes as they come out, so that a header that lies
  about sizes cannot get past the limits.
- ``check_tree`` inspects a folder SIP without following links.
- ``check_xml`` / ``check_xml_bytes`` refuse DTDs and entity declarations (billion laughs, XXE) and report XML
  that is not well-formed; ``xml_parser`` is the parser every reader of submitted XML should use.

All findings are batch-level (dossier=None); ``where`` is the entry name or the path.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import stat
import unicodedata
import zipfile
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from lxml import etree

from preserve.findings import Finding

MiB = 1 << 20
_CHUNK = MiB
_SUPPORTED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_DRIVE = re.compile(r"^[A-Za-z]:")
_ENV_VAR = re.compile(r"^%[^%/\\]+%")
_LOCAL_HEADER = 30  # fixed part of a zip local file header


# --- paths -------------------------------------------------------------------------------------------


def path_problem(name: str, *, backslash_is_separator: bool = False) -> str | None:
    """Why a relative path taken from a package (manifest line, fetch.txt, zip entry) is unsafe, or None.

    Unsafe: empty, control characters, absolute (/x, \\x), UNC (\\\\server, //server), drive letters (C:),
    home shortcuts (~, ~user), environment variables (%HomeDrive%), '..' segments. A backslash is a
    separator in zips made on Windows (``backslash_is_separator``); elsewhere it is refused outright,
    since on Windows it would be one.
    """
    if not name:
        return "empty path"
    if any(ord(c) < 0x20 or c == "\x7f" for c in name):
        return "control character in path"
    if name.startswith(("\\\\", "//")):
        return "UNC or network path"
    if _DRIVE.match(name):
        return "drive letter (absolute Windows path)"
    if name.startswith(("/", "\\")):
        return "absolute path"
    if name.startswith("~"):
        return "home-directory shortcut"
    if _ENV_VAR.match(name):
        return "environment-variable shortcut"
    if ".." in re.split(r"[/\\]", name):
        return "'..' segment escapes the package"
    if "\\" in name and not backslash_is_separator:
        return "backslash in path (a Windows separator)"
    return None


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def _collisions(names: Iterable[str]) -> list[list[str]]:
    """Groups of names (2+) equal after NFC normalisation; exact duplicates count too."""
    groups: dict[str, list[str]] = defaultdict(list)
    for n in names:
        groups[_nfc(n)].append(n)
    return [g for g in groups.values() if len(g) > 1]


def _paths_param(group: Iterable[str]) -> str:
    return ", ".join(f"'{p}'" for p in group)


# --- zip ---------------------------------------------------------------------------------------------


@dataclass
class ZipLimits:
    max_total_bytes: int = 200 * 2**30
    max_ratio: float = 200.0  # per entry, for entries larger than ratio_floor
    max_entries: int = 200_000
    ratio_floor: int = MiB


def _infos(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Entries with their names decoded right. Many zip tools store UTF-8 names without the UTF-8 flag, which
    Python then reads as cp437 and garbles Vietnamese letters; such names are re-read as UTF-8 when they are."""
    infos = zf.infolist()
    for info in infos:
        if not info.flag_bits & 0x800 and not info.filename.isascii():
            try:
                info.filename = info.filename.encode("cp437").decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                pass  # a legacy code page name; kept as Python reads it
    return infos


def _entry_parts(info: zipfile.ZipInfo) -> list[str]:
    """The entry's path segments with '\\' as a separator and '', '.' dropped (name already checked)."""
    return [p for p in re.split(r"[/\\]", info.filename) if p not in ("", ".")]


def _entry_kind(info: zipfile.ZipInfo) -> str:
    """'dir', 'file', 'link' or 'special', from the Unix mode in external_attr when there is one."""
    mode = info.external_attr >> 16
    fmt = stat.S_IFMT(mode)
    if fmt == stat.S_IFLNK:
        return "link"
    if fmt in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
        return "special"
    if fmt == stat.S_IFDIR or info.is_dir():
        return "dir"
    return "file"


def _check_infos(infos: list[zipfile.ZipInfo], limits: ZipLimits) -> list[Finding]:
    out: list[Finding] = []
    if len(infos) > limits.max_entries:
        out.append(Finding("E-ZIP-BOMB", "", {"detail": f"{len(infos)} entries > limit {limits.max_entries}"}))
    total = 0
    file_targets: list[str] = []
    files: set[str] = set()
    dirs: set[str] = set()
    for info in infos:
        name = info.filename
        if info.flag_bits & 0x1:
            out.append(Finding("E-ZIP-UNREADABLE", name, {"detail": f"entry '{name}' is encrypted"}))
        elif info.compress_type not in _SUPPORTED_METHODS:
            out.append(Finding("E-ZIP-UNREADABLE", name,
                               {"detail": f"entry '{name}' uses unsupported compression method {info.compress_type}"}))
        problem = path_problem(name, backslash_is_separator=True)
        parts = _entry_parts(info) if problem is None else []
        if problem is None and not parts:
            problem = "empty name"
        if problem:
            out.append(Finding("E-PATH-UNSAFE", name, {"path": name, "detail": problem}))
        kind = _entry_kind(info)
        if kind == "link":
            out.append(Finding("E-PATH-LINK", name, {"path": name}))
        elif kind == "special":
            out.append(Finding("E-PATH-SPECIAL", name, {"path": name}))
        if parts:
            rel = "/".join(parts)
            if kind == "dir":
                dirs.add(_nfc(rel))
            else:
                file_targets.append(rel)
                files.add(_nfc(rel))
            for i in range(1, len(parts)):
                dirs.add(_nfc("/".join(parts[:i])))
        total += info.file_size
        if info.file_size > limits.ratio_floor:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                out.append(Finding("E-ZIP-BOMB", name, {
                    "detail": f"entry '{name}' expands {ratio:.0f}:1 > {limits.max_ratio:.0f}:1"}))
    if total > limits.max_total_bytes:
        out.append(Finding("E-ZIP-BOMB", "", {
            "detail": f"declared total {total} bytes > limit {limits.max_total_bytes}"}))
    # the same file target twice (exactly or after NFC), or a file where a folder must go
    for group in _collisions(file_targets):
        out.append(Finding("E-PATH-COLLISION", group[0], {"paths": _paths_param(group)}))
    for name in sorted(files & dirs):
        out.append(Finding("E-PATH-COLLISION", name, {"paths": f"'{name}' (file and folder)"}))
    out.extend(_overlaps(infos))
    return out


def _overlaps(infos: list[zipfile.ZipInfo]) -> list[Finding]:
    """Entries whose data overlap (the 'overlapping files' zip bomb): a lower bound, so no false alarms."""
    out = []
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for a, b in zip(ordered, ordered[1:]):
        raw_name = a.orig_filename.encode("utf-8" if a.flag_bits & 0x800 else "cp437", "replace")
        end = a.header_offset + _LOCAL_HEADER + len(raw_name) + a.compress_size
        if end > b.header_offset:
            out.append(Finding("E-ZIP-BOMB", b.filename, {
                "detail": f"entries '{a.filename}' and '{b.filename}' overlap"}))
            break
    return out


def check_zip(zip_path: Path, limits: ZipLimits = ZipLimits()) -> list[Finding]:
    """Check a zip from its central directory only; nothing is decompressed."""
    where = str(zip_path)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            infos = _infos(zf)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        return [Finding("E-ZIP-UNREADABLE", where, {"detail": str(e) or type(e).__name__})]
    return _check_infos(infos, limits)


def extract_zip(zip_path: Path, dest: Path, limits: ZipLimits = ZipLimits()) -> list[Finding]:
    """Check, then extract into ``dest`` (created if absent; must be empty) only if there is no error.

    While extracting, the real bytes are counted: an entry that inflates beyond its declared size, or a total
    beyond the limit, stops extraction with E-ZIP-BOMB; a CRC or decompression error gives E-ZIP-UNREADABLE.
    On any error what was extracted is removed again, leaving ``dest`` empty.
    Raises ValueError when ``dest`` exists and is not an empty folder.
    """
    dest = Path(dest)
    if dest.exists() and (dest.is_symlink() or not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"extraction target {dest} must be an empty folder")
    findings = check_zip(zip_path, limits)
    if any(f.is_error for f in findings):
        return findings
    dest.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(dest)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            budget = limits.max_total_bytes
            for info in _infos(zf):
                problem = _extract_one(zf, info, root, budget, limits)
                if isinstance(problem, Finding):
                    findings.append(problem)
                    break
                budget -= problem
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        findings.append(Finding("E-ZIP-UNREADABLE", str(zip_path), {"detail": str(e) or type(e).__name__}))
    if any(f.is_error for f in findings):
        _empty(Path(root))
    return findings


def _extract_one(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: str, budget: int,
                 limits: ZipLimits) -> int | Finding:
    """Extract one entry below root; return the bytes written or the finding that stops extraction."""
    parts = _entry_parts(info)
    name = info.filename
    is_dir = _entry_kind(info) == "dir"
    parent = root
    dir_parts = parts if is_dir else parts[:-1]
    for p in dir_parts:
        parent = os.path.join(parent, p)
        try:
            os.mkdir(parent, 0o755)
        except FileExistsError:
            st = os.lstat(parent)
            if not stat.S_ISDIR(st.st_mode):  # a link or a file where a folder must go
                return Finding("E-PATH-COLLISION", name, {"paths": f"'{name}'"})
    if is_dir:
        return 0
    if os.path.commonpath([root, os.path.realpath(parent)]) != root:  # cannot happen after the checks
        return Finding("E-PATH-UNSAFE", name, {"path": name, "detail": "resolves outside the target folder"})
    target = os.path.join(parent, parts[-1])
    # Read with a copy that allows one byte more than declared and no CRC check by zipfile: we check the CRC
    # ourselves, and a byte beyond the declared size proves the header lies.
    probe = copy.copy(info)
    probe.file_size = info.file_size + 1
    del probe.CRC
    cap = min(info.file_size, budget)
    written = 0
    crc = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_BINARY", 0), 0o644)
    try:
        with zf.open(probe) as src, os.fdopen(fd, "wb", closefd=False) as out:
            while chunk := src.read(_CHUNK):
                if written + len(chunk) > info.file_size:
                    return Finding("E-ZIP-BOMB", name, {
                        "detail": f"entry '{name}' inflates beyond the {info.file_size} bytes its header declares"})
                if written + len(chunk) > cap:
                    return Finding("E-ZIP-BOMB", name, {
                        "detail": f"extracted total exceeds limit {limits.max_total_bytes}"})
                if (written + len(chunk) > limits.ratio_floor
                        and (written + len(chunk)) / max(info.compress_size, 1) > limits.max_ratio):
                    return Finding("E-ZIP-BOMB", name, {
                        "detail": f"entry '{name}' expands beyond {limits.max_ratio:.0f}:1"})
                out.write(chunk)
                written += len(chunk)
                crc = zlib.crc32(chunk, crc)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError) as e:
        return Finding("E-ZIP-UNREADABLE", name, {"detail": f"entry '{name}': {e}"})
    finally:
        os.close(fd)
    if written != info.file_size:
        return Finding("E-ZIP-UNREADABLE", name, {
            "detail": f"entry '{name}' holds {written} bytes, its header declares {info.file_size}"})
    if crc != info.CRC:
        return Finding("E-ZIP-UNREADABLE", name, {"detail": f"bad CRC-32 for entry '{name}'"})
    return written


def _empty(folder: Path) -> None:
    """Remove everything inside folder (which we filled ourselves); rmtree never follows links."""
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


# --- folder trees ------------------------------------------------------------------------------------


def check_tree(root: Path) -> list[Finding]:
    """Links (symbolic, or hard: st_nlink > 1), special files and NFC name collisions below root.

    Links are reported, never followed. ``where`` and ``path`` are relative to root, with '/'.
    """
    out: list[Finding] = []
    stack = [(Path(root), "")]
    while stack:
        folder, rel = stack.pop()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for group in _collisions(e.name for e in entries):
            paths = [f"{rel}{n}" for n in group]
            out.append(Finding("E-PATH-COLLISION", paths[0], {"paths": _paths_param(paths)}))
        for e in entries:
            path = f"{rel}{e.name}"
            st = e.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                out.append(Finding("E-PATH-LINK", path, {"path": path}))
            elif stat.S_ISDIR(st.st_mode):
                stack.append((Path(e.path), path + "/"))
            elif stat.S_ISREG(st.st_mode):
                if st.st_nlink > 1:
                    out.append(Finding("E-PATH-LINK", path, {"path": path, "detail": f"hard link ({st.st_nlink})"}))
            else:
                out.append(Finding("E-PATH-SPECIAL", path, {"path": path}))
    return out


# --- XML ---------------------------------------------------------------------------------------------


def xml_parser() -> etree.XMLParser:
    """The parser for any XML that comes from outside: no entities, no DTD, no network, no huge trees."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           dtd_validation=False)


def check_xml_bytes(data: bytes, where: str) -> list[Finding]:
    """E-XML-ENTITY for a DOCTYPE with an internal subset or an external DTD, or any entity declaration;
    E-XML-UNREADABLE when the document is not well-formed."""
    try:
        root = etree.fromstring(data, xml_parser())
    except etree.XMLSyntaxError as e:
        out = [Finding("E-XML-UNREADABLE", where, {"path": where, "detail": str(e)})]
        if re.search(rb"<!\s*(DOCTYPE|ENTITY)", data):
            out.insert(0, Finding("E-XML-ENTITY", where, {"path": where}))
        return out
    return _doctype_findings(root.getroottree(), where)


def check_xml(path: Path, where: str) -> list[Finding]:
    """As check_xml_bytes, for a file (read through a file object, so the path is never taken for a URL)."""
    try:
        with open(path, "rb") as f:
            tree = etree.parse(f, xml_parser())
    except etree.XMLSyntaxError as e:
        return check_xml_bytes(Path(path).read_bytes(), where) or [
            Finding("E-XML-UNREADABLE", where, {"path": where, "detail": str(e)})]
    except OSError as e:
        return [Finding("E-XML-UNREADABLE", where, {"path": where, "detail": str(e)})]
    return _doctype_findings(tree, where)


def _doctype_findings(tree: etree._ElementTree, where: str) -> list[Finding]:
    """Any DOCTYPE (internal subset, external DTD, entity declarations) is refused; so are entity references."""
    info = tree.docinfo
    has_refs = any(isinstance(n, etree._Entity) for n in tree.iter())
    if info.doctype or info.internalDTD is not None or info.system_url or info.public_id or has_refs:
        return [Finding("E-XML-ENTITY", where, {"path": where})]
    return []
