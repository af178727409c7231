"""The sans-I/O wire protocol: every client frame valid and each way of being invalid."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server import protocol
from server.protocol import (
    CloseCode,
    ErrorCode,
    FrameError,
    Hello,
    Ping,
    Refresh,
    Say,
    Speech,
    SpeechState,
    TaskCancel,
    TaskInstruct,
    TaskList,
    TaskStatus,
    parse_client_frame,
)

FIXED_MESSAGES = {code.message for code in ErrorCode}
PROTOCOL_CODES = {
    "bad_frame",
    "unknown_type",
    "too_large",
    "unauthorized",
    "not_found",
    "depth_limit",
    "rate_limited",
    "conflict",
    "unavailable",
    "internal",
    "resync",
}


def parse(frame: Any, **kwargs: Any) -> protocol.ClientFrame | FrameError:
    return parse_client_frame(json.dumps(frame, ensure_ascii=False), **kwargs)


def refused(frame: Any, code: ErrorCode = ErrorCode.BAD_FRAME) -> FrameError:
    result = parse(frame)
    assert isinstance(result, FrameError), result
    assert result.code is code
    assert result.close_code is None
    return result


# -- valid frames ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"type": "hello", "token": "t.o.k"}, Hello(token="t.o.k")),
        ({"type": "hello"}, Hello()),
        (
            {"type": "hello", "id": "1", "token": "abc", "resume_after": 7, "client": "voice"},
            Hello(token="abc", resume_after=7, client="voice"),
        ),
        (
            {"type": "hello", "resume_after": 0, "client": "my-bridge"},
            Hello(resume_after=0, client="my-bridge"),
        ),
        ({"type": "hello", "token": None, "resume_after": None}, Hello()),
        ({"type": "say", "id": "1", "text": "Call the pharmacy"}, Say("1", "Call the pharmacy")),
        ({"type": "task.list", "id": "a"}, TaskList("a")),
        ({"type": "task.status", "id": "a", "task_id": "task_x"}, TaskStatus("a", "task_x")),
        (
            {"type": "task.instruct", "id": "a", "task_id": "task_x", "text": "ask for Dr. Lee"},
            TaskInstruct("a", "task_x", "ask for Dr. Lee"),
        ),
        (
            {"type": "task.cancel", "id": "a", "task_id": "task_x", "reason": "not needed"},
            TaskCancel("a", "task_x", "not needed"),
        ),
        ({"type": "task.cancel", "id": "a", "task_id": "task_x"}, TaskCancel("a", "task_x")),
        ({"type": "task.cancel", "id": "a"}, TaskCancel("a")),
        ({"type": "speech", "state": "started"}, Speech(SpeechState.STARTED)),
        ({"type": "speech", "state": "stopped"}, Speech(SpeechState.STOPPED)),
        ({"type": "ping", "id": "p1"}, Ping("p1")),
        ({"type": "refresh", "id": "r1", "token": "t.o.k"}, Refresh("r1", "t.o.k")),
        # Forward compatible: unknown fields are ignored.
        ({"type": "ping", "id": "p1", "future": {"x": [1]}}, Ping("p1")),
    ],
)
def test_valid_frames_parse_to_typed_values(frame: dict[str, Any], expected: object) -> None:
    assert parse(frame) == expected


def test_hello_without_token_is_not_refused_at_parse_time() -> None:
    hello = parse({"type": "hello", "client": "widget"})
    assert hello == Hello(client="widget")
    assert isinstance(hello, Hello)
    assert not hello.is_voice
    assert Hello(client="voice").is_voice


def test_hello_repr_never_shows_the_token() -> None:
    assert "secret-token" not in repr(Hello(token="secret-token"))
    assert "secret-token" not in repr(Refresh("r1", "secret-token"))


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "refresh", "id": "r1"},
        {"type": "refresh", "id": "r1", "token": ""},
        {"type": "refresh", "id": "r1", "token": 7},
        {"type": "refresh", "id": "r1", "token": "x" * (protocol.MAX_TOKEN_CHARS + 1)},
    ],
)
def test_refresh_without_a_usable_token_is_bad_frame(frame: dict[str, Any]) -> None:
    assert refused(frame).id == "r1"


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "ping", "id": "p1", "type": "say", "text": "hi"}',
        '{"type": "say", "id": "a", "id": "b", "text": "hi"}',
        '{"type": "say", "id": "a", "text": "one", "text": "two"}',
        # Anywhere in the frame, an ignored field too: no parser's choice is relied on.
        '{"type": "ping", "id": "p1", "future": {"x": 1, "x": 2}}',
    ],
)
def test_a_duplicated_key_is_bad_frame_and_read_as_neither_value(text: str) -> None:
    result = parse_client_frame(text)
    assert result == FrameError(ErrorCode.BAD_FRAME)


def test_unicode_text_and_limits_at_the_edge_are_accepted() -> None:
    text = "é" * protocol.MAX_TEXT_CHARS
    frame_id = "i" * protocol.MAX_ID_CHARS
    assert parse({"type": "say", "id": frame_id, "text": text}) == Say(frame_id, text)
    raw = '{"type":"say","id":"1","text":"Rückruf 📞"}'.encode()
    assert parse_client_frame(raw.decode()) == Say("1", "Rückruf 📞")


def test_frame_types_carry_their_wire_type() -> None:
    assert Say("1", "x").type == "say"
    assert TaskCancel("1").type == "task.cancel"
    assert Speech(SpeechState.STARTED).type == "speech"


# -- invalid frames -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "not json", "{", '{"type": "ping", "id": "1"', "[1, 2]", "3", '"ping"', "null", "true"],
)
def test_not_json_or_not_an_object_is_bad_frame(text: str) -> None:
    result = parse_client_frame(text)
    assert result == FrameError(ErrorCode.BAD_FRAME)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_bad_frame(constant: str) -> None:
    result = parse_client_frame(f'{{"type": "hello", "resume_after": {constant}}}')
    assert isinstance(result, FrameError)
    assert result.code is ErrorCode.BAD_FRAME


def test_deep_nesting_within_the_size_limit_is_bad_frame() -> None:
    assert parse_client_frame("[" * 60_000) == FrameError(ErrorCode.BAD_FRAME)
    nested = '{"type": "ping", "id": "1", "x": ' + "[" * 30_000 + "]" * 30_000 + "}"
    assert parse_client_frame(nested) == FrameError(ErrorCode.BAD_FRAME)


def test_huge_integer_literal_is_bad_frame() -> None:
    result = parse_client_frame('{"type": "hello", "resume_after": ' + "9" * 5000 + "}")
    assert result == FrameError(ErrorCode.BAD_FRAME)


def test_binary_frame_is_bad_frame_and_keeps_the_socket() -> None:
    result = parse_client_frame(b'{"type": "ping", "id": "1"}')
    assert result == FrameError(ErrorCode.BAD_FRAME)
    assert result.close_code is None


@pytest.mark.parametrize("data", ["x" * 101, b"x" * 101, "é" * 51])
def test_frame_over_the_size_limit_is_too_large_and_closes_with_1009(data: str | bytes) -> None:
    result = parse_client_frame(data, max_size=100)
    assert result == FrameError(ErrorCode.TOO_LARGE, close_code=CloseCode.MESSAGE_TOO_BIG)


def test_frame_at_the_size_limit_is_read() -> None:
    frame = '{"type":"ping","id":"1"}'
    assert parse_client_frame(frame, max_size=len(frame)) == Ping("1")
    refusal = parse_client_frame(frame, max_size=len(frame) - 1)
    assert isinstance(refusal, FrameError)
    assert refusal.close_code is CloseCode.MESSAGE_TOO_BIG


def test_unknown_type_repeats_the_id() -> None:
    assert refused({"type": "task.delete", "id": "q"}, ErrorCode.UNKNOWN_TYPE).id == "q"
    assert refused({"type": "PING", "id": "q"}, ErrorCode.UNKNOWN_TYPE).id == "q"


@pytest.mark.parametrize("kind", [None, 1, True, ["ping"], {"t": "ping"}])
def test_missing_or_mistyped_type_is_bad_frame(kind: Any) -> None:
    frame: dict[str, Any] = {"id": "q"}
    if kind is not None:
        frame["type"] = kind
    assert refused(frame).id == "q"


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "say", "text": "hi"},
        {"type": "say", "id": 1, "text": "hi"},
        {"type": "say", "id": "", "text": "hi"},
        {"type": "say", "id": "   ", "text": "hi"},
        {"type": "say", "id": "i" * 129, "text": "hi"},
        {"type": "say", "id": None, "text": "hi"},
        {"type": "task.list"},
        {"type": "task.list", "id": ["1"]},
        {"type": "ping"},
        {"type": "ping", "id": True},
        {"type": "task.cancel", "id": 3, "task_id": "t"},
    ],
)
def test_missing_or_bad_id_is_bad_frame_without_an_id(frame: dict[str, Any]) -> None:
    assert refused(frame).id is None


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "say", "id": "1"},
        {"type": "say", "id": "1", "text": None},
        {"type": "say", "id": "1", "text": 5},
        {"type": "say", "id": "1", "text": ""},
        {"type": "say", "id": "1", "text": " \n\t"},
        {"type": "say", "id": "1", "text": ["hi"]},
        {"type": "task.status", "id": "1"},
        {"type": "task.status", "id": "1", "task_id": 42},
        {"type": "task.status", "id": "1", "task_id": ""},
        {"type": "task.status", "id": "1", "task_id": "t" * 129},
        {"type": "task.instruct", "id": "1", "task_id": "t"},
        {"type": "task.instruct", "id": "1", "text": "hi"},
        {"type": "task.instruct", "id": "1", "task_id": "t", "text": {"x": 1}},
        {"type": "task.cancel", "id": "1", "task_id": 7},
        {"type": "task.cancel", "id": "1", "task_id": ""},
        {"type": "task.cancel", "id": "1", "task_id": "t", "reason": 1},
        {"type": "task.cancel", "id": "1", "task_id": "t", "reason": ""},
        {"type": "hello", "id": "1", "token": 5},
        {"type": "hello", "id": "1", "token": ""},
        {"type": "hello", "id": "1", "token": "x" * (protocol.MAX_TOKEN_CHARS + 1)},
        {"type": "hello", "id": "1", "resume_after": -1},
        {"type": "hello", "id": "1", "resume_after": True},
        {"type": "hello", "id": "1", "resume_after": False},
        {"type": "hello", "id": "1", "resume_after": 1.0},
        {"type": "hello", "id": "1", "resume_after": "3"},
        {"type": "hello", "id": "1", "resume_after": 2**63},
        {"type": "hello", "id": "1", "client": 1},
        {"type": "hello", "id": "1", "client": "c" * 65},
        {"type": "hello", "id": "1", "client": "line\nbreak"},
        {"type": "speech", "id": "1"},
        {"type": "speech", "id": "1", "state": "paused"},
        {"type": "speech", "id": "1", "state": "STARTED"},
        {"type": "speech", "id": "1", "state": True},
        {"type": "speech", "id": "1", "state": ["started"]},
    ],
)
def test_missing_or_mistyped_field_is_bad_frame_with_the_id(frame: dict[str, Any]) -> None:
    assert refused(frame).id == "1"


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "say", "id": "1", "text": "x" * (protocol.MAX_TEXT_CHARS + 1)},
        {"type": "task.instruct", "id": "1", "task_id": "t", "text": "x" * 16_001},
        {"type": "task.cancel", "id": "1", "task_id": "t", "reason": "x" * 16_001},
    ],
)
def test_over_long_text_is_too_large_and_keeps_the_socket(frame: dict[str, Any]) -> None:
    assert refused(frame, ErrorCode.TOO_LARGE).id == "1"


def test_lone_surrogate_is_bad_frame() -> None:
    # Valid JSON, but not Unicode: it could never be stored or sent on as UTF-8.
    assert refused({"type": "say", "id": "1", "text": "hi \ud800"}).id == "1"
    assert refused({"type": "say", "id": "\udfff", "text": "hi"}).id is None


# -- server frames --------------------------------------------------------------------


def test_welcome() -> None:
    assert protocol.welcome(conversation_id="c1", last_seq=4) == {
        "type": "welcome",
        "protocol": 1,
        "conversation_id": "c1",
        "last_seq": 4,
    }
    assert protocol.welcome(chat_id="ch", last_seq=0) == {
        "type": "welcome",
        "protocol": 1,
        "chat_id": "ch",
        "last_seq": 0,
    }
    with pytest.raises(ValueError, match="conversation_id or a chat_id"):
        protocol.welcome(last_seq=0)


def test_ack_result_pong() -> None:
    assert protocol.ack("1") == {"type": "ack", "id": "1"}
    assert protocol.ack("1", seq=9) == {"type": "ack", "id": "1", "seq": 9}
    view = {"id": "task_1", "state": "working"}
    assert protocol.result_task("2", view) == {"type": "result", "id": "2", "task": view}
    assert protocol.result_tasks("3", iter([view, view])) == {
        "type": "result",
        "id": "3",
        "tasks": [view, view],
    }
    assert protocol.result_tasks("4", []) == {"type": "result", "id": "4", "tasks": []}
    assert protocol.pong("p") == {"type": "pong", "id": "p"}


def test_error_frames_use_the_fixed_message() -> None:
    assert protocol.error(ErrorCode.NOT_FOUND, id="7") == {
        "type": "error",
        "id": "7",
        "code": "not_found",
        "message": "not found",
    }
    assert protocol.error(ErrorCode.INTERNAL) == {
        "type": "error",
        "code": "internal",
        "message": "internal error",
    }
    assert protocol.error(ErrorCode.CONFLICT, "the task already completed")["message"] == (
        "the task already completed"
    )
    assert FrameError(ErrorCode.UNKNOWN_TYPE, "x").to_wire() == protocol.error(
        ErrorCode.UNKNOWN_TYPE, id="x"
    )


def test_encode_is_compact_utf8_json() -> None:
    assert protocol.encode({"type": "pong", "id": "é"}) == '{"type":"pong","id":"é"}'
    # JSON has no NaN: what goes out is always JSON.
    assert protocol.encode({"x": float("nan"), "y": float("inf")}) == '{"x":null,"y":null}'
    # What orjson refuses, the standard library writes.
    assert protocol.encode({"n": 2**70, 1: "one"}) == '{"n":1180591620717411303424,"1":"one"}'
    assert json.loads(protocol.encode({"text": 'line\n\u2028\x00"q"'})) == {
        "text": 'line\n\u2028\x00"q"'
    }
    with pytest.raises(TypeError):
        protocol.encode({"x": object()})


def test_codes_match_the_protocol() -> None:
    assert {code.value for code in ErrorCode} == PROTOCOL_CODES
    assert all(code.message for code in ErrorCode)
    assert {int(code) for code in CloseCode} == {
        1000,
        1001,
        1009,
        1011,
        4001,
        4401,
        4404,
        4409,
        4429,
    }
    assert all(0 < len(code.reason.encode()) <= 123 for code in CloseCode)
    assert int(CloseCode.UNAUTHORIZED) == 4401
    assert ErrorCode.NOT_FOUND.message == "not found"


# -- properties -----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["id", "text", "task_id", "reason", "token", "resume_after", "client", "state", "x"]
)
frame_types = st.sampled_from([t.value for t in protocol.FrameType]) | st.text(max_size=12)
client_frames = st.fixed_dictionaries(
    {"type": frame_types}, optional={"id": st.text(max_size=140) | json_values}
).flatmap(
    lambda base: st.dictionaries(field_names, json_values, max_size=5).map(
        lambda extra: {**extra, **base}
    )
)


def assert_well_formed(result: protocol.ClientFrame | FrameError) -> None:
    if isinstance(result, FrameError):
        assert result.code.value in PROTOCOL_CODES
        assert result.message in FIXED_MESSAGES
        # The error frame must always be sendable, whatever the client wrote.
        wire = json.loads(protocol.encode(result.to_wire()))
        assert wire["code"] == result.code.value
        assert wire["message"] == result.message


@settings(deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300), st.integers(1, 400))
def test_any_input_yields_a_frame_or_a_protocol_error(data: str | bytes, max_size: int) -> None:
    assert_well_formed(parse_client_frame(data, max_size=max_size))


@settings(deadline=None)
@given(client_frames)
def test_any_json_object_yields_a_frame_or_a_protocol_error(frame: dict[str, Any]) -> None:
    assert_well_formed(parse(frame))


@settings(deadline=None)
@given(client_frames, st.text(min_size=4, max_size=50))
def test_an_error_never_echoes_client_text(frame: dict[str, Any], marker: str) -> None:
    frame = {
        key: marker if isinstance(value, str) and key != "type" else value
        for key, value in frame.items()
    }
    frame.pop("id", None)
    result = parse(frame)
    if isinstance(result, FrameError):
        assert result.id is None
        assert marker not in protocol.encode(result.to_wire()) or marker in json.dumps(
            protocol.error(result.code)
        )


@settings(deadline=None)
@given(
    st.text(min_size=1, max_size=protocol.MAX_ID_CHARS).filter(str.strip),
    st.text(min_size=1, max_size=2000).filter(str.strip),
)
def test_say_round_trips_any_text(frame_id: str, text: str) -> None:
    assert parse({"type": "say", "id": frame_id, "text": text}) == Say(frame_id, text)
