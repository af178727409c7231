"""A workspace file (TOML), read and validated into a :class:`WorkspaceSpec`.

The format is documented in ``docs/WORKSPACES.md``. Reading is all-or-nothing: a file
either yields a complete, consistent spec or raises :class:`WorkspaceFileError` naming
the line and the key of the first problem, so nothing is ever half-applied.

Secrets are never written in the file: HTTP headers and MCP environment variables name
the environment variable that holds their value, and the spec keeps only that name.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from agents.exceptions import WorkspaceFileError
from agents.models import AgentDefinition, Patient
from agents.tools import ANY_ARGUMENTS

ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
TOOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
BUILTIN_BRAINS = ("rule", "llm")
"""Brains every node has: the rule brain, and the LLM brain configured by environment."""

BUILTIN_TOOLS = ("phone.call", "payer.prior_auth", "records.lookup")
"""Tools every node has: the telephony and payer simulators, and the records tool."""

PATIENT_FIELDS = ("medications", "allergies", "conditions")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An HTTP endpoint: ``headers_from_env`` maps a header to the variable holding it."""

    url: str
    method: str = "POST"
    headers_from_env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool of the workspace: ``kind`` is ``http`` or ``builtin``."""

    name: str
    kind: str
    description: str
    expected_latency: float | None
    """Seconds; ``None`` for a builtin: the tool's own figure."""
    parameters: Mapping[str, Any] | None
    """JSON Schema of the arguments; ``None`` for a builtin: the tool's own."""
    endpoint: Endpoint | None = None
    cleanup: Endpoint | None = None
    timeout: float = 10.0
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class McpServerSpec:
    """An MCP server whose tools become ``{name}.{tool}``: a command, or a URL."""

    name: str
    command: tuple[str, ...] = ()
    url: str | None = None
    env_from: Mapping[str, str] = field(default_factory=dict)
    headers_from_env: Mapping[str, str] = field(default_factory=dict)
    expected_latency: float = 1.0
    latency: Mapping[str, float] = field(default_factory=dict)
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class BrainSpec:
    """A named model an agent may run on (``kind = "openai"``: Chat Completions)."""

    name: str
    kind: str
    base_url: str
    model: str
    api_key_env: str | None = None
    timeout: float = 30.0
    json_mode: bool = False
    """Decisions as one schema-constrained JSON object rather than tool calls
    (``output = "json"``: for small local models whose template cannot call tools)."""


@dataclass(frozen=True, slots=True)
class AgentSpec:
    id: str
    name: str
    description: str
    instructions: str
    tools: tuple[str, ...] = ()
    brain: str = "rule"
    primary: bool = False
    examples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PatientSpec:
    """A patient record written in the file (the demo's are fictional)."""

    id: str
    name: str
    date_of_birth: str = ""
    mrn: str = ""
    phone: str = ""
    onboarding_complete: bool = True
    medications: tuple[str, ...] = ()
    allergies: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()
    provider: str = ""
    insurer: str = ""


@dataclass(frozen=True, slots=True)
class WorkspaceSpec:
    """A whole workspace as its file declares it.

    ``directory`` says where its patient directory comes from: ``inline`` (the
    ``patients`` of the file, or of the file it names, replace the stored ones) or
    ``store`` (whatever is stored is kept: it is managed elsewhere).
    """

    id: str
    name: str
    agents: tuple[AgentSpec, ...]
    tools: tuple[ToolSpec, ...] = ()
    mcp_servers: tuple[McpServerSpec, ...] = ()
    brains: tuple[BrainSpec, ...] = ()
    directory: str = "store"
    patients: tuple[PatientSpec, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Every field as JSON values (what the store keeps); :func:`spec_from_json` reverses it."""
        return asdict(self)

    @property
    def digest(self) -> str:
        """A hash of the content: applying the same content twice changes nothing."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return sha256(canonical.encode()).hexdigest()

    @property
    def primary(self) -> AgentSpec:
        return next(a for a in self.agents if a.primary)

    def agent_definitions(self, workspace_id: str | None = None) -> list[AgentDefinition]:
        """The agents as the runtime knows them, in the file's order."""
        return [
            AgentDefinition(
                workspace_id=workspace_id or self.id,
                id=a.id,
                name=a.name,
                description=a.description,
                instructions=a.instructions,
                tools=a.tools,
                brain=a.brain,
                primary=a.primary,
                examples=a.examples,
            )
            for a in self.agents
        ]

    def patient_records(self, workspace_id: str | None = None) -> list[Patient]:
        """The patients the file declares (none for ``directory = "store"``)."""
        return [Patient(workspace_id=workspace_id or self.id, **asdict(p)) for p in self.patients]


def load_workspace_file(path: Path) -> WorkspaceSpec:
    """Read and validate the workspace file at *path*.

    A ``patients.file`` it names is read relative to it. Raises
    :class:`WorkspaceFileError` (naming the file, line and key) for anything wrong.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = f"cannot read it ({type(exc).__name__})"
        raise WorkspaceFileError(str(path), None, None, problem) from None
    return parse_workspace(text, source=str(path), base=path.parent)


def parse_workspace(
    text: str, *, source: str = "<workspace>", base: Path | None = None
) -> WorkspaceSpec:
    """Validate the TOML *text* of a workspace file into a :class:`WorkspaceSpec`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_of_decode_error(str(exc))
        raise WorkspaceFileError(
            source, line, None, f"not valid TOML: {_toml_reason(exc)}"
        ) from None
    reader = _Reader(data, _KeyLines(text), source)
    return reader.workspace(base)


def spec_from_json(data: Mapping[str, Any]) -> WorkspaceSpec:
    """Rebuild a spec that :meth:`WorkspaceSpec.to_json` wrote."""

    def endpoint(raw: Mapping[str, Any] | None) -> Endpoint | None:
        return None if raw is None else Endpoint(**raw)

    return WorkspaceSpec(
        id=data["id"],
        name=data["name"],
        agents=tuple(
            AgentSpec(**{**a, "tools": tuple(a["tools"]), "examples": tuple(a["examples"])})
            for a in data["agents"]
        ),
        tools=tuple(
            ToolSpec(
                **{**t, "endpoint": endpoint(t["endpoint"]), "cleanup": endpoint(t["cleanup"])}
            )
            for t in data["tools"]
        ),
        mcp_servers=tuple(
            McpServerSpec(**{**m, "command": tuple(m["command"])}) for m in data["mcp_servers"]
        ),
        brains=tuple(BrainSpec(**b) for b in data["brains"]),
        directory=data["directory"],
        patients=tuple(
            PatientSpec(**{**p, **{k: tuple(p[k]) for k in PATIENT_FIELDS}})
            for p in data["patients"]
        ),
    )


# -- where each key is written --------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")

Path_ = tuple[str | int, ...]


class _KeyLines:
    """Finds the line a key was written on, for error messages.

    tomllib keeps no positions, so the text is scanned once: table headers (``[a]``,
    ``[[a]]``, with the index of each array-of-tables entry) and ``key =`` lines give
    each key's path. A key inside an inline table is reported at its table's line.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[Path_, int] = {}
        counts: dict[tuple[str, ...], int] = {}
        table: Path_ = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header is not None:
                names = tuple(_unquote(p) for p in header.group(2).split("."))
                if header.group(1) == "[[":
                    index = counts.get(names, 0)
                    counts[names] = index + 1
                    table = (*self._resolve(names[:-1], counts), names[-1], index)
                else:
                    table = self._resolve(names, counts)
                self._lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key is not None:
                dotted = tuple(_unquote(p) for p in key.group(1).split("."))
                self._lines.setdefault((*table, *dotted), number)

    @staticmethod
    def _resolve(names: tuple[str, ...], counts: Mapping[tuple[str, ...], int]) -> Path_:
        # `[agents.cleanup]` below `[[agents]]` means the latest agent's table.
        path: list[str | int] = []
        for i, name in enumerate(names):
            path.append(name)
            seen = counts.get(names[: i + 1])
            if seen:
                path.append(seen - 1)
        return tuple(path)

    def line(self, path: Path_) -> int | None:
        """The line of *path*, or of its nearest written parent."""
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return None


def _unquote(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        return name[1:-1]
    return name


def _line_of_decode_error(message: str) -> int | None:
    found = re.search(r"line (\d+)", message)
    return int(found.group(1)) if found else None


def _toml_reason(exc: tomllib.TOMLDecodeError) -> str:
    # The message is tomllib's own ("Expected '=' after a key … (at line 3, column 7)"):
    # it quotes no value of the file, only positions.
    return str(getattr(exc, "msg", None) or exc).split(" (at ")[0]


def _key_text(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# -- the reader -------------------------------------------------------------------------


class _Reader:
    """Reads one parsed file, raising :class:`WorkspaceFileError` at the first problem."""

    def __init__(self, data: Mapping[str, Any], lines: _KeyLines, source: str) -> None:
        self._data = data
        self._lines = lines
        self._source = source

    def fail(self, path: Path_, message: str) -> WorkspaceFileError:
        return WorkspaceFileError(self._source, self._lines.line(path), _key_text(path), message)

    # -- typed getters ---------------------------------------------------------------

    def table(self, raw: Any, path: Path_) -> Mapping[str, Any]:
        if not isinstance(raw, Mapping):
            raise self.fail(path, "must be a table")
        return raw

    def known(self, table: Mapping[str, Any], path: Path_, keys: Sequence[str]) -> None:
        for key in table:
            if key not in keys:
                raise self.fail((*path, key), f"unknown key (expected one of: {', '.join(keys)})")

    def text(
        self, table: Mapping[str, Any], path: Path_, key: str, *, default: str | None = None
    ) -> str:
        raw = table.get(key, default)
        if raw is None:
            raise self.fail((*path, key), "is required")
        if not isinstance(raw, str):
            raise self.fail((*path, key), "must be a string")
        return raw.strip()

    def optional_text(self, table: Mapping[str, Any], path: Path_, key: str) -> str | None:
        return self.text(table, path, key) if key in table else None

    def number(
        self, table: Mapping[str, Any], path: Path_, key: str, default: float | None
    ) -> float:
        raw = table.get(key, default)
        if raw is None:
            raise self.fail((*path, key), "is required (seconds)")
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0 or raw > 86_400:
            raise self.fail((*path, key), "must be a number of seconds between 0 and 86400")
        return float(raw)

    def flag(self, table: Mapping[str, Any], path: Path_, key: str, default: bool) -> bool:
        raw = table.get(key, default)
        if not isinstance(raw, bool):
            raise self.fail((*path, key), "must be true or false")
        return raw

    def strings(self, table: Mapping[str, Any], path: Path_, key: str) -> tuple[str, ...]:
        raw = table.get(key, [])
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
            raise self.fail((*path, key), "must be a list of strings")
        return tuple(s.strip() for s in raw)

    def ident(
        self, table: Mapping[str, Any], path: Path_, key: str, pattern: re.Pattern[str]
    ) -> str:
        value = self.text(table, path, key)
        if not pattern.fullmatch(value):
            raise self.fail((*path, key), f"must match {pattern.pattern}")
        return value

    def env_names(
        self, table: Mapping[str, Any], path: Path_, key: str, names: re.Pattern[str]
    ) -> dict[str, str]:
        raw = self.table(table.get(key, {}), (*path, key))
        out: dict[str, str] = {}
        for name, variable in raw.items():
            if not names.fullmatch(name):
                raise self.fail((*path, key, name), f"is not a valid name ({names.pattern})")
            if not isinstance(variable, str) or not ENV_NAME.fullmatch(variable):
                raise self.fail(
                    (*path, key, name),
                    "must name an environment variable (the value itself never goes in the file)",
                )
            out[name] = variable
        return out

    def url(self, table: Mapping[str, Any], path: Path_, key: str) -> str:
        value = self.text(table, path, key)
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise self.fail((*path, key), "must be an http:// or https:// URL")
        return value

    def array(self, key: str) -> list[Mapping[str, Any]]:
        raw = self._data.get(key, [])
        if not isinstance(raw, list):
            raise self.fail((key,), "must be an array of tables ([[" + key + "]])")
        return [self.table(item, (key, i)) for i, item in enumerate(raw)]

    # -- sections ----------------------------------------------------------------------

    def workspace(self, base: Path | None) -> WorkspaceSpec:
        self.known(
            self._data, (), ("workspace", "agents", "tools", "mcp_servers", "brains", "patients")
        )
        head = self.table(self._data.get("workspace"), ("workspace",))
        self.known(head, ("workspace",), ("id", "name"))
        workspace_id = self.ident(head, ("workspace",), "id", ID)
        name = self.text(head, ("workspace",), "name", default=workspace_id)
        brains = self.brains()
        mcp = tuple(
            self.mcp_server(t, ("mcp_servers", i)) for i, t in enumerate(self.array("mcp_servers"))
        )
        tools = tuple(self.tool(t, ("tools", i)) for i, t in enumerate(self.array("tools")))
        self.unique([t.name for t in tools], "tools", "name")
        self.unique([m.name for m in mcp], "mcp_servers", "name")
        for i, server in enumerate(mcp):
            if any(t.name.startswith(server.name + ".") for t in tools):
                raise self.fail(("mcp_servers", i, "name"), "is also the prefix of a tool's name")
        agents = tuple(
            self.agent(a, ("agents", i), tools, mcp, brains)
            for i, a in enumerate(self.array("agents"))
        )
        if not agents:
            raise self.fail(("agents",), "a workspace needs at least one agent ([[agents]])")
        self.unique([a.id for a in agents], "agents", "id")
        primaries = [i for i, a in enumerate(agents) if a.primary]
        if len(primaries) != 1:
            where = ("agents", primaries[1], "primary") if primaries else ("agents",)
            raise self.fail(where, "exactly one agent must have primary = true")
        directory, patients = self.patients(base)
        return WorkspaceSpec(
            id=workspace_id,
            name=name,
            agents=agents,
            tools=tools,
            mcp_servers=mcp,
            brains=tuple(brains.values()),
            directory=directory,
            patients=patients,
        )

    def unique(self, names: Sequence[str], section: str, key: str) -> None:
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise self.fail((section, i, key), "is declared twice")
            seen.add(name)

    def brains(self) -> dict[str, BrainSpec]:
        raw = self.table(self._data.get("brains", {}), ("brains",))
        brains: dict[str, BrainSpec] = {}
        for name, table in raw.items():
            path: Path_ = ("brains", name)
            table = self.table(table, path)
            if not ID.fullmatch(name) or name in BUILTIN_BRAINS:
                raise self.fail(
                    path, f"a brain's name must match {ID.pattern} and not be rule or llm"
                )
            self.known(
                table, path, ("kind", "base_url", "model", "api_key_env", "timeout", "output")
            )
            kind = self.text(table, path, "kind", default="openai")
            if kind != "openai":
                raise self.fail(
                    (*path, "kind"), 'must be "openai" (OpenAI-compatible Chat Completions)'
                )
            output = self.text(table, path, "output", default="tools")
            if output not in ("tools", "json"):
                raise self.fail((*path, "output"), 'must be "tools" or "json"')
            key_env = self.optional_text(table, path, "api_key_env")
            if key_env is not None and not ENV_NAME.fullmatch(key_env):
                raise self.fail((*path, "api_key_env"), "must name an environment variable")
            brains[name] = BrainSpec(
                name=name,
                kind=kind,
                base_url=self.url(table, path, "base_url"),
                model=self.text(table, path, "model"),
                api_key_env=key_env,
                timeout=self.number(table, path, "timeout", 30.0),
                json_mode=output == "json",
            )
        return brains

    def schema(self, table: Mapping[str, Any], path: Path_) -> Mapping[str, Any]:
        raw = table.get("parameters", ANY_ARGUMENTS)
        schema = dict(self.table(raw, (*path, "parameters")))
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "the schema"
            raise self.fail(
                (*path, "parameters"), f"is not a valid JSON Schema (at {where})"
            ) from None
        if schema.get("type", "object") != "object":
            raise self.fail((*path, "parameters"), 'must describe an object (type = "object")')
        return schema

    def endpoint(self, table: Mapping[str, Any], path: Path_) -> Endpoint:
        method = self.text(table, path, "method", default="POST").upper()
        if method not in METHODS:
            raise self.fail((*path, "method"), f"must be one of {', '.join(METHODS)}")
        return Endpoint(
            url=self.url(table, path, "url"),
            method=method,
            headers_from_env=self.env_names(table, path, "headers_from_env", HEADER_NAME),
        )

    def tool(self, table: Mapping[str, Any], path: Path_) -> ToolSpec:
        kind = self.text(table, path, "kind", default="http")
        common = ("name", "kind", "description", "expected_latency", "parameters")
        if kind == "http":
            self.known(
                table, path, (*common, "url", "method", "headers_from_env", "timeout", "cleanup")
            )
            cleanup = None
            if "cleanup" in table:
                cleanup_path = (*path, "cleanup")
                raw = self.table(table["cleanup"], cleanup_path)
                self.known(raw, cleanup_path, ("url", "method", "headers_from_env"))
                cleanup = self.endpoint(raw, cleanup_path)
            return ToolSpec(
                name=self.ident(table, path, "name", TOOL_NAME),
                kind=kind,
                description=self.text(table, path, "description"),
                expected_latency=self.number(table, path, "expected_latency", None),
                parameters=self.schema(table, path),
                endpoint=self.endpoint(table, path),
                cleanup=cleanup,
                timeout=self.number(table, path, "timeout", 10.0),
            )
        if kind == "builtin":
            self.known(table, path, (*common, "options"))
            if table.get("name") not in BUILTIN_TOOLS:
                raise self.fail(
                    (*path, "name"), f"a builtin tool is one of {', '.join(BUILTIN_TOOLS)}"
                )
            options = dict(self.table(table.get("options", {}), (*path, "options")))
            return ToolSpec(
                name=self.ident(table, path, "name", TOOL_NAME),
                kind=kind,
                description=self.text(table, path, "description", default=""),
                expected_latency=(
                    self.number(table, path, "expected_latency", None)
                    if "expected_latency" in table
                    else None
                ),
                parameters=self.schema(table, path) if "parameters" in table else None,
                options=options,
            )
        raise self.fail(
            (*path, "kind"), 'must be "http" or "builtin" (MCP tools come from [[mcp_servers]])'
        )

    def mcp_server(self, table: Mapping[str, Any], path: Path_) -> McpServerSpec:
        self.known(
            table,
            path,
            (
                "name",
                "command",
                "url",
                "env_from",
                "headers_from_env",
                "expected_latency",
                "latency",
                "timeout",
            ),
        )
        name = self.ident(table, path, "name", ID)
        command = self.strings(table, path, "command")
        url = self.url(table, path, "url") if "url" in table else None
        if bool(command) == bool(url):
            raise self.fail(
                path, "an MCP server needs exactly one of command (stdio) or url (HTTP)"
            )
        latency_path = (*path, "latency")
        latency = {}
        for tool, seconds in self.table(table.get("latency", {}), latency_path).items():
            latency[tool] = self.number({tool: seconds}, latency_path, tool, None)
        return McpServerSpec(
            name=name,
            command=command,
            url=url,
            env_from=self.env_names(table, path, "env_from", ENV_NAME),
            headers_from_env=self.env_names(table, path, "headers_from_env", HEADER_NAME),
            expected_latency=self.number(table, path, "expected_latency", 1.0),
            latency=latency,
            timeout=self.number(table, path, "timeout", 30.0),
        )

    def agent(
        self,
        table: Mapping[str, Any],
        path: Path_,
        tools: Sequence[ToolSpec],
        mcp: Sequence[McpServerSpec],
        brains: Mapping[str, BrainSpec],
    ) -> AgentSpec:
        self.known(
            table,
            path,
            ("id", "name", "description", "instructions", "tools", "brain", "primary", "examples"),
        )
        declared = {t.name for t in tools}
        servers = {m.name for m in mcp}
        names = self.strings(table, path, "tools")
        for i, tool in enumerate(names):
            server = tool.split(".", 1)[0]
            if tool not in declared and not (server in servers and "." in tool):
                raise self.fail((*path, "tools", i), f"no tool {tool!r} is declared in this file")
        brain = self.text(table, path, "brain", default="rule")
        if brain not in BUILTIN_BRAINS and brain not in brains:
            raise self.fail(
                (*path, "brain"), f"no brain {brain!r}: use rule, llm or a [brains.NAME]"
            )
        agent_id = self.ident(table, path, "id", ID)
        return AgentSpec(
            id=agent_id,
            name=self.text(table, path, "name", default=agent_id),
            description=self.text(table, path, "description"),
            instructions=self.text(table, path, "instructions", default=""),
            tools=names,
            brain=brain,
            primary=self.flag(table, path, "primary", False),
            examples=self.strings(table, path, "examples"),
        )

    def patients(self, base: Path | None) -> tuple[str, tuple[PatientSpec, ...]]:
        raw = self.table(self._data.get("patients", {"source": "store"}), ("patients",))
        self.known(raw, ("patients",), ("source", "file", "records"))
        source = self.text(raw, ("patients",), "source", default="inline")
        if source == "store":
            if "records" in raw or "file" in raw:
                raise self.fail(("patients", "source"), 'is "store": records and file do not apply')
            return source, ()
        if source != "inline":
            raise self.fail(("patients", "source"), 'must be "inline" or "store"')
        records: list[Any] = list(raw.get("records", []))
        if "file" in raw:
            records.extend(self.patients_file(self.text(raw, ("patients",), "file"), base))
        patients = tuple(self.patient(r, ("patients", "records", i)) for i, r in enumerate(records))
        self.unique([p.id for p in patients], "patients", "id")
        return source, patients

    def patients_file(self, name: str, base: Path | None) -> list[Any]:
        path = (base or Path.cwd()) / name
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise self.fail(
                ("patients", "file"), f"cannot be read as TOML ({type(exc).__name__})"
            ) from None
        records = data.get("records", [])
        if not isinstance(records, list):
            raise self.fail(("patients", "file"), "must hold [[records]] tables")
        return records

    def patient(self, raw: Any, path: Path_) -> PatientSpec:
        table = self.table(raw, path)
        self.known(
            table,
            path,
            (
                "id", "name", "date_of_birth", "mrn", "phone", "onboarding_complete",
                "medications", "allergies", "conditions", "provider", "insurer",
            ),
        )  # fmt: skip
        return PatientSpec(
            id=self.ident(table, path, "id", ID),
            name=self.text(table, path, "name"),
            date_of_birth=self.text(table, path, "date_of_birth", default=""),
            mrn=self.text(table, path, "mrn", default=""),
            phone=self.text(table, path, "phone", default=""),
            onboarding_complete=self.flag(table, path, "onboarding_complete", True),
            medications=self.strings(table, path, "medications"),
            allergies=self.strings(table, path, "allergies"),
            conditions=self.strings(table, path, "conditions"),
            provider=self.text(table, path, "provider", default=""),
            insurer=self.text(table, path, "insurer", default=""),
        )
