"""The package's layers only import downwards (docs/architecture.md): read every module's imports, also
those inside functions, and check the rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "slimpose"
LOWER = ("engine", "models", "data", "codecs", "losses", "evaluation", "heads", "config", "utils")


def _imports(path: Path) -> set[str]:
    """Every ``slimpose.*`` module named by an import statement of ``path`` (relative imports resolved)."""
    package = ".".join(("slimpose",) + path.relative_to(SRC).with_suffix("").parts[:-1])
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in out if m == "slimpose" or m.startswith("slimpose.")}


MODULES = sorted(p for p in SRC.rglob("*.py"))


def test_the_rule_reader_sees_imports():
    found = _imports(SRC / "engine" / "trainer.py")
    assert "slimpose.engine.builders" in found and "slimpose.config.schema" in found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_layers_import_downwards(path):
    rel = path.relative_to(SRC)
    layer = rel.parts[0] if len(rel.parts) > 1 else rel.stem
    imported = _imports(path)
    if layer != "cli":
        assert not [m for m in imported if m.startswith("slimpose.cli")], f"{rel} imports the CLI"
    if layer in LOWER:
        bad = [m for m in imported if m.startswith(("slimpose.distillation", "slimpose.training",
                                                    "slimpose.demo", "slimpose.api"))]
        assert not bad, f"{rel} ({layer}) imports upwards: {bad}"
    if layer in ("models", "heads", "codecs", "losses", "data", "evaluation"):
        assert not [m for m in imported if m.startswith("slimpose.engine")], f"{rel} imports the engine"
