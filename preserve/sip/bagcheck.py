"""BagIt (RFC 8493) validation that reports every problem as a finding.

Stages run cheap to expensive and each reports all it finds: structure (the tree, links, special files),
declarations (bagit.txt, bag-info.txt), manifest syntax and path safety (manifests, tag manifests,
fetch.txt), completeness, Payload-Oxum, then digests (each file read once for every algorithm).

Version semantics: bags declaring 1.0 (or an unreadable version) follow RFC 8493 strictly (a path listed
twice is an error; bag-info labels must not end in whitespace; %0A %0D %25 in paths are decoded). Older
bags (0.93–0.97) get the leniency their specs and the LoC conformance suite expect.

Paths are compared after Unicode NFC normalisation of both the manifest and the disk, so a bag made on a
Mac (NFD names) still matches. A missing file whose case-twin is listed and present (bag made on a
case-insensitive file system) and a missing OS junk file (.DS_Store, Thumbs.db…) are warnings, not errors.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import stat
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from preserve.digest import hash_file
from preserve.findings import Finding
from preserve.sip.safety import path_problem

# bag algorithm name -> hashlib name
_ALGORITHMS = {
    "md5": "md5", "sha1": "sha1", "sha224": "sha224", "sha256": "sha256", "sha384": "sha384",
    "sha512": "sha512", "sha3-224": "sha3_224", "sha3-256": "sha3_256", "sha3-384": "sha3_384",
    "sha3-512": "sha3_512", "blake2b-512": "blake2b", "blake2s-256": "blake2s",
}
_WEAK = {"md5", "sha1"}
_SYSTEM_FILES = {".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r", ".spotlight-v100",
                 ".trashes", ".fseventsd"}
_MANIFEST_NAME = re.compile(r"^(tag)?manifest-([^/]+)\.txt$")
_MANIFEST_LINE = re.compile(r"^([0-9A-Fa-f]+)([ \t]+)(.*)$")
_FETCH_LINE = re.compile(r"^(\S+)[ \t]+(\d+|-)[ \t]+(.+)$")
_OXUM = re.compile(r"^(\d+)\.(\d+)$")
_NEWLINES = re.compile(r"\r\n|\r|\n")
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)


@dataclass
class BagResult:
    findings: list[Finding]
    bag_info: dict[str, list[str]]  # parsed bag-info.txt; repeated labels keep every value, in order
    version: str | None
    payload: dict[str, dict[str, str]]  # "data/…" (NFC) -> {algorithm: hexdigest} as listed

    @property
    def valid(self) -> bool:
        return not any(f.is_error for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}


def is_bag(path: Path) -> bool:
    return (Path(path) / "bagit.txt").is_file()


def check_bag(path: Path, *, allow_holey: bool = True, fast: bool = False) -> BagResult:
    """Validate the bag at ``path``. ``fast`` skips hashing (structure, completeness and Oxum only);
    ``allow_holey`` makes files named in fetch.txt but absent a warning (W-BAG-HOLEY) instead of an error."""
    c = _Checker(Path(path), allow_holey)
    c.run(fast)
    return BagResult(c.findings, c.bag_info, c.version, c.payload)


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def _is_system_file(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return name.lower() in _SYSTEM_FILES or name.startswith("._")


def _paths(group) -> str:
    return ", ".join(f"'{p}'" for p in sorted(group))


@dataclass
class _Entry:
    manifest: str
    line: int
    raw: str      # the path as written, decoded
    path: str     # NFC
    digest: str   # lower-case hex

    @property
    def where(self) -> str:
        return f"{self.manifest}:{self.line}"


@dataclass
class _Manifest:
    name: str
    algorithm: str
    hashlib_name: str | None
    tag: bool
    entries: dict[str, _Entry] = field(default_factory=dict)  # NFC path -> first entry


class _Checker:
    def __init__(self, root: Path, allow_holey: bool):
        self.root = root
        self.allow_holey = allow_holey
        self.findings: list[Finding] = []
        self.bag_info: dict[str, list[str]] = {}
        self.version: str | None = None
        self.version_tuple: tuple[int, int] | None = None
        self.encoding = "utf-8"
        self.payload: dict[str, dict[str, str]] = {}
        self.files: dict[str, int] = {}           # regular files: relative path -> size
        self.bad: set[str] = set()                # links and special files (NFC), already reported
        self.by_nfc: dict[str, list[str]] = defaultdict(list)
        self.manifests: list[_Manifest] = []
        self.fetch: dict[str, int | None] = {}    # NFC path -> declared length
        self.targets: dict[tuple[str, str], str] = {}  # (manifest, NFC path) -> file on disk
        self.holey: set[str] = set()
        self.absent_system: set[str] = set()
        self._warned: set[tuple[str, frozenset[str]]] = set()

    def add(self, code: str, where: str = "", **params) -> None:
        self.findings.append(Finding(code, where, params))

    def warn_group(self, code: str, group) -> None:
        """A collision warning once per group of names, however many manifests show it."""
        key = (code, frozenset(group))
        if key not in self._warned:
            self._warned.add(key)
            self.add(code, sorted(group)[0], paths=_paths(group))

    @property
    def strict(self) -> bool:  # RFC 8493 semantics
        return self.version_tuple is None or self.version_tuple >= (1, 0)

    def run(self, fast: bool) -> None:
        if not self.root.is_dir():
            self.add("E-BAG-STRUCTURE", str(self.root), detail=f"'{self.root}' is not a folder")
            return
        self.scan()
        self.declaration()
        self.read_bag_info()
        self.read_manifests()
        self.read_fetch()
        self.completeness()
        self.oxum()
        if not fast:
            self.digests()

    # --- structure -----------------------------------------------------------------------------------

    def scan(self) -> None:
        stack = [(self.root, "")]
        while stack:
            folder, rel = stack.pop()
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
            for e in entries:
                p = f"{rel}{e.name}"
                st = e.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    self.add("E-PATH-LINK", p, path=p)
                    self.bad.add(_nfc(p))
                elif stat.S_ISDIR(st.st_mode):
                    stack.append((Path(e.path), p + "/"))
                elif stat.S_ISREG(st.st_mode):
                    self.files[p] = st.st_size
                    self.by_nfc[_nfc(p)].append(p)
                else:
                    self.add("E-PATH-SPECIAL", p, path=p)
                    self.bad.add(_nfc(p))
        data = self.root / "data"
        if data.is_symlink() or not data.is_dir():
            self.add("E-BAG-STRUCTURE", "data", detail="no payload folder 'data/'")

    # --- declarations --------------------------------------------------------------------------------

    def declaration(self) -> None:
        if "bagit.txt" not in self.files:
            self.add("E-BAG-DECLARATION", "bagit.txt", detail="bagit.txt is missing")
            return
        raw = (self.root / "bagit.txt").read_bytes()
        bom = next((b for b in _BOMS if raw.startswith(b)), None)
        if bom:
            self.add("E-BAG-DECLARATION", "bagit.txt:1", detail="bagit.txt starts with a byte-order mark")
            raw = raw[len(bom):]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.add("E-BAG-DECLARATION", "bagit.txt", detail="bagit.txt is not UTF-8")
            text = raw.decode("latin-1")
        lines = _NEWLINES.split(text)
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) != 2:
            self.add("E-BAG-DECLARATION", "bagit.txt", detail=f"expected exactly 2 lines, found {len(lines)}")
        first = lines[0] if lines else ""
        m = re.fullmatch(r"BagIt-Version: (\d+)\.(\d+)", first)
        loose = m or re.fullmatch(r"\s*BagIt-Version\s*:\s*(\d+)\.(\d+)\s*", first)
        if loose:
            self.version = f"{int(loose[1])}.{int(loose[2])}"
            self.version_tuple = (int(loose[1]), int(loose[2]))
        if not m:
            self.add("E-BAG-DECLARATION", "bagit.txt:1",
                     detail=f"line 1 must be 'BagIt-Version: M.N', found {first!r}")
        second = lines[1] if len(lines) > 1 else ""
        m = re.fullmatch(r"Tag-File-Character-Encoding: (\S+)", second)
        loose = m or re.fullmatch(r"\s*Tag-File-Character-Encoding\s*:\s*(\S+)\s*", second)
        if not m:
            self.add("E-BAG-DECLARATION", "bagit.txt:2",
                     detail=f"line 2 must be 'Tag-File-Character-Encoding: ENCODING', found {second!r}")
        if loose:
            try:
                self.encoding = codecs.lookup(loose[1]).name
            except LookupError:
                self.add("E-BAG-DECLARATION", "bagit.txt:2", detail=f"unknown character encoding {loose[1]!r}")

    def read_tag(self, rel: str, code: str) -> list[tuple[int, str]] | None:
        """A tag file's lines (number, text) in the declared encoding; None (and a finding) if undecodable."""
        try:
            text = (self.root / rel).read_bytes().decode(self.encoding)
        except UnicodeDecodeError as e:
            params = {"path": rel, "line": "?"} if code == "E-BAG-MANIFEST-SYNTAX" else {}
            self.add(code, rel, detail=f"{rel} is not valid {self.encoding}: {e.reason}", **params)
            return None
        except OSError as e:
            self.add("E-BAG-FILE-UNREADABLE", rel, path=rel, detail=str(e))
            return None
        text = text.removeprefix("\ufeff")
        lines = _NEWLINES.split(text)
        if lines and lines[-1] == "":
            lines.pop()
        return list(enumerate(lines, 1))

    def read_bag_info(self) -> None:
        name = "bag-info.txt"
        if name not in self.files and "package-info.txt" in self.files and not self.strict:
            name = "package-info.txt"  # BagIt 0.93–0.94
        if name not in self.files:
            return  # optional (RFC 8493 §2.2.2); a tag manifest naming it catches a lost one
        lines = self.read_tag(name, "E-BAG-BAGINFO")
        if lines is None:
            return
        last: tuple[str, int] | None = None
        for n, line in lines:
            where = f"{name}:{n}"
            if not line.strip():
                if line:
                    self.add("E-BAG-BAGINFO", where, detail=f"line {n} holds only whitespace")
                continue
            if line[0] in " \t":
                if last is None:
                    self.add("E-BAG-BAGINFO", where, detail=f"line {n} continues no element")
                else:
                    values = self.bag_info[last[0]]
                    values[last[1]] = f"{values[last[1]]} {line.strip()}"
                continue
            label, sep, value = line.partition(":")
            if not sep or not label.strip():
                self.add("E-BAG-BAGINFO", where, detail=f"line {n} is not 'Label: value': {line!r}")
                last = None
                continue
            if self.strict and (label != label.rstrip() or (value and value[0] not in " \t")):
                self.add("E-BAG-BAGINFO", where,
                         detail=f"line {n}: write 'Label: value' (no space before the colon, one after)")
            label = label.strip()
            self.bag_info.setdefault(label, []).append(value.strip())
            last = (label, len(self.bag_info[label]) - 1)

    # --- manifests and fetch.txt ---------------------------------------------------------------------

    def decode_path(self, path: str) -> str:
        if self.strict:  # RFC 8493 §2.1.3: CR, LF and % are percent-encoded
            path = re.sub(r"%(0[AaDd]|25)", lambda m: chr(int(m[1], 16)), path)
        return path

    def read_manifests(self) -> None:
        for rel in sorted(self.files):
            m = _MANIFEST_NAME.match(rel)
            if m:
                self.read_manifest(rel, m[2].lower(), tag=bool(m[1]))
        payload = [m for m in self.manifests if not m.tag]
        if not payload:
            self.add("E-BAG-MANIFEST-MISSING", "")
            return
        algs = sorted({m.algorithm for m in payload})
        if set(algs) <= _WEAK:
            self.add("W-BAG-WEAK-ALGORITHM", payload[0].name, algorithm=", ".join(algs))
        for m in payload:
            for key, e in m.entries.items():
                self.payload.setdefault(key, {}).setdefault(m.algorithm, e.digest)

    def read_manifest(self, rel: str, algorithm: str, tag: bool) -> None:
        hname = _ALGORITHMS.get(algorithm)
        if hname is None or hname not in hashlib.algorithms_available:
            self.add("E-BAG-ALGORITHM", rel, algorithm=algorithm, path=rel)
            hname = None
        width = hashlib.new(hname).digest_size * 2 if hname else None
        man = _Manifest(rel, algorithm, hname, tag)
        self.manifests.append(man)
        lines = self.read_tag(rel, "E-BAG-MANIFEST-SYNTAX")
        for n, line in lines or []:
            if not line.strip():
                continue
            where = f"{rel}:{n}"
            m = _MANIFEST_LINE.match(line)
            if not m or not m[3]:
                self.add("E-BAG-MANIFEST-SYNTAX", where, path=rel, line=n, detail="expected '<checksum> <path>'")
                continue
            digest, sep, path = m[1].lower(), m[2], m[3]
            if width and len(digest) != width:
                self.add("E-BAG-MANIFEST-SYNTAX", where, path=rel, line=n,
                         detail=f"a {algorithm} checksum has {width} hex digits, not {len(digest)}")
                continue
            if sep == " " and path.startswith("*"):
                path = path[1:]
                self.add("W-BAG-MANIFEST-FORMAT", where, path=rel, line=n, detail="md5sum binary-mode '*' marker")
            entry_path = self.clean_path(path, rel, n, payload=not tag)
            if entry_path is None:
                continue
            e = _Entry(rel, n, entry_path, _nfc(entry_path), digest)
            first = man.entries.get(e.path)
            if first is None:
                man.entries[e.path] = e
                continue
            if first.raw != e.raw:
                self.warn_group("W-BAG-NORMALISATION", {first.raw, e.raw})
            if first.digest != e.digest:
                self.add("E-BAG-DUPLICATE-ENTRY", where, manifest=rel, path=e.raw)
            elif first.raw == e.raw:
                code = "E-BAG-DUPLICATE-ENTRY" if self.strict else "W-BAG-DUPLICATE-ENTRY"
                self.add(code, where, manifest=rel, path=e.raw)
        folded: dict[str, set[str]] = defaultdict(set)
        for key in man.entries:
            folded[key.casefold()].add(key)
        for group in folded.values():
            if len(group) > 1:
                self.warn_group("W-BAG-CASE-COLLISION", group)

    def clean_path(self, path: str, tagfile: str, n: int, payload: bool) -> str | None:
        """The decoded, checked path of a manifest or fetch.txt line; None (and a finding) if unsafe."""
        where = f"{tagfile}:{n}"
        path = self.decode_path(path)
        if path.startswith("./"):
            while path.startswith("./"):
                path = path[2:]
            self.add("W-BAG-MANIFEST-FORMAT", where, path=tagfile, line=n, detail="path starts with './'")
        problem = path_problem(path.replace("\r", " ").replace("\n", " "))  # CR/LF: RFC 8493 allows them
        if problem is None and ({"", "."} & set(path.split("/"))):
            problem = "not a normalised relative path (empty or '.' segment)"
        if problem is None and payload and not path.startswith("data/"):
            problem = "outside the payload folder data/"
        if problem:
            self.add("E-PATH-UNSAFE", where, path=path, detail=f"{problem} (in {tagfile})")
            return None
        return path

    def read_fetch(self) -> None:
        if "fetch.txt" not in self.files:
            return
        for n, line in self.read_tag("fetch.txt", "E-BAG-MANIFEST-SYNTAX") or []:
            if not line.strip():
                continue
            m = _FETCH_LINE.match(line)
            if not m:
                self.add("E-BAG-MANIFEST-SYNTAX", f"fetch.txt:{n}", path="fetch.txt", line=n,
                         detail="expected '<url> <length or -> <path>'")
                continue
            path = self.clean_path(m[3], "fetch.txt", n, payload=True)
            if path is not None:
                self.fetch[_nfc(path)] = None if m[2] == "-" else int(m[2])

    # --- completeness --------------------------------------------------------------------------------

    def resolve(self, e: _Entry) -> str | None:
        if e.raw in self.files:
            return e.raw
        found = self.by_nfc.get(e.path)
        return found[0] if found else None

    def completeness(self) -> None:
        payload_files = {_nfc(p): p for p in self.files if p.startswith("data/")}
        for man in self.manifests:
            if not man.tag:
                for key, disk in sorted(payload_files.items()):
                    if key not in man.entries:
                        self.add("E-BAG-FILE-UNLISTED", disk, path=disk, manifest=man.name)
            folded: dict[str, list[str]] = defaultdict(list)
            for key, e in man.entries.items():
                disk = self.resolve(e)
                if disk is not None:
                    self.targets[(man.name, key)] = disk
                    folded[key.casefold()].append(disk)
            for key, e in man.entries.items():
                if (man.name, key) in self.targets or key in self.bad:
                    continue
                twins = folded.get(key.casefold())
                if twins:  # listed twice by case, made on a case-insensitive disk: the same file
                    self.targets[(man.name, key)] = twins[0]
                elif not man.tag and key in self.fetch:
                    if key not in self.holey:
                        self.holey.add(key)
                        self.add("W-BAG-HOLEY" if self.allow_holey else "E-BAG-HOLEY", key, path=key)
                elif not man.tag and _is_system_file(key):
                    self.absent_system.add(key)
                    self.add("W-BAG-SYSTEM-FILE-ABSENT", e.where, manifest=man.name, path=e.raw)
                else:
                    self.add("E-BAG-FILE-MISSING", e.where, manifest=man.name, path=e.raw)
        for rel in sorted(self.files):
            if _is_system_file(rel):
                self.add("W-BAG-SYSTEM-FILE", rel, path=rel)
        folded_disk: dict[str, set[str]] = defaultdict(set)
        for key, group in self.by_nfc.items():
            if len(group) > 1:
                self.warn_group("W-BAG-NORMALISATION", group)
            folded_disk[key.casefold()].add(key)
        for group in folded_disk.values():
            if len(group) > 1:
                self.warn_group("W-BAG-CASE-COLLISION", group)

    def oxum(self) -> None:
        values = next((v for k, v in self.bag_info.items() if k.lower() == "payload-oxum"), None)
        if not values:
            return
        if len(values) > 1:
            self.add("E-BAG-BAGINFO", "bag-info.txt", detail="Payload-Oxum is given more than once")
        stated = _OXUM.match(values[0])
        if not stated:
            self.add("E-BAG-BAGINFO", "bag-info.txt", detail=f"Payload-Oxum '{values[0]}' is not <octets>.<count>")
            return
        sizes = [s for p, s in self.files.items() if p.startswith("data/")]
        octets, count = sum(sizes), len(sizes)
        if self.holey:
            lengths = [self.fetch[k] for k in self.holey]
            if any(n is None for n in lengths):
                return  # the complete payload's size is unknown
            octets, count = octets + sum(lengths), count + len(lengths)
        want = (int(stated[1]), int(stated[2]))
        if want in ((octets, count), (octets, count + len(self.absent_system))):
            return
        self.add("E-BAG-OXUM", "bag-info.txt", expected=values[0], actual=f"{octets}.{count}")

    # --- digests -------------------------------------------------------------------------------------

    def digests(self) -> None:
        wanted: dict[str, set[str]] = defaultdict(set)
        for man in self.manifests:
            if man.hashlib_name:
                for key in man.entries:
                    disk = self.targets.get((man.name, key))
                    if disk is not None:
                        wanted[disk].add(man.hashlib_name)
        computed: dict[str, dict[str, str]] = {}
        for disk, algs in sorted(wanted.items()):
            try:
                computed[disk] = hash_file(self.root / disk, sorted(algs)).values
            except OSError as e:
                self.add("E-BAG-FILE-UNREADABLE", disk, path=disk, detail=str(e))
        for man in self.manifests:
            if not man.hashlib_name:
                continue
            for key, e in man.entries.items():
                disk = self.targets.get((man.name, key))
                actual = computed.get(disk, {}).get(man.hashlib_name) if disk else None
                if actual is not None and actual != e.digest:
                    self.add("E-BAG-DIGEST", key, algorithm=man.algorithm, path=key, manifest=man.name,
                             expected=e.digest, actual=actual)
