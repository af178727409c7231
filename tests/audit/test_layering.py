"""audit/ imports only the standard library and itself (DESIGN.md: parts and imports),
and `cryptography` for signing checkpoints."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import audit

AUDIT_DIR = Path(audit.__file__).parent
# The one module that signs (Ed25519), and the one library it may use for it.
ALSO_ALLOWED = {"checkpoints.py": {"cryptography"}}


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
        allowed = set(sys.stdlib_module_names) | {"audit"} | ALSO_ALLOWED.get(path.name, set())
        foreign = imported_roots(path) - allowed
        assert foreign == set(), f"{path.name} imports {sorted(foreign)}"
