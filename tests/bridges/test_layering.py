"""bridges/ is a client of the wire protocol alone: it imports nothing of the server, the
agents or the audit trail, statically or at run time (docs/PROTOCOL.md is its contract).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import bridges
from bridges import wire
from server import protocol, settings
from server.auth import verify_token

BRIDGES_DIR = Path(bridges.__file__).parent
FORBIDDEN = {"server", "agents", "audit", "bench"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_bridge_module_imports_the_server() -> None:
    modules = sorted(BRIDGES_DIR.rglob("*.py"))
    assert len(modules) >= 10
    for path in modules:
        found = imported_roots(path) & FORBIDDEN
        assert found == set(), f"{path.relative_to(BRIDGES_DIR)} imports {sorted(found)}"


def test_importing_every_bridge_loads_nothing_of_the_server() -> None:
    names = sorted(
        ".".join(("bridges", *p.relative_to(BRIDGES_DIR).with_suffix("").parts))
        for p in BRIDGES_DIR.rglob("*.py")
        if p.name != "__main__.py"
    )
    program = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name.removesuffix('.__init__'))\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(FORBIDDEN)!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "[]"


def test_the_wire_constants_are_the_servers() -> None:
    assert {c.name: c.value for c in wire.CloseCode} == {
        c.name: c.value for c in protocol.CloseCode
    }
    assert {s.value for s in wire.SpeechState} == {s.value for s in protocol.SpeechState}
    assert wire.DEVELOPMENT_SECRET == settings.DEVELOPMENT_SECRET


def test_a_minted_token_is_one_the_server_accepts() -> None:
    token = wire.mint_token(
        wire.DEVELOPMENT_SECRET, workspace="demo", caller="caller-1", name="Pat"
    )
    principal = verify_token(wire.DEVELOPMENT_SECRET, token)
    assert (principal.workspace_id, principal.role, principal.act_for) == (
        "demo",
        "service",
        "caller-1",
    )
