"""The WebSocket wire protocol of PROTOCOL.md, version 1, without I/O.

Text in, typed frames out; dicts in, text out. Nothing here awaits or touches a socket,
so the socket adapter is a thin loop around :func:`parse_client_frame` and
:func:`encode`, and every rule of the contract is tested without a network.

A frame the server cannot accept is never an exception: :func:`parse_client_frame`
returns a :class:`FrameError` value whose message is fixed per code, so nothing the
client sent is ever echoed back except its own ``id``, which the contract requires.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn

import orjson

PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME_SIZE = 65_536
MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 16_000
MAX_TOKEN_CHARS = 8_192
MAX_CLIENT_CHARS = 64
# Stream seqs are stored as signed 64-bit integers; anything larger cannot exist.
MAX_SEQ = 2**63 - 1

WireFrame = dict[str, Any]


class ErrorCode(enum.StrEnum):
    """The ``code`` of an ``error`` frame or an HTTP error body (PROTOCOL.md)."""

    BAD_FRAME = "bad_frame"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LARGE = "too_large"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    DEPTH_LIMIT = "depth_limit"
    RATE_LIMITED = "rate_limited"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    RESYNC = "resync"

    @property
    def message(self) -> str:
        """The fixed, safe human text sent with this code."""
        return _ERROR_MESSAGES[self]


_ERROR_MESSAGES: Mapping[ErrorCode, str] = {
    ErrorCode.BAD_FRAME: "malformed frame",
    ErrorCode.UNKNOWN_TYPE: "unknown frame type",
    ErrorCode.TOO_LARGE: "too large",
    ErrorCode.UNAUTHORIZED: "unauthorized",
    ErrorCode.NOT_FOUND: "not found",
    ErrorCode.DEPTH_LIMIT: "delegation depth limit reached",
    ErrorCode.RATE_LIMITED: "rate limited",
    ErrorCode.CONFLICT: "the task has already ended",
    ErrorCode.UNAVAILABLE: "temporarily unavailable",
    ErrorCode.INTERNAL: "internal error",
    ErrorCode.RESYNC: "resume_after is past the end of the stream: drop your copy",
}


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server uses (PROTOCOL.md, Close codes)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SLOW_CONSUMER = 4001
    UNAUTHORIZED = 4401
    NOT_FOUND = 4404
    REPLACED = 4409
    RATE_LIMITED = 4429

    @property
    def reason(self) -> str:
        """A short fixed close reason (well under the 123 bytes a close frame allows)."""
        return _CLOSE_REASONS[self]


_CLOSE_REASONS: Mapping[CloseCode, str] = {
    CloseCode.NORMAL_CLOSURE: "normal closure",
    CloseCode.GOING_AWAY: "going away",
    CloseCode.MESSAGE_TOO_BIG: "frame too large",
    CloseCode.INTERNAL_ERROR: "internal error",
    CloseCode.SLOW_CONSUMER: "slow consumer",
    CloseCode.UNAUTHORIZED: "unauthorized",
    CloseCode.NOT_FOUND: "not found",
    CloseCode.REPLACED: "replaced by a newer connection",
    CloseCode.RATE_LIMITED: "rate limited",
}


class FrameType(enum.StrEnum):
    """The ``type`` of a client frame."""

    HELLO = "hello"
    SAY = "say"
    TASK_LIST = "task.list"
    TASK_STATUS = "task.status"
    TASK_INSTRUCT = "task.instruct"
    TASK_CANCEL = "task.cancel"
    SPEECH = "speech"
    PING = "ping"
    REFRESH = "refresh"


class ClientKind(enum.StrEnum):
    """The ``client`` words of ``hello`` the server knows; others are allowed too."""

    WIDGET = "widget"
    VOICE = "voice"
    VIEWER = "viewer"


class SpeechState(enum.StrEnum):
    STARTED = "started"
    STOPPED = "stopped"


# -- client frames --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """The first frame of a socket. ``token`` is ``None`` when sent as a header."""

    type: ClassVar[FrameType] = FrameType.HELLO
    # Kept out of the repr so that logging a frame never logs a credential.
    token: str | None = field(default=None, repr=False)
    resume_after: int | None = None
    client: str | None = None

    @property
    def is_voice(self) -> bool:
        return self.client == ClientKind.VOICE


@dataclass(frozen=True, slots=True)
class Say:
    type: ClassVar[FrameType] = FrameType.SAY
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class TaskList:
    type: ClassVar[FrameType] = FrameType.TASK_LIST
    id: str


@dataclass(frozen=True, slots=True)
class TaskStatus:
    type: ClassVar[FrameType] = FrameType.TASK_STATUS
    id: str
    task_id: str


@dataclass(frozen=True, slots=True)
class TaskInstruct:
    type: ClassVar[FrameType] = FrameType.TASK_INSTRUCT
    id: str
    task_id: str
    text: str


@dataclass(frozen=True, slots=True)
class TaskCancel:
    """``task_id`` may be ``None`` only on the chat-watch socket (its own task)."""

    type: ClassVar[FrameType] = FrameType.TASK_CANCEL
    id: str
    task_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Speech:
    type: ClassVar[FrameType] = FrameType.SPEECH
    state: SpeechState


@dataclass(frozen=True, slots=True)
class Ping:
    type: ClassVar[FrameType] = FrameType.PING
    id: str


@dataclass(frozen=True, slots=True)
class Refresh:
    """A new token for the same principal, sent before the socket's one expires."""

    type: ClassVar[FrameType] = FrameType.REFRESH
    id: str
    token: str = field(repr=False)


ClientFrame = (
    Hello | Say | TaskList | TaskStatus | TaskInstruct | TaskCancel | Speech | Ping | Refresh
)


@dataclass(frozen=True, slots=True)
class FrameError:
    """A client frame the server refuses: a value to answer with, not an exception.

    ``id`` is the frame's own ``id`` when one could be read. ``close_code`` is set
    when the contract says the socket must close (a frame over the size limit);
    otherwise the socket stays open and nothing stored is lost.
    """

    code: ErrorCode
    id: str | None = None
    close_code: CloseCode | None = None

    @property
    def message(self) -> str:
        return self.code.message

    def to_wire(self) -> WireFrame:
        """The ``error`` frame that answers the refused frame."""
        return error(self.code, id=self.id)


class _Reject(Exception):
    """Internal: unwinds a field check to :func:`parse_client_frame`."""

    def __init__(self, code: ErrorCode) -> None:
        super().__init__(code.value)
        self.code = code


def _reject(code: ErrorCode = ErrorCode.BAD_FRAME) -> NoReturn:
    raise _Reject(code)


def _refuse_constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON; Python's parser accepts them unless told not to.
    _reject()


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 8259 leaves a repeated name's meaning open: parsers differ on which value wins,
    # so a frame that says one thing twice is read as neither (PROTOCOL.md, additions).
    obj = dict(pairs)
    if len(obj) != len(pairs):
        _reject()
    return obj


# One decoder for every frame: json.loads with hooks builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_refuse_duplicates)


def parse_client_frame(
    data: str | bytes, *, max_size: int = DEFAULT_MAX_FRAME_SIZE
) -> ClientFrame | FrameError:
    """Turn one WebSocket message into a client frame, or the error that answers it.

    Never raises for any input. *max_size* is the frame limit in bytes: a larger frame
    yields ``too_large`` with ``close_code`` 1009. A binary frame is ``bad_frame``.
    """
    if _utf8_size(data) > max_size:
        return FrameError(ErrorCode.TOO_LARGE, close_code=CloseCode.MESSAGE_TOO_BIG)
    if not isinstance(data, str):
        return FrameError(ErrorCode.BAD_FRAME)
    try:
        obj = _DECODER.decode(data)
    except (_Reject, ValueError, RecursionError):
        # ValueError covers malformed JSON and over-long integer literals;
        # RecursionError a deeply nested array that still fits in the size limit.
        return FrameError(ErrorCode.BAD_FRAME)
    if not isinstance(obj, dict):
        return FrameError(ErrorCode.BAD_FRAME)
    frame_id = _readable_id(obj)
    kind = obj.get("type")
    if not isinstance(kind, str):
        return FrameError(ErrorCode.BAD_FRAME, frame_id)
    parse = _PARSERS.get(kind)
    if parse is None:
        return FrameError(ErrorCode.UNKNOWN_TYPE, frame_id)
    try:
        return parse(obj)
    except _Reject as exc:
        return FrameError(exc.code, frame_id)


def _utf8_size(data: str | bytes) -> int:
    if isinstance(data, bytes):
        return len(data)
    # "surrogatepass" so that measuring never raises; lone surrogates are refused later.
    return len(data.encode("utf-8", "surrogatepass"))


def _readable_id(obj: Mapping[str, Any]) -> str | None:
    try:
        return _string(obj, "id", max_chars=MAX_ID_CHARS)
    except _Reject:
        return None


def _string(
    obj: Mapping[str, Any],
    key: str,
    *,
    max_chars: int,
    too_long: ErrorCode = ErrorCode.BAD_FRAME,
    blank_ok: bool = False,
) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        _reject()
    if len(value) > max_chars:
        _reject(too_long)
    if not (value if blank_ok else value.strip()):
        _reject()
    try:
        # A lone surrogate ("\ud800" in JSON) is valid JSON but not Unicode: it would
        # make encoding fail later, when the text is stored or sent to someone else.
        value.encode("utf-8")
    except UnicodeEncodeError:
        _reject()
    return value


def _optional_string(
    obj: Mapping[str, Any], key: str, *, max_chars: int, too_long: ErrorCode = ErrorCode.BAD_FRAME
) -> str | None:
    if obj.get(key) is None:
        return None
    return _string(obj, key, max_chars=max_chars, too_long=too_long)


def _id(obj: Mapping[str, Any], key: str = "id") -> str:
    return _string(obj, key, max_chars=MAX_ID_CHARS)


def _text(obj: Mapping[str, Any], key: str = "text") -> str:
    return _string(obj, key, max_chars=MAX_TEXT_CHARS, too_long=ErrorCode.TOO_LARGE)


def _parse_hello(obj: Mapping[str, Any]) -> Hello:
    resume_after = obj.get("resume_after")
    if resume_after is not None and (
        # bool is an int in Python but not in the contract.
        type(resume_after) is not int or not 0 <= resume_after <= MAX_SEQ
    ):
        _reject()
    client = _optional_string(obj, "client", max_chars=MAX_CLIENT_CHARS)
    if client is not None and not client.isprintable():
        _reject()
    return Hello(
        token=_optional_string(obj, "token", max_chars=MAX_TOKEN_CHARS),
        resume_after=resume_after,
        client=client,
    )


def _parse_say(obj: Mapping[str, Any]) -> Say:
    return Say(id=_id(obj), text=_text(obj))


def _parse_task_list(obj: Mapping[str, Any]) -> TaskList:
    return TaskList(id=_id(obj))


def _parse_task_status(obj: Mapping[str, Any]) -> TaskStatus:
    return TaskStatus(id=_id(obj), task_id=_id(obj, "task_id"))


def _parse_task_instruct(obj: Mapping[str, Any]) -> TaskInstruct:
    return TaskInstruct(id=_id(obj), task_id=_id(obj, "task_id"), text=_text(obj))


def _parse_task_cancel(obj: Mapping[str, Any]) -> TaskCancel:
    return TaskCancel(
        id=_id(obj),
        task_id=_optional_string(obj, "task_id", max_chars=MAX_ID_CHARS),
        reason=_optional_string(
            obj, "reason", max_chars=MAX_TEXT_CHARS, too_long=ErrorCode.TOO_LARGE
        ),
    )


def _parse_speech(obj: Mapping[str, Any]) -> Speech:
    state = obj.get("state")
    if state not in (SpeechState.STARTED.value, SpeechState.STOPPED.value):
        _reject()
    return Speech(state=SpeechState(state))


def _parse_ping(obj: Mapping[str, Any]) -> Ping:
    return Ping(id=_id(obj))


def _parse_refresh(obj: Mapping[str, Any]) -> Refresh:
    return Refresh(id=_id(obj), token=_string(obj, "token", max_chars=MAX_TOKEN_CHARS))


_PARSERS: Mapping[str, Callable[[Mapping[str, Any]], ClientFrame]] = {
    FrameType.HELLO: _parse_hello,
    FrameType.SAY: _parse_say,
    FrameType.TASK_LIST: _parse_task_list,
    FrameType.TASK_STATUS: _parse_task_status,
    FrameType.TASK_INSTRUCT: _parse_task_instruct,
    FrameType.TASK_CANCEL: _parse_task_cancel,
    FrameType.SPEECH: _parse_speech,
    FrameType.PING: _parse_ping,
    FrameType.REFRESH: _parse_refresh,
}


# -- server frames --------------------------------------------------------------------


def welcome(
    *, last_seq: int, conversation_id: str | None = None, chat_id: str | None = None
) -> WireFrame:
    """The answer to a valid ``hello``; names the conversation, the chat, or both.

    Raises ``ValueError`` when neither is given.
    """
    if conversation_id is None and chat_id is None:
        raise ValueError("welcome needs a conversation_id or a chat_id")
    frame: WireFrame = {"type": "welcome", "protocol": PROTOCOL_VERSION}
    if conversation_id is not None:
        frame["conversation_id"] = conversation_id
    if chat_id is not None:
        frame["chat_id"] = chat_id
    frame["last_seq"] = last_seq
    return frame


def ack(id: str, seq: int | None = None) -> WireFrame:
    """Acknowledge frame *id*; *seq* is that of what it stored, if anything."""
    frame: WireFrame = {"type": "ack", "id": id}
    if seq is not None:
        frame["seq"] = seq
    return frame


def result_task(id: str, task_view: Mapping[str, Any]) -> WireFrame:
    """Answer frame *id* with one ``TaskView``."""
    return {"type": "result", "id": id, "task": dict(task_view)}


def result_tasks(id: str, views: Iterable[Mapping[str, Any]]) -> WireFrame:
    """Answer frame *id* with a list of ``TaskView``s."""
    return {"type": "result", "id": id, "tasks": [dict(view) for view in views]}


def error(code: ErrorCode, message: str | None = None, id: str | None = None) -> WireFrame:
    """An ``error`` frame. *message* defaults to the code's fixed safe text.

    Callers that pass their own *message* must make sure it holds nothing the client
    sent and nothing from a record the client may not see.
    """
    code = ErrorCode(code)
    frame: WireFrame = {"type": "error"}
    if id is not None:
        frame["id"] = id
    frame["code"] = code.value
    frame["message"] = code.message if message is None else message
    return frame


def pong(id: str) -> WireFrame:
    """The answer to ``ping``."""
    return {"type": "pong", "id": id}


def encode(frame: Mapping[str, Any]) -> str:
    """Serialize a server frame (or a stored record) as compact JSON text, not escaped
    to ASCII. NaN and the infinities, which JSON has not, become ``null``.

    orjson writes it; what orjson refuses (an integer past 64 bits, a key that is not a
    string) the standard library's encoder writes, as it always did. Raises
    ``TypeError`` for what neither can encode, and ``ValueError`` for NaN there.
    """
    try:
        return orjson.dumps(frame).decode()
    except orjson.JSONEncodeError:
        return json.dumps(frame, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
