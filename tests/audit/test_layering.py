"""audit/ imports only the standard library and itself (DESIGN.md: parts and imports)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import audit

AUDIT_DIR = Path(audit.__file__).parent


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_audit_imports_only_the_standard_library() -> None:
    modules = sorted(AUDIT_DIR.glob("*.py"))
    assert len(modules) >= 6
    for path in modules:
        foreign = imported_roots(path) - set(sys.stdlib_module_names) - {"audit"}
        assert foreign == set(), f"{path.name} imports {sorted(foreign)}"
