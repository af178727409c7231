"""A reference telephony bridge: one phone call carried over one conversation socket.

A real bridge sits between a telephony provider (Twilio Media Streams, Pipecat,
LiveKit) and Switchboard, and maps the call's events onto the ``voice`` frames of
PROTOCOL.md: the caller's voice activity becomes ``speech`` ``started``/``stopped``,
each final transcript becomes ``say``, and every agent message with ``speak: true`` is
spoken; when the caller starts speaking, whatever is still playing is cut (barge-in).
This one has text at both ends — transcripts come from a script or from stdin, and
"speaking" prints ``AGENT: …`` — so it runs anywhere and drives the end-to-end tests.
``docs/VOICE.md`` maps real providers' events onto the same calls.

::

    python -m server.voice_bridge --server http://127.0.0.1:8000 --caller caller-1 \\
        --script docs/voice/prior-auth-call.txt

Layers, as in ``websockets``: :func:`parse_script` and :class:`CallState` are sans-I/O
(text and frames in, steps, events and frames out) and unit-tested without sockets;
:class:`VoiceBridge` is the thin I/O loop around them, and :class:`Speaker` is the
pluggable text-to-speech edge.

Errors::

    BridgeError                 anything this module raises on purpose
    ├── ScriptError             a script line that cannot be read (names its line)
    ├── CallEnded               the server closed the call, or refused to start it
    ├── Refused                 the server answered a request with an error code
    └── WaitTimeout             the agent did not say what was waited for in time
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TextIO, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
from anyio.abc import TaskGroup
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.auth import issue_token
from server.protocol import CloseCode, SpeechState
from server.settings import DEVELOPMENT_SECRET

T = TypeVar("T")

BRIDGE_ID = "voice-bridge"
"""The ``sub`` of the service tokens this bridge mints for its callers."""
DEFAULT_WAIT_TIMEOUT = 30.0
ANSWER_TIMEOUT = 10.0
PLAYBACK_QUEUE_SIZE = 64
RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)
# Close codes after which PROTOCOL.md says to reconnect with resume_after; 1006 is a
# dropped connection (no close frame), the usual way a network blip looks.
RESUMABLE = frozenset(
    {
        CloseCode.GOING_AWAY,
        CloseCode.INTERNAL_ERROR,
        CloseCode.SLOW_CONSUMER,
        CloseCode.RATE_LIMITED,
        1006,
    }
)

EXIT_OK = 0
EXIT_CALL_FAILED = 1
EXIT_USAGE = 2


class BridgeError(Exception):
    """Base of this module's errors."""


class ScriptError(BridgeError, ValueError):
    """A call script that cannot be read; ``line`` is 1-based."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line


class CallEnded(BridgeError):
    """The server closed the call (or never opened it) with close ``code``."""

    def __init__(self, code: int) -> None:
        try:
            reason = f"{CloseCode(code).reason} "
        except ValueError:
            reason = ""
        super().__init__(f"the call ended: {reason}(close code {code})")
        self.code = code


class Refused(BridgeError):
    """The server refused a request: an ``error`` frame, or an HTTP error."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"refused: {code}" + (f" ({detail})" if detail else ""))
        self.code = code


class WaitTimeout(BridgeError, TimeoutError):
    """What was waited for did not happen in time."""


# -- call scripts ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Say:
    """The caller's final transcript: sent as ``say``."""

    text: str


@dataclass(frozen=True, slots=True)
class Speech:
    """The caller's voice activity: sent as ``speech``."""

    state: SpeechState


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


@dataclass(frozen=True, slots=True)
class WaitFor:
    """Wait until the agent says something containing ``text`` (any case)."""

    text: str
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


Step = Say | Speech | Wait | WaitFor | Hangup

_BARE: Mapping[str, Step] = {
    "speak-start": Speech(SpeechState.STARTED),
    "speak-stop": Speech(SpeechState.STOPPED),
    "hangup": Hangup(),
}


def parse_step(line: str, *, line_number: int = 1) -> Step | None:
    """One script line as a step; ``None`` for a blank line or a ``#`` comment.

    A line is ``say: <text>``, ``speak-start``, ``speak-stop``, ``wait: <seconds>``,
    ``wait-for: <text>`` or ``hangup``; a line starting with ``{`` is a JSON object
    (see :func:`_json_step`). Raises :class:`ScriptError` for anything else.
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            raise ScriptError(line_number, "not valid JSON") from None
        if not isinstance(obj, dict):
            raise ScriptError(line_number, "a JSON step must be an object")
        return _json_step(obj, line_number)
    name, colon, argument = text.partition(":")
    name = name.strip().lower()
    if not colon:
        if name in _BARE:
            return _BARE[name]
        raise ScriptError(line_number, f"unknown step {name!r}")
    return _step(name, argument.strip(), line_number)


def parse_script(text: str) -> list[Step]:
    """Every step of a call script, in order; raises :class:`ScriptError`."""
    steps = [parse_step(line, line_number=n) for n, line in enumerate(text.splitlines(), 1)]
    return [step for step in steps if step is not None]


def _step(name: str, argument: str, line: int) -> Step:
    if name in _BARE:
        raise ScriptError(line, f"{name!r} takes no argument")
    if name == "say":
        if not argument:
            raise ScriptError(line, "say: needs the caller's words")
        return Say(argument)
    if name == "wait":
        return Wait(_seconds(argument, line))
    if name == "wait-for":
        if not argument:
            raise ScriptError(line, "wait-for: needs the text to wait for")
        return WaitFor(argument)
    raise ScriptError(line, f"unknown step {name!r}")


def _json_step(obj: Mapping[str, Any], line: int) -> Step:
    """``{"say": str}``, ``{"speech": "started"|"stopped"}``, ``{"wait": seconds}``,
    ``{"wait-for": str, "timeout": seconds}`` or ``{"hangup": true}``."""
    keys = set(obj) - {"timeout"}
    if len(keys) != 1 or ("timeout" in obj and keys != {"wait-for"}):
        raise ScriptError(
            line, "a JSON step has exactly one of say, speech, wait, wait-for, hangup"
        )
    (name,) = keys
    value = obj[name]
    if name == "speech":
        try:
            return Speech(SpeechState(value))
        except ValueError:
            raise ScriptError(line, 'speech is "started" or "stopped"') from None
    if name == "hangup":
        if value is not True:
            raise ScriptError(line, "hangup must be true")
        return Hangup()
    if name == "wait":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScriptError(line, "wait must be a number of seconds")
        return Wait(_seconds(str(value), line))
    if name in ("say", "wait-for"):
        if not isinstance(value, str) or not value.strip():
            raise ScriptError(line, f"{name} must be non-empty text")
        if name == "say":
            return Say(value.strip())
        timeout = obj.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float)
        ):
            raise ScriptError(line, "timeout must be a number of seconds")
        return WaitFor(value.strip(), None if timeout is None else _seconds(str(timeout), line))
    raise ScriptError(line, f"unknown step {name!r}")


def _seconds(value: str, line: int) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ScriptError(line, "expected a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ScriptError(line, "seconds must be a finite number >= 0")
    return seconds


# -- the protocol, without I/O ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Welcomed:
    conversation_id: str | None
    last_seq: int


@dataclass(frozen=True, slots=True)
class AgentMessage:
    """An agent's message from the stream; ``speak`` as the server marked it."""

    seq: int
    kind: str
    text: str
    speak: bool
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class TaskChanged:
    seq: int
    task: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Answered:
    """An ``ack``; ``seq`` is that of what was stored."""

    id: str
    seq: int | None


@dataclass(frozen=True, slots=True)
class Failed:
    """An ``error`` frame; ``id`` is that of the refused frame, if it had one."""

    id: str | None
    code: str


Event = Welcomed | AgentMessage | TaskChanged | Answered | Failed


class CallState:
    """The bridge's side of one conversation's wire protocol: frames in, events out.

    ``last_seq`` is the resume point: every stream event up to it has been received.
    It is not simply the highest ``seq`` seen, because a voice connection receives
    held ``progress``/``followup`` messages after events stored later (PROTOCOL.md,
    Voice); resuming from the highest would skip a held message. Events above it that
    already arrived are remembered, so that a replay never repeats one.
    """

    def __init__(self, resume_after: int = 0) -> None:
        self.last_seq = resume_after
        self.conversation_id: str | None = None
        self.speaking = False
        self._ahead: set[int] = set()
        self._next_id = 0

    def hello(self, token: str) -> dict[str, Any]:
        """The first frame of every connection: resume where the call left off."""
        return {"type": "hello", "token": token, "client": "voice", "resume_after": self.last_seq}

    def say(self, text: str) -> dict[str, Any]:
        self._next_id += 1
        return {"type": "say", "id": f"say-{self._next_id}", "text": text}

    def speech(self, state: SpeechState) -> dict[str, Any]:
        self.speaking = state is SpeechState.STARTED
        return {"type": "speech", "state": state.value}

    def receive(self, frame: Mapping[str, Any]) -> Event | None:
        """The event a server frame means; ``None`` for frames a bridge ignores
        (replayed duplicates, the caller's own messages, types added later)."""
        kind = frame.get("type")
        if kind == "welcome":
            self.conversation_id = _str(frame.get("conversation_id"))
            return Welcomed(self.conversation_id, _int(frame.get("last_seq")) or 0)
        if kind == "ack":
            return Answered(str(frame.get("id")), _int(frame.get("seq")))
        if kind == "error":
            return Failed(_str(frame.get("id")), str(frame.get("code")))
        seq = _int(frame.get("seq"))
        if seq is None or not self._first_time(seq):
            return None
        if kind == "message" and frame.get("role") == "agent":
            return AgentMessage(
                seq,
                str(frame.get("kind")),
                str(frame.get("text", "")),
                frame.get("speak") is True,
                _str(frame.get("task_id")),
            )
        task = frame.get("task")
        if kind == "task" and isinstance(task, Mapping):
            return TaskChanged(seq, task)
        return None

    def _first_time(self, seq: int) -> bool:
        if seq <= self.last_seq or seq in self._ahead:
            return False
        self._ahead.add(seq)
        while self.last_seq + 1 in self._ahead:
            self.last_seq += 1
            self._ahead.remove(self.last_seq)
        return True


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


# -- the call's record ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    at: float
    frame: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Received:
    at: float
    frame: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PlaybackStopped:
    """Barge-in: the caller spoke over these messages, so they were cut."""

    at: float
    cut: tuple[AgentMessage, ...]


@dataclass(frozen=True, slots=True)
class Disconnected:
    at: float
    code: int


Entry = Sent | Received | PlaybackStopped | Disconnected


# -- speaking ------------------------------------------------------------------------------


class Speaker(Protocol):
    """The text-to-speech edge: what the caller hears."""

    async def speak(self, text: str) -> None:
        """Say *text*; return once it has been heard. Cancelled on barge-in."""

    def stop(self) -> None:
        """Barge-in: drop whatever audio is still buffered (Twilio's ``clear``)."""


@dataclass
class PrintingSpeaker:
    """Speaks by printing ``AGENT: …``; *words_per_second* > 0 paces it like speech."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    words_per_second: float = 0.0

    async def speak(self, text: str) -> None:
        print(f"AGENT: {text}", file=self.out, flush=True)
        if self.words_per_second > 0:
            await anyio.sleep(len(text.split()) / self.words_per_second)
        else:
            await anyio.lowlevel.checkpoint()

    def stop(self) -> None:
        print("  (the caller spoke: playback stopped)", file=self.out, flush=True)


class Playback:
    """Agent messages waiting to be spoken, spoken one at a time, cut on barge-in.

    *on_heard* is called with each message once it has been spoken to the end.
    """

    def __init__(self, speaker: Speaker, on_heard: Callable[[AgentMessage], None]) -> None:
        self.speaker = speaker
        self._on_heard = on_heard
        # Bounded: when full, queue() waits, so the bridge stops reading its socket;
        # the server then closes it with 4001 and the bridge resumes from last_seq.
        self._send, self._receive = anyio.create_memory_object_stream[AgentMessage](
            PLAYBACK_QUEUE_SIZE
        )
        self._current: AgentMessage | None = None
        self._scope: anyio.CancelScope | None = None

    async def queue(self, message: AgentMessage) -> None:
        await self._send.send(message)

    def close(self) -> None:
        self._send.close()
        self._receive.close()

    async def run(self) -> None:
        """Speak queued messages until cancelled."""
        with self._send, self._receive:
            async for message in self._receive:
                with anyio.CancelScope() as scope:
                    self._current, self._scope = message, scope
                    try:
                        await self.speaker.speak(message.text)
                        self._on_heard(message)
                    finally:
                        self._current, self._scope = None, None

    def stop(self) -> tuple[AgentMessage, ...]:
        """Cut what is playing and drop what is queued; returns what was cut."""
        cut = [] if self._current is None else [self._current]
        if self._scope is not None:
            self._scope.cancel()
        while True:
            try:
                cut.append(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
        if cut:
            self.speaker.stop()
        return tuple(cut)


# -- the bridge: I/O -----------------------------------------------------------------------


class VoiceBridge:
    """One call: a ``voice`` connection to a conversation, kept open until hung up.

    Use as ``async with VoiceBridge(...) as call:``; leaving the block hangs up. A
    connection the server closes with a resumable code (1001, 1011, 4001, 4429, or a
    dropped network) is reopened with ``resume_after``; if the caller was speaking, the
    new connection is told so. ``log`` records every frame sent and received, and every
    barge-in, with ``time.monotonic()`` stamps; ``received`` holds every agent message
    in the order it arrived, ``heard`` those spoken to the end (not cut by barge-in).
    """

    def __init__(
        self,
        ws_url: str,
        token: str,
        *,
        resume_after: int = 0,
        speaker: Speaker | None = None,
        observer: Callable[[Entry], None] | None = None,
    ) -> None:
        self.ws_url = ws_url
        self.state = CallState(resume_after)
        self.playback = Playback(speaker or PrintingSpeaker(), self._on_heard)
        self.log: list[Entry] = []
        self.received: list[AgentMessage] = []
        self.heard: list[AgentMessage] = []
        self.ended: int | None = None
        self._token = token
        self._observer = observer
        self._socket: ClientConnection | None = None
        self._answers: dict[str, Answered | Failed] = {}
        self._changed = anyio.Event()
        self._matched: set[int] = set()
        self._hung_up = False
        self._stack = AsyncExitStack()
        self._tg: TaskGroup | None = None

    @property
    def last_seq(self) -> int:
        """Resume here when calling back (``resume_after``)."""
        return self.state.last_seq

    async def __aenter__(self) -> VoiceBridge:
        try:
            socket = await self._open()
        except BaseException:
            self.playback.close()
            raise
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        self._tg.start_soon(self._keep_connected, socket)
        self._tg.start_soon(self.playback.run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.hangup()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        if exc is None or isinstance(exc, anyio.get_cancelled_exc_class()):
            # A cancellation must reach the scope it belongs to, if it is the group's.
            return await self._stack.__aexit__(exc_type, exc, tb)
        # The caller's own error: end the group as if the block had finished, so the
        # error propagates as itself rather than wrapped in an ExceptionGroup.
        await self._stack.__aexit__(None, None, None)
        return None

    # -- what the call does --------------------------------------------------------------

    async def say(self, text: str) -> int | None:
        """Send the caller's final transcript; returns the ``seq`` it was stored with.

        Raises :class:`Refused` if the server answers with an error, and
        :class:`CallEnded` if the call ends (or the connection drops) first.
        """
        frame = self.state.say(text)
        socket = await self._send(frame)

        def answer() -> Answered | Failed | None:
            found = self._answers.pop(frame["id"], None)
            if found is None and self._socket is not socket:
                # Lost with the connection: whether it was stored shows in the replay.
                raise CallEnded(self.ended or 1006)
            return found

        found: Answered | Failed = await self.wait_until(answer)
        if isinstance(found, Failed):
            raise Refused(found.code)
        return found.seq

    async def speech(self, state: SpeechState) -> None:
        """The caller's voice activity. Starting to speak cuts the agent off (barge-in)."""
        if state is SpeechState.STARTED:
            cut = self.playback.stop()
            if cut:
                self._record(PlaybackStopped(time.monotonic(), cut))
        await self._send(self.state.speech(state))

    async def wait_for_text(self, text: str) -> AgentMessage:
        """Wait until the agent has said something containing *text* (any case): a
        message spoken to the end, as the caller heard it.

        A message already said counts, unless an earlier wait took it: a script need
        not know whether the agent spoke before or after its wait began.
        """
        needle = _fold(text)

        def find() -> AgentMessage | None:
            for index, message in enumerate(self.heard):
                if index not in self._matched and needle in _fold(message.text):
                    self._matched.add(index)
                    return message
            return None

        return await self.wait_until(find)

    async def wait_until(self, check: Callable[[], T | None]) -> T:
        """Re-run *check* after every frame (and change of connection) until it returns
        a value; raises :class:`CallEnded` if the call ends first."""
        while True:
            found = check()
            if found is not None:
                return found
            if self.ended is not None:
                raise CallEnded(self.ended)
            await self._changed.wait()

    async def wait_ended(self) -> int:
        """Wait until the server ends the call; returns its close code."""
        while self.ended is None:
            await self._changed.wait()
        return self.ended

    async def hangup(self) -> None:
        """End the call: close the socket (1000). Background work goes on."""
        self._hung_up = True
        socket, self._socket = self._socket, None
        if socket is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await socket.close()
        self._end(CloseCode.NORMAL_CLOSURE)

    async def play(self, step: Step, *, wait_timeout: float = DEFAULT_WAIT_TIMEOUT) -> None:
        """Perform one script step."""
        if isinstance(step, Say):
            await self.say(step.text)
        elif isinstance(step, Speech):
            await self.speech(step.state)
        elif isinstance(step, Wait):
            await anyio.sleep(step.seconds)
        elif isinstance(step, WaitFor):
            timeout = step.timeout or wait_timeout
            try:
                with anyio.fail_after(timeout):
                    await self.wait_for_text(step.text)
            except TimeoutError:
                raise WaitTimeout(
                    f"the agent did not say {step.text!r} within {timeout:g} s"
                ) from None
        else:
            await self.hangup()

    # -- the connection -----------------------------------------------------------------

    async def _open(self) -> ClientConnection:
        """Connect, say hello, and wait for ``welcome``; raises :class:`CallEnded`."""
        try:
            socket = await connect(self.ws_url, max_size=2**20, open_timeout=10, close_timeout=2)
        except OSError:
            raise CallEnded(1006) from None
        try:
            await socket.send(json.dumps(self.state.hello(self._token)))
            with anyio.fail_after(ANSWER_TIMEOUT):
                while not isinstance(await self._on_frame(await socket.recv()), Welcomed):
                    pass
            if self.state.speaking:
                # A new connection knows nothing of the caller's voice activity.
                frame = self.state.speech(SpeechState.STARTED)
                await socket.send(json.dumps(frame))
                self._record(Sent(time.monotonic(), frame))
        except ConnectionClosed:
            raise CallEnded(socket.close_code or 1006) from None
        except TimeoutError:
            await socket.close()
            raise CallEnded(1006) from None
        self._socket = socket
        self._notify()
        return socket

    async def _keep_connected(self, socket: ClientConnection) -> None:
        while True:
            try:
                async for raw in socket:
                    await self._on_frame(raw)
            except ConnectionClosed:
                pass
            code = socket.close_code or 1006
            if self._hung_up:
                return
            self._socket = None
            self._record(Disconnected(time.monotonic(), code))
            reopened = await self._reopen() if code in RESUMABLE else None
            if reopened is None:
                self._end(code)
                return
            socket = reopened

    async def _reopen(self) -> ClientConnection | None:
        for delay in RECONNECT_DELAYS:
            await anyio.sleep(delay)
            if self._hung_up:
                return None
            try:
                return await self._open()
            except CallEnded as ended:
                if ended.code not in RESUMABLE:
                    return None
        return None

    async def _on_frame(self, raw: str | bytes) -> Event | None:
        try:
            frame = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(frame, dict):
            return None
        self._record(Received(time.monotonic(), frame))
        event = self.state.receive(frame)
        if isinstance(event, AgentMessage):
            self.received.append(event)
            if event.speak:
                await self.playback.queue(event)
        elif isinstance(event, Answered | Failed) and event.id is not None:
            self._answers[event.id] = event
        self._notify()
        return event

    async def _send(self, frame: Mapping[str, Any]) -> ClientConnection:
        """Send *frame* on the current connection, waiting out a reconnection (they are
        bounded); raises :class:`CallEnded` once the call is over."""
        while True:
            socket = await self.wait_until(lambda: self._socket)
            try:
                await socket.send(json.dumps(frame))
            except ConnectionClosed:
                # Refused before anything was written: send it again on the next one.
                await self.wait_until(self._replaced(socket))
                continue
            self._record(Sent(time.monotonic(), frame))
            return socket

    def _replaced(self, socket: ClientConnection) -> Callable[[], bool | None]:
        """A check for :meth:`wait_until`: *socket* is no longer the connection."""
        return lambda: self._socket is not socket or None

    def _on_heard(self, message: AgentMessage) -> None:
        self.heard.append(message)
        self._notify()

    def _record(self, entry: Entry) -> None:
        self.log.append(entry)
        if self._observer is not None:
            self._observer(entry)

    def _end(self, code: int) -> None:
        if self.ended is None:
            self.ended = code
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


def _fold(text: str) -> str:
    return " ".join(text.replace("’", "'").casefold().split())


# -- starting a call -----------------------------------------------------------------------


def mint_token(
    secret: str, *, workspace: str, caller: str, name: str | None = None, ttl: float = 3600
) -> str:
    """A ``service`` token acting for *caller* (for demos; a deployment issues its own)."""
    return issue_token(
        secret,
        workspace=workspace,
        sub=BRIDGE_ID,
        role="service",
        act_for=caller,
        name=name,
        ttl=ttl,
    )


async def create_conversation(server: str, token: str, agent_id: str | None = None) -> str:
    """``POST /v1/conversations`` for the token's caller; returns the conversation id.

    Raises :class:`Refused` with the server's error code, or ``unavailable`` if the
    server cannot be reached.
    """
    body = json.dumps({"agent_id": agent_id} if agent_id else {}).encode()
    request = urllib.request.Request(
        f"{server.rstrip('/')}/v1/conversations",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    def post() -> dict[str, Any]:
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return dict(json.load(answer))
        except urllib.error.HTTPError as exc:
            try:
                code = str(json.load(exc)["error"]["code"])
            except (ValueError, KeyError, TypeError):
                code = "internal"
            raise Refused(code, f"HTTP {exc.code}") from None
        except OSError as exc:
            raise Refused("unavailable", type(exc).__name__) from None

    answer = await anyio.to_thread.run_sync(post)
    conversation_id = answer.get("conversation_id")
    if not isinstance(conversation_id, str):
        raise Refused("internal", "no conversation_id in the answer")
    return conversation_id


def conversation_ws_url(server: str, conversation_id: str) -> str:
    """The conversation socket's URL for an ``http(s)://`` server URL."""
    parts = urllib.parse.urlsplit(server)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError("the server URL must be http:// or https://")
    path = f"{parts.path.rstrip('/')}/v1/conversations/{urllib.parse.quote(conversation_id)}/ws"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))


# -- the command line ----------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bridge's options, for ``python -m server.voice_bridge`` or a subcommand."""
    parser.add_argument("--server", default="http://127.0.0.1:8000", type=_http_url)
    parser.add_argument("--caller", help="the caller's person id (act_for), to mint a token")
    parser.add_argument("--caller-name", help="the caller's display name")
    parser.add_argument("--workspace", default="demo")
    parser.add_argument("--token", help="a service token acting for the caller")
    parser.add_argument(
        "--secret", help="mint a token with this secret (default: the development secret)"
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
    """``python -m server.voice_bridge``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m server.voice_bridge",
        description="A reference voice bridge: a scripted or typed phone call (docs/VOICE.md).",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run one call from parsed *args*: 0 done, 1 the call failed, 2 bad usage."""
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
    secret = args.secret or DEVELOPMENT_SECRET
    return mint_token(secret, workspace=args.workspace, caller=args.caller, name=args.caller_name)


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
            step = parse_step(line) if _looks_like_step(line) else None
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


def _looks_like_step(line: str) -> bool:
    head = line.strip().split(":", 1)[0].strip().lower()
    return head in {"say", "wait", "wait-for", *_BARE} or line.lstrip().startswith("{")


def _print_tasks(entry: Entry) -> None:
    if isinstance(entry, Received) and entry.frame.get("type") == "task":
        task = entry.frame.get("task") or {}
        progress = f" — {task['progress']}" if task.get("progress") else ""
        print(f"  [task] {task.get('title')}: {task.get('state')}{progress}", file=sys.stderr)


def _http_url(value: str) -> str:
    if urllib.parse.urlsplit(value).scheme not in ("http", "https"):
        raise argparse.ArgumentTypeError("must be an http:// or https:// URL")
    return value


if __name__ == "__main__":
    sys.exit(main())
