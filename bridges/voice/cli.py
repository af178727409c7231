"""The command line: ``python -m bridges.voice`` and ``switchboard bridge``.

Plays a call script, or the lines typed on stdin, as one call; prints what the agent
says as ``AGENT: …`` and, on stderr, how to call back. Exit codes: 0 the call went as
scripted, 1 the call failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import anyio
import anyio.to_thread

from bridges.wire import DEVELOPMENT_SECRET, CloseCode, SpeechState, new_call_id

from .bridge import DEFAULT_WAIT_TIMEOUT, TokenSource, VoiceBridge
from .call import Entry, Received
from .dialing import conversation_ws_url, create_conversation, mint_token
from .exceptions import BridgeError, CallEnded, ScriptError
from .playback import PrintingSpeaker
from .script import Hangup, Say, Step, looks_like_step, parse_script, parse_step

EXIT_OK = 0
EXIT_CALL_FAILED = 1
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bridge's options, for ``python -m bridges.voice`` or a subcommand."""
    parser.add_argument("--server", default="http://127.0.0.1:8000", type=_http_url)
    parser.add_argument("--caller", help="the caller's person id (act_for), to mint a token")
    parser.add_argument("--caller-name", help="the caller's display name")
    parser.add_argument("--workspace", default="demo")
    parser.add_argument("--token", help="a service token acting for the caller")
    parser.add_argument(
        "--secret", help="mint a token with this secret (default: the development secret)"
    )
    parser.add_argument(
        "--call", help="this call's id, for a minted token (default: a new one per run)"
    )
    parser.add_argument("--conversation-id", help="call back on this conversation")
    parser.add_argument(
        "--resume-after", type=int, default=0, help="with --conversation-id: the last seq heard"
    )
    parser.add_argument("--agent-id", help="the primary agent of a new conversation")
    parser.add_argument("--script", type=Path, help="play this call script (default: stdin)")
    parser.add_argument(
        "--wait-timeout", type=float, default=DEFAULT_WAIT_TIMEOUT, help="seconds per wait-for"
    )
    parser.add_argument(
        "--words-per-second", type=float, default=0.0, help="pace playback like speech"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show task events")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bridges.voice``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m bridges.voice",
        description="A reference voice bridge: a scripted or typed phone call (docs/VOICE.md).",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run one call from parsed *args*: 0 done, 1 the call failed, 2 bad usage."""
    # One run is one call: its caller is verified once, and stays so across reconnects.
    args.call = getattr(args, "call", None) or new_call_id()
    try:
        steps = parse_script(args.script.read_text()) if args.script else None
        token = _token(args)
    except (OSError, BridgeError, ValueError) as exc:
        print(f"voice bridge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(anyio.run(_call, args, token, steps))
    except BridgeError as exc:
        print(f"voice bridge: {exc}", file=sys.stderr)
        return EXIT_CALL_FAILED


def _token(args: argparse.Namespace) -> str:
    if args.token:
        return str(args.token)
    if not args.caller:
        raise ValueError("give --token, or --caller to mint one")
    if not args.secret:
        print("voice bridge: warning: signing with the public development secret", file=sys.stderr)
    return _mint(args)


def _mint(args: argparse.Namespace) -> str:
    secret = args.secret or DEVELOPMENT_SECRET
    return mint_token(
        secret,
        workspace=args.workspace,
        caller=args.caller,
        name=args.caller_name,
        call=args.call,
    )


def _token_source(args: argparse.Namespace) -> TokenSource | None:
    """A bridge that mints its callers' tokens renews them itself; a given one cannot."""
    if args.token:
        return None

    async def mint() -> str:
        return _mint(args)

    return mint


async def _call(args: argparse.Namespace, token: str, steps: list[Step] | None) -> int:
    conversation_id = args.conversation_id or await create_conversation(
        args.server, token, args.agent_id
    )
    resume_after = args.resume_after if args.conversation_id else 0
    bridge = VoiceBridge(
        conversation_ws_url(args.server, conversation_id),
        token,
        resume_after=resume_after,
        speaker=PrintingSpeaker(sys.stdout, args.words_per_second),
        observer=_print_tasks if args.verbose else None,
        token_source=_token_source(args),
    )
    failures: list[BridgeError] = []
    async with bridge:
        print(f"voice bridge: connected to conversation {conversation_id}", file=sys.stderr)
        async with anyio.create_task_group() as tg:

            async def caller() -> None:
                try:
                    if steps is None:
                        await _interactive(bridge, args.wait_timeout)
                    else:
                        await _play_script(bridge, steps, args.wait_timeout)
                except BridgeError as exc:
                    failures.append(exc)
                tg.cancel_scope.cancel()

            async def watch() -> None:
                code = await bridge.wait_ended()
                if code != CloseCode.NORMAL_CLOSURE:
                    failures.append(CallEnded(code))
                tg.cancel_scope.cancel()

            tg.start_soon(caller)
            tg.start_soon(watch)
    print(
        f"voice bridge: call ended; call back with --conversation-id {conversation_id} "
        f"--resume-after {bridge.last_seq}",
        file=sys.stderr,
    )
    if failures:
        raise failures[0]
    return EXIT_OK


async def _play_script(bridge: VoiceBridge, steps: Sequence[Step], wait_timeout: float) -> None:
    for step in steps:
        if isinstance(step, Say):
            print(f"CALLER: {step.text}", flush=True)
        await bridge.play(step, wait_timeout=wait_timeout)
        if isinstance(step, Hangup):
            return


async def _interactive(bridge: VoiceBridge, wait_timeout: float) -> None:
    """Each typed line is an utterance (speech started, stopped, then its transcript);
    a script step (``wait-for: …``, ``hangup``) is played as such. EOF hangs up."""
    while True:
        line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if not line:
            return
        try:
            step = parse_step(line) if looks_like_step(line) else None
        except ScriptError as exc:
            print(f"voice bridge: {exc}", file=sys.stderr)
            continue
        if step is None and line.strip():
            step = Say(line.strip())
            print(f"CALLER: {step.text}", flush=True)
            await bridge.speech(SpeechState.STARTED)
            await bridge.speech(SpeechState.STOPPED)
        if step is not None:
            await bridge.play(step, wait_timeout=wait_timeout)
            if isinstance(step, Hangup):
                return


def _print_tasks(entry: Entry) -> None:
    if isinstance(entry, Received) and entry.frame.get("type") == "task":
        task = entry.frame.get("task") or {}
        progress = f" — {task['progress']}" if task.get("progress") else ""
        print(f"  [task] {task.get('title')}: {task.get('state')}{progress}", file=sys.stderr)


def _http_url(value: str) -> str:
    if urllib.parse.urlsplit(value).scheme not in ("http", "https"):
        raise argparse.ArgumentTypeError("must be an http:// or https:// URL")
    return value
