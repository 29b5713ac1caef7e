"""Small modules, one direction: core code never imports the CLI or the web layer, and the web layer never
imports the CLI (both sit on the Repository façade)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "preserve"


def _imports(path: Path) -> set[str]:
    """Absolute names of the preserve modules a file imports (relative imports resolved)."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            out |= {f"{name}.{a.name}" for a in node.names}
    return {n for n in out if n == "preserve" or n.startswith("preserve.")}


def _layer(path: Path) -> str:
    part = path.relative_to(PKG).parts[0]
    return part if part in ("cli", "web") else "core"


def test_core_never_imports_the_cli_or_the_web_layer_and_the_web_never_the_cli():
    wrong = []
    files = sorted(PKG.rglob("*.py"))
    assert len(files) > 50
    for path in files:
        layer = _layer(path)
        forbidden = {"core": ("preserve.cli", "preserve.web"), "web": ("preserve.cli",), "cli": ()}[layer]
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                wrong.append(f"{path.relative_to(PKG.parent)} imports {name}")
    assert wrong == []
