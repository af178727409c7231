"""The ``switchboard`` command: run the server, sign tokens, verify and export the audit trail.

::

    switchboard serve [--host H] [--port P] [--local-model]
    switchboard local-model [--port P] [--threads N]
    switchboard token --workspace W --sub S --role R [--name N] [--act-for P]
                      [--patient ID] [--call ID] [--ttl S]
    switchboard audit verify [--checkpoints PATH] [--public-key FILE]
    switchboard audit export [--since ISO8601] [--output FILE]
    switchboard audit keygen --private-key FILE [--public-key FILE]
    switchboard audit checkpoint [--key FILE] [--to PATH]
    switchboard workspace apply FILE
    switchboard workspace show ID [--json]

Settings come from the environment (:class:`~server.settings.Settings`). Exit codes:
0 success, 1 the audit chain is broken, 2 bad usage or settings, a workspace file
that cannot be applied, or a database that could not be read.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import anyio
import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from agents.exceptions import Unavailable, WorkspaceFileError
from agents.workspace_file import load_workspace_file, spec_from_json
from audit import (
    AuditError,
    AuditRecord,
    InvalidAuditField,
    VerifyReport,
    export_jsonl,
    verify_chain,
)
from audit.checkpoints import (
    CheckpointProblem,
    InvalidCheckpoint,
    generate_key,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    read_checkpoints,
    sign_head,
    verify_with_checkpoints,
    write_checkpoint,
)
from audit.checkpoints import key_id as checkpoint_key_id
from bridges import voice as voice_bridge
from server import local_model, tracing
from server.audit_store import SqlAuditBackend
from server.auth import issue_token
from server.exceptions import SettingsError
from server.logs import AccessLogMiddleware, configure_logging
from server.serving import uvicorn_config
from server.settings import Settings
from server.storage.engine import create_engine_for, create_schema
from server.storage.workspaces import WorkspaceStore
from server.workspaces.apply import apply_spec

if TYPE_CHECKING:
    from starlette.applications import Starlette

log = logging.getLogger("switchboard.cli")

EXIT_OK = 0
EXIT_BROKEN_CHAIN = 1
EXIT_USAGE = 2
# What a shell reports for a command ended by SIGPIPE (128 + 13): the reader left early.
EXIT_BROKEN_PIPE = 141
# Records per read while paging through the trail.
PAGE_SIZE = 1000


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line *argv* (``sys.argv[1:]`` by default); returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except SettingsError as exc:
        # The message names the variable, never its value.
        print(f"switchboard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `switchboard audit export | head`: the reader has all it wanted. Python would
        # print a traceback when it flushes stdout at exit, so stdout is pointed at
        # /dev/null first (what the documentation of signal.SIGPIPE advises).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchboard", description="Real-time server for AI agents with async sub-agents."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="interface to bind (default: $HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: $PORT or 8000)")
    serve.add_argument("--log-level", default="INFO", help="log level (default: INFO)")
    serve.add_argument(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-* from --forwarded-allow-ips (off by default)",
    )
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    serve.add_argument(
        "--local-model",
        action="store_true",
        help="think with the bundled small model, served on loopback beside the node",
    )
    serve.set_defaults(run=_serve)

    model = commands.add_parser(
        "local-model", help="serve the bundled small model (OpenAI-compatible, loopback)"
    )
    local_model.add_arguments(model)
    model.set_defaults(run=local_model.run)

    token = commands.add_parser("token", help="print a signed bearer token")
    token.add_argument("--workspace", required=True)
    token.add_argument("--sub", required=True, help="the principal's id")
    token.add_argument("--role", required=True, choices=["person", "agent", "service", "auditor"])
    token.add_argument("--name", help="display name")
    token.add_argument("--act-for", help="for service tokens: the person it acts for")
    token.add_argument(
        "--patient", help="a patient's token: the one directory record it may see (its id)"
    )
    token.add_argument(
        "--call", help="a service token for a phone call: its caller is verified by the agent"
    )
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds (default: 3600)")
    token.set_defaults(run=_token)

    audit = commands.add_parser("audit", help="the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_commands.add_parser(
        "verify", help="check the whole hash chain; exit 1 naming the first bad record"
    )
    verify.add_argument(
        "--checkpoints",
        type=Path,
        metavar="PATH",
        help="also check against the signed checkpoints in this directory or file",
    )
    verify.add_argument(
        "--public-key",
        type=Path,
        metavar="FILE",
        help="the key checkpoints are signed with (default: $SWITCHBOARD_AUDIT_PUBLIC_KEY, "
        "or the public half of $SWITCHBOARD_AUDIT_SIGNING_KEY)",
    )
    verify.set_defaults(run=_audit_verify)
    keygen = audit_commands.add_parser(
        "keygen", help="make an Ed25519 key pair for signing checkpoints"
    )
    keygen.add_argument("--private-key", type=Path, required=True, metavar="FILE")
    keygen.add_argument(
        "--public-key", type=Path, metavar="FILE", help="default: the private key's path + .pub"
    )
    keygen.set_defaults(run=_audit_keygen)
    checkpoint = audit_commands.add_parser(
        "checkpoint", help="sign the chain's head and keep it outside the database"
    )
    checkpoint.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="the private key (default: $SWITCHBOARD_AUDIT_SIGNING_KEY)",
    )
    checkpoint.add_argument(
        "--to",
        metavar="PATH",
        help="a directory (a file each), a file to append to, or - for stdout "
        "(default: $SWITCHBOARD_AUDIT_CHECKPOINTS)",
    )
    checkpoint.set_defaults(run=_audit_checkpoint)
    export = audit_commands.add_parser("export", help="write the trail as JSON Lines")
    export.add_argument(
        "--since",
        type=_timestamp,
        help="start at the first record at or after this ISO 8601 time (UTC if no offset)",
    )
    export.add_argument("--output", type=Path, help="file to write (default: stdout)")
    export.set_defaults(run=_audit_export)

    workspace = commands.add_parser("workspace", help="workspaces from files (docs/WORKSPACES.md)")
    workspace_commands = workspace.add_subparsers(
        dest="workspace_command", required=True, metavar="ACTION"
    )
    apply = workspace_commands.add_parser(
        "apply", help="create or update a workspace from its TOML file (idempotent)"
    )
    apply.add_argument("file", type=Path, help="the workspace file")
    apply.set_defaults(run=_workspace_apply)
    show = workspace_commands.add_parser("show", help="print a stored workspace")
    show.add_argument("id", help="the workspace id")
    show.add_argument("--json", action="store_true", help="the stored spec as JSON")
    show.set_defaults(run=_workspace_show)

    bridge = commands.add_parser("bridge", help="the reference voice bridge (docs/VOICE.md)")
    voice_bridge.add_arguments(bridge)
    bridge.set_defaults(run=voice_bridge.run)
    return parser


# -- serve ---------------------------------------------------------------------------


class SwitchboardServer(uvicorn.Server):
    """uvicorn, with sockets closed 1001 (PROTOCOL.md) before uvicorn's own shutdown.

    uvicorn would close open WebSockets with 1012 before the lifespan ends; closing them
    here first, as the node does, lets clients know to reconnect and resume.
    """

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self._starlette = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Stop accepting first, so that no socket opens after the others were closed.
        for server in self.servers:
            server.close()
        node = getattr(self._starlette.state, "node", None)
        if node is not None:
            try:
                await node.sessions.close_all()
            except Exception as exc:
                log.error("closing sockets failed", extra={"error": type(exc).__name__})
        await super().shutdown(sockets)


def _serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_level.upper())
    settings = Settings.from_env()
    if settings.audit_checkpoint_every is not None and settings.audit_signing_key is not None:
        # Read now, so that a missing key stops the start with a message, not a trace.
        try:
            load_private_key(settings.audit_signing_key)
        except InvalidCheckpoint as exc:
            print(f"switchboard serve: SWITCHBOARD_AUDIT_SIGNING_KEY: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if settings.secret_is_default:
        log.warning(
            "SWITCHBOARD_SECRET is not set: tokens are signed with the public development "
            "secret, so anyone can forge them; demo mode is on. Never deploy this way."
        )
    # Imported here: the app pulls in the whole runtime, which the other commands skip.
    from server.app import create_app

    with ExitStack() as stack:
        stack.enter_context(tracing.exporting(settings.node_id))
        if args.local_model:
            try:
                url = stack.enter_context(local_model.started())
            except local_model.LocalModelError as exc:
                print(f"switchboard: {exc}", file=sys.stderr)
                return EXIT_USAGE
            settings = replace(
                settings, llm_url=url, llm_model=local_model.MODEL_NAME, llm_json=True
            )
            log.info("local model started", extra={"model": local_model.MODEL_NAME})
        _run_server(create_app(settings), settings, args)
    return EXIT_OK


def _run_server(app: Starlette, settings: Settings, args: argparse.Namespace) -> None:
    host = args.host or settings.host
    port = args.port or settings.port
    config = uvicorn_config(
        AccessLogMiddleware(app),
        settings,
        host=host,
        port=port,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    log.info("starting", extra={"host": host, "port": port, "node_id": settings.node_id})
    # Server.run installs SIGINT/SIGTERM handlers and shuts down gracefully on either.
    SwitchboardServer(config, app).run()


# -- token ---------------------------------------------------------------------------


def _token(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        token = issue_token(
            settings.secret,
            workspace=args.workspace,
            sub=args.sub,
            role=args.role,
            name=args.name,
            act_for=args.act_for,
            patient=args.patient,
            call=args.call,
            ttl=args.ttl,
        )
    except ValueError as exc:
        print(f"switchboard token: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if settings.secret_is_default:
        print(
            "switchboard token: warning: signed with the public development secret",
            file=sys.stderr,
        )
    print(token)
    return EXIT_OK


# -- audit ---------------------------------------------------------------------------


@contextmanager
def _audit_backend() -> Iterator[SqlAuditBackend]:
    engine = create_engine_for(Settings.from_env().database_url)
    try:
        yield SqlAuditBackend(engine)
    finally:
        engine.dispose()


def _records(backend: SqlAuditBackend) -> Iterator[AuditRecord]:
    after = 0
    while True:
        page = backend.read(after_seq=after, limit=PAGE_SIZE)
        yield from page
        if len(page) < PAGE_SIZE:
            return
        after = page[-1].seq


def _audit_verify(args: argparse.Namespace) -> int:
    if args.checkpoints is not None:
        return _audit_verify_checkpoints(args)
    with _audit_backend() as backend:
        try:
            report = verify_chain(_records(backend))
        except InvalidAuditField as exc:
            # A stored row that no longer reads back as a record was changed by hand.
            print(f"audit trail BROKEN: {exc}")
            return EXIT_BROKEN_CHAIN
        except AuditError as exc:
            print(f"switchboard audit verify: cannot read the trail: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if report.ok:
        print(
            f"audit trail intact: {report.checked} records, last seq {report.last_seq}, "
            f"head hash {report.head_hash}"
        )
        return EXIT_OK
    _print_broken(report)
    return EXIT_BROKEN_CHAIN


def _print_broken(report: VerifyReport) -> None:
    record = report.record_id or "missing"
    print(
        f"audit trail BROKEN at seq {report.seq} (record {record}): "
        f"{report.problem}: {report.detail}\n"
        f"{report.checked} records verified before it, last good seq {report.last_seq}, "
        f"head hash {report.head_hash}"
    )


def _audit_verify_checkpoints(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    key_path = args.public_key or settings.audit_public_key or settings.audit_signing_key
    if key_path is None:
        print(
            "switchboard audit verify: --checkpoints needs --public-key "
            "(or SWITCHBOARD_AUDIT_PUBLIC_KEY)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not args.checkpoints.exists():
        print(f"switchboard audit verify: no {args.checkpoints}", file=sys.stderr)
        return EXIT_USAGE
    try:
        key = load_public_key(key_path)
        with _audit_backend() as backend:
            report = verify_with_checkpoints(
                _records(backend), read_checkpoints(args.checkpoints), key
            )
    except InvalidCheckpoint as exc:
        print(f"switchboard audit verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except InvalidAuditField as exc:
        print(f"audit trail BROKEN: {exc}")
        return EXIT_BROKEN_CHAIN
    except AuditError as exc:
        print(f"switchboard audit verify: cannot read the trail: {exc}", file=sys.stderr)
        return EXIT_USAGE
    chain = report.chain
    if report.ok:
        print(
            f"audit trail intact: {chain.checked} records, last seq {chain.last_seq}, "
            f"head hash {chain.head_hash}; {report.matched} checkpoints agree, "
            f"the newest at seq {report.newest_seq}"
        )
        return EXIT_OK
    if isinstance(report.problem, CheckpointProblem):
        print(f"audit trail BROKEN: {report.problem}: {report.detail}")
        if report.problem is not CheckpointProblem.BAD_CHECKPOINT:
            print(
                f"{chain.checked} records in an intact chain, last seq {chain.last_seq}; "
                f"{report.matched} of {report.checkpoints} checkpoints agree"
            )
    else:
        _print_broken(chain)
    return EXIT_BROKEN_CHAIN


def _audit_keygen(args: argparse.Namespace) -> int:
    public_path = args.public_key or args.private_key.with_name(args.private_key.name + ".pub")
    for path in (args.private_key, public_path):
        if path.exists():
            print(f"switchboard audit keygen: {path} exists; not replaced", file=sys.stderr)
            return EXIT_USAGE
    key = generate_key()
    # Created readable by its owner only, and never over an existing file.
    fd = os.open(args.private_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private_key_pem(key))
    public_path.write_bytes(public_key_pem(key.public_key()))
    print(
        f"signing key {checkpoint_key_id(key.public_key())}: private {args.private_key} "
        f"(keep it off the database host), public {public_path}"
    )
    return EXIT_OK


def _audit_checkpoint(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    key_path = args.key or settings.audit_signing_key
    target = args.to or (settings.audit_checkpoints and str(settings.audit_checkpoints))
    if key_path is None or target is None:
        print(
            "switchboard audit checkpoint: needs --key and --to "
            "(or SWITCHBOARD_AUDIT_SIGNING_KEY and SWITCHBOARD_AUDIT_CHECKPOINTS)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        key = load_private_key(key_path)
        with _audit_backend() as backend:
            checkpoint = sign_head(key, backend.head(), datetime.now(UTC))
        if target == "-":
            print(checkpoint.to_json())
            where = "stdout"
        else:
            where = str(write_checkpoint(checkpoint, Path(target)))
    except (AuditError, OSError) as exc:
        print(f"switchboard audit checkpoint: failed: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"checkpoint of seq {checkpoint.seq} (head hash {checkpoint.hash}) written to {where}",
        file=sys.stderr,
    )
    return EXIT_OK


def _audit_export(args: argparse.Namespace) -> int:
    try:
        with _audit_backend() as backend:
            if args.output is None:
                written = export_jsonl(_records(backend), sys.stdout, since=args.since)
            else:
                written = _export_to_file(backend, args.output, args.since)
    except AuditError as exc:
        print(f"switchboard audit export: failed: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"exported {written} audit records", file=sys.stderr)
    return EXIT_OK


def _export_to_file(backend: SqlAuditBackend, path: Path, since: datetime | None) -> int:
    # Written beside the target and renamed into place: a failed export never leaves a
    # truncated file that looks like a complete one.
    directory = path.resolve().parent
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        out: TextIO
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            written = export_jsonl(_records(backend), out, since=since)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return written


# -- workspace -----------------------------------------------------------------------


def _workspace_apply(args: argparse.Namespace) -> int:
    # Read and validated before the database is opened: a bad file touches nothing.
    try:
        spec = load_workspace_file(args.file)
    except WorkspaceFileError as exc:
        print(f"switchboard workspace apply: {exc}", file=sys.stderr)
        return EXIT_USAGE
    engine = create_engine_for(Settings.from_env().database_url)
    try:
        create_schema(engine)
        applied = anyio.run(apply_spec, WorkspaceStore(engine), spec)
    except (Unavailable, SQLAlchemyError) as exc:
        print(
            f"switchboard workspace apply: the database refused ({type(exc).__name__})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    finally:
        engine.dispose()
    what = (
        f"{len(spec.agents)} agents, {len(spec.tools)} tools, "
        f"{len(spec.mcp_servers)} MCP servers, "
        + (f"{len(spec.patients)} patients" if spec.directory == "inline" else "patients kept")
    )
    if applied.changed:
        print(f"workspace {spec.id} applied: revision {applied.revision} ({what})")
    else:
        print(f"workspace {spec.id} unchanged at revision {applied.revision} ({what})")
    return EXIT_OK


def _workspace_show(args: argparse.Namespace) -> int:
    engine = create_engine_for(Settings.from_env().database_url)
    try:
        create_schema(engine)
        stored = anyio.run(WorkspaceStore(engine).get, args.id)
    except (Unavailable, SQLAlchemyError) as exc:
        print(
            f"switchboard workspace show: the database refused ({type(exc).__name__})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    finally:
        engine.dispose()
    if stored is None:
        print(f"switchboard workspace show: no workspace {args.id!r}", file=sys.stderr)
        return EXIT_USAGE
    spec = spec_from_json(stored.spec)
    # Patients are PHI: shown by count, never by content.
    shown = {**stored.spec, "patients": len(spec.patients)}
    if args.json:
        print(json.dumps({"revision": stored.revision, "spec": shown}, indent=2))
        return EXIT_OK
    print(f"workspace {spec.id} ({spec.name}), revision {stored.revision}")
    print(f"  digest {stored.digest}")
    print("agents:")
    for agent in spec.agents:
        mark = " (primary)" if agent.primary else ""
        print(f"  {agent.id}{mark}: {agent.name} — {agent.description}")
        print(f"    brain {agent.brain}; tools {', '.join(agent.tools) or 'none'}")
    print("tools:")
    for tool in spec.tools:
        where = tool.endpoint.method + " " + tool.endpoint.url if tool.endpoint else "builtin"
        latency = "its own" if tool.expected_latency is None else f"{tool.expected_latency:g} s"
        print(f"  {tool.name} ({tool.kind}, expected {latency}): {where}")
    for server in spec.mcp_servers:
        where = server.url or " ".join(server.command)
        print(f"  {server.name}.* (MCP): {where}")
    for brain in spec.brains:
        print(f"brain {brain.name}: {brain.kind} {brain.model} at {brain.base_url}")
    directory = f"inline, {len(spec.patients)} patients" if spec.directory == "inline" else "store"
    print(f"patients: {directory}")
    return EXIT_OK


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


if __name__ == "__main__":
    sys.exit(main())
