"""Validate XML against the schemas in metadata_schemas/xsd, offline, with a hardened parser.

`validate(xml_bytes, "mets")` returns a list of error strings; an empty list means valid. Parse problems are
returned as errors too, never raised. Schema objects are built once per (schema, folder) and cached.

The folder defaults to metadata_schemas/xsd; tests pass ../shared/schemas to check against the reference
copies. The project's own wrapper schemas (oai_dc.xsd, dc-elements.xsd, vn-party-archive-1.xsd) are served
from metadata_schemas/xsd when the folder given lacks them, so "dc" always means oai_dc → that folder's dc.xsd.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from pathlib import Path

from lxml import etree

XSD_DIR = Path(__file__).resolve().parents[2] / "metadata_schemas" / "xsd"

SCHEMA_FILES: dict[str, str] = {
    "mets": "mets1_12.xsd",
    "premis": "premis-v3.xsd",
    "dc": "oai_dc.xsd",
    "ead": "ead2002.xsd",
    "vn-party-archive": "vn-party-archive-1.xsd",
}
OWN_FILES = ("oai_dc.xsd", "dc-elements.xsd", "vn-party-archive-1.xsd")


def _new_parser() -> etree.XMLParser:
    """No entity expansion, no DTD loading, no network, no huge trees."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=False)


# A hardened parser for single-threaded callers. lxml parsers must not be used by two threads at once:
# threads should call parse() below, which keeps one parser per thread.
SAFE_PARSER = _new_parser()
_local = threading.local()


def _thread_parser() -> etree.XMLParser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = _new_parser()
    return parser


def parse(data: bytes) -> etree._Element:
    """Parse XML bytes with the hardened parser; raises etree.XMLSyntaxError on malformed input."""
    return etree.fromstring(data, _thread_parser())


# --- text helper for the builders -------------------------------------------------------------------------

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_text(value: object) -> str:
    """A value as text fit for XML 1.0: NFC-normalised, control characters (other than tab/newlines) removed."""
    return _XML_INVALID.sub("", unicodedata.normalize("NFC", str(value)))


# --- schemas ----------------------------------------------------------------------------------------------


class _OwnFiles(etree.Resolver):
    """Serve this project's wrapper schemas from metadata_schemas/xsd when another folder lacks them.

    They are served under the other folder's URL, so their relative includes (dc.xsd) resolve there.
    """

    def __init__(self, schema_dir: Path):
        super().__init__()
        self.schema_dir = schema_dir

    def resolve(self, url, pubid, context):
        if not url:
            return None
        name = url.rsplit("/", 1)[-1]
        if name in OWN_FILES and not (self.schema_dir / name).is_file() and (XSD_DIR / name).is_file():
            return self.resolve_string((XSD_DIR / name).read_bytes(), context, base_url=url)
        return None


_cache: dict[tuple[str, str], tuple[etree.XMLSchema, threading.Lock]] = {}
_cache_lock = threading.Lock()


def _schema_path(schema: str, schema_dir: Path) -> Path:
    try:
        name = SCHEMA_FILES[schema]
    except KeyError:
        raise ValueError(f"unknown schema {schema!r}; known: {', '.join(SCHEMA_FILES)}") from None
    path = schema_dir / name
    if not path.is_file() and name in OWN_FILES:
        path = XSD_DIR / name
    return path


def load_schema(schema: str, schema_dir: str | Path | None = None) -> etree.XMLSchema:
    """The compiled schema (cached). Raises FileNotFoundError or etree.XMLSchemaParseError if it cannot load."""
    return _load(schema, Path(schema_dir) if schema_dir else XSD_DIR)[0]


def _load(schema: str, schema_dir: Path) -> tuple[etree.XMLSchema, threading.Lock]:
    schema_dir = schema_dir.resolve()
    key = (schema, str(schema_dir))
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            return hit
        path = _schema_path(schema, schema_dir)
        if not path.is_file():
            raise FileNotFoundError(f"schema file {path} not found")
        parser = _new_parser()
        parser.resolvers.add(_OwnFiles(schema_dir))
        # base URL in the chosen folder, so that imports resolve beside it
        doc = etree.parse(str(path), parser, base_url=(schema_dir / path.name).as_uri())
        compiled = etree.XMLSchema(doc)
        _cache[key] = (compiled, threading.Lock())
        return _cache[key]


def validate(doc: bytes | etree._Element | etree._ElementTree, schema: str,
             schema_dir: str | Path | None = None) -> list[str]:
    """Errors of `doc` against the named schema ("mets", "premis", "dc", "ead", "vn-party-archive").

    Empty list = valid. Malformed XML gives one error, not an exception.
    """
    compiled, lock = _load(schema, Path(schema_dir) if schema_dir else XSD_DIR)
    if isinstance(doc, (bytes, bytearray)):
        try:
            doc = parse(bytes(doc))
        except etree.XMLSyntaxError as exc:
            return [f"not well-formed XML: {exc}"]
    with lock:  # the error log lives on the schema object
        if compiled.validate(doc):
            return []
        return [f"line {e.line}: {e.message}" for e in compiled.error_log]
