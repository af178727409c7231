"""Fuzzing the frame parser with frames that are almost right.

``tests/server/test_protocol.py`` already feeds :func:`parse_client_frame` random
text, random bytes and random JSON objects. Random input rarely gets past the first
check, so here every frame starts out valid, for every type of
:class:`~server.protocol.FrameType`, and then exactly one thing is wrong with it: a
field of the wrong type, blank, too long, with a lone surrogate, a number out of
range, or fields the protocol does not have. Each case must come out as the one answer
PROTOCOL.md gives for it (with the frame's own ``id`` when it had a readable one),
never as an exception, and never with anything of the client's in it but that ``id``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from server import protocol
from server.protocol import (
    MAX_ID_CHARS,
    MAX_SEQ,
    MAX_TEXT_CHARS,
    CloseCode,
    ErrorCode,
    FrameError,
    FrameType,
    parse_client_frame,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def strings(max_size: int) -> st.SearchStrategy[str]:
    """Strings a field of that size accepts: not blank, valid Unicode."""
    return st.text(min_size=1, max_size=max_size).filter(
        lambda s: bool(s.strip()) and _encodable(s)
    )


frame_ids = strings(MAX_ID_CHARS)
record_ids = strings(MAX_ID_CHARS) | st.from_regex(r"task_[A-Za-z0-9_\-]{22}", fullmatch=True)
texts = strings(300)
clients = st.sampled_from(["widget", "voice", "viewer"]) | st.text(
    alphabet=st.characters(codec="utf-8").filter(str.isprintable), min_size=1, max_size=64
).filter(str.strip)

# Each field of each type: a strategy of valid values, whether it is required, what
# kind of value it is, and its length limit (strings).
STRING, TEXT, SEQ, STATE = "string", "text", "seq", "state"
Field = tuple[st.SearchStrategy[Any], bool, str, int]
FIELDS: Mapping[FrameType, Mapping[str, Field]] = {
    FrameType.HELLO: {
        "token": (strings(200), False, STRING, protocol.MAX_TOKEN_CHARS),
        "resume_after": (st.integers(0, MAX_SEQ), False, SEQ, 0),
        "client": (clients, False, STRING, protocol.MAX_CLIENT_CHARS),
    },
    FrameType.SAY: {
        "id": (frame_ids, True, STRING, MAX_ID_CHARS),
        "text": (texts, True, TEXT, MAX_TEXT_CHARS),
    },
    FrameType.TASK_LIST: {"id": (frame_ids, True, STRING, MAX_ID_CHARS)},
    FrameType.TASK_STATUS: {
        "id": (frame_ids, True, STRING, MAX_ID_CHARS),
        "task_id": (record_ids, True, STRING, MAX_ID_CHARS),
    },
    FrameType.TASK_INSTRUCT: {
        "id": (frame_ids, True, STRING, MAX_ID_CHARS),
        "task_id": (record_ids, True, STRING, MAX_ID_CHARS),
        "text": (texts, True, TEXT, MAX_TEXT_CHARS),
    },
    FrameType.TASK_CANCEL: {
        "id": (frame_ids, True, STRING, MAX_ID_CHARS),
        "task_id": (record_ids, False, STRING, MAX_ID_CHARS),
        "reason": (texts, False, TEXT, MAX_TEXT_CHARS),
    },
    FrameType.SPEECH: {"state": (st.sampled_from(["started", "stopped"]), True, STATE, 0)},
    FrameType.PING: {"id": (frame_ids, True, STRING, MAX_ID_CHARS)},
    FrameType.REFRESH: {
        "id": (frame_ids, True, STRING, MAX_ID_CHARS),
        "token": (strings(200), True, STRING, protocol.MAX_TOKEN_CHARS),
    },
}
FIXED_MESSAGES = {code.message for code in ErrorCode}


def test_every_frame_type_is_fuzzed() -> None:
    assert set(FIELDS) == set(FrameType), "add the new frame type's fields to FIELDS"


@st.composite
def valid_frames(draw: st.DrawFn, kind: FrameType | None = None) -> dict[str, Any]:
    kind = kind or draw(st.sampled_from(list(FrameType)))
    frame: dict[str, Any] = {"type": kind.value}
    for name, (values, required, _, _) in FIELDS[kind].items():
        if required or draw(st.booleans()):
            frame[name] = draw(values)
    return frame


def expected_frame(frame: Mapping[str, Any]) -> protocol.ClientFrame:
    """The typed value a valid *frame* must parse to."""
    kind = FrameType(frame["type"])
    build: Mapping[FrameType, Callable[[], protocol.ClientFrame]] = {
        FrameType.HELLO: lambda: protocol.Hello(
            token=frame.get("token"),
            resume_after=frame.get("resume_after"),
            client=frame.get("client"),
        ),
        FrameType.SAY: lambda: protocol.Say(frame["id"], frame["text"]),
        FrameType.TASK_LIST: lambda: protocol.TaskList(frame["id"]),
        FrameType.TASK_STATUS: lambda: protocol.TaskStatus(frame["id"], frame["task_id"]),
        FrameType.TASK_INSTRUCT: lambda: protocol.TaskInstruct(
            frame["id"], frame["task_id"], frame["text"]
        ),
        FrameType.TASK_CANCEL: lambda: protocol.TaskCancel(
            frame["id"], frame.get("task_id"), frame.get("reason")
        ),
        FrameType.SPEECH: lambda: protocol.Speech(protocol.SpeechState(frame["state"])),
        FrameType.PING: lambda: protocol.Ping(frame["id"]),
        FrameType.REFRESH: lambda: protocol.Refresh(frame["id"], frame["token"]),
    }
    return build[kind]()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def encodings(frame: Mapping[str, Any]) -> st.SearchStrategy[str]:
    """The same frame as different clients may write it: escaped or not, spaced or not."""
    return st.builds(
        lambda ascii_only, indent, order: json.dumps(
            dict(sorted(frame.items(), reverse=order)), ensure_ascii=ascii_only, indent=indent
        ),
        st.booleans(),
        st.sampled_from([None, 0, 2, "\t"]),
        st.booleans(),
    )


def check_answer(result: protocol.ClientFrame | FrameError, sent: str) -> None:
    """Every refusal is a PROTOCOL.md code with its fixed message, sendable as is."""
    if isinstance(result, FrameError):
        assert result.message in FIXED_MESSAGES
        wire = protocol.encode(result.to_wire())
        assert json.loads(wire)["code"] == result.code.value
        if result.close_code is not None:
            assert (result.code, result.close_code) == (
                ErrorCode.TOO_LARGE,
                CloseCode.MESSAGE_TOO_BIG,
            )


@FUZZ
@given(st.data())
def test_valid_frames_parse_whatever_the_spelling(data: st.DataObject) -> None:
    frame = data.draw(valid_frames())
    text = data.draw(encodings(frame))
    result = parse_client_frame(text)
    assert result == expected_frame(frame), (text, result)


unknown_names = st.text(min_size=1, max_size=12).filter(
    lambda name: name not in {"type", "id", *(n for f in FIELDS.values() for n in f)}
)


@FUZZ
@given(st.data())
def test_fields_the_protocol_does_not_have_are_ignored(data: st.DataObject) -> None:
    frame = data.draw(valid_frames())
    extra = data.draw(st.dictionaries(unknown_names, json_values, min_size=1, max_size=4))
    result = parse_client_frame(json.dumps({**extra, **frame}))
    assert result == expected_frame(frame)


def wrong_values(coding: str, limit: int) -> st.SearchStrategy[tuple[Any, ErrorCode]]:
    """Values a field of this coding must refuse, each with the code it is refused with."""
    bad = ErrorCode.BAD_FRAME
    not_a_string = (
        st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.lists(json_values, max_size=2)
    ) | st.dictionaries(st.text(max_size=4), json_values, max_size=2)
    lone_surrogate = st.tuples(st.text(max_size=5), st.sampled_from(["\ud800", "\udfff"])).map(
        "".join
    )
    blank = st.text(alphabet=" \t\n\r\u00a0\u2003", max_size=5)
    if coding == SEQ:
        return st.one_of(
            st.integers(max_value=-1),
            st.integers(min_value=MAX_SEQ + 1, max_value=2**70),
            st.booleans(),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(max_size=5),
            st.lists(st.integers(0, 5), max_size=2),
        ).map(lambda v: (v, bad))
    if coding == STATE:
        return st.one_of(
            st.text(max_size=10).filter(lambda s: s not in ("started", "stopped")),
            not_a_string,
            st.sampled_from(["STARTED", "Started", " started"]),
        ).map(lambda v: (v, bad))
    too_long = ErrorCode.TOO_LARGE if coding == TEXT else bad
    return st.one_of(
        not_a_string.map(lambda v: (v, bad)),
        blank.map(lambda v: (v, bad)),
        lone_surrogate.map(lambda v: (v, bad)),
        st.integers(1, 50).map(lambda n: ("x" * (limit + n), too_long)),
        st.integers(1, 3).map(lambda n: ("é" * (limit + n), too_long)),
    )


@FUZZ
@given(st.data())
def test_one_wrong_field_gets_its_code_and_keeps_the_id(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(list(FrameType)))
    frame = data.draw(valid_frames(kind))
    name = data.draw(st.sampled_from(sorted(FIELDS[kind])))
    _, _, coding, limit = FIELDS[kind][name]
    value, code = data.draw(wrong_values(coding, limit))
    frame[name] = value
    text = json.dumps(frame, ensure_ascii=data.draw(st.booleans()))
    result = parse_client_frame(text, max_size=1 << 20)
    assert isinstance(result, FrameError), (frame, result)
    assert result.code is code, (frame, result)
    assert result.close_code is None
    # The error repeats the frame's id when it was readable, and only then.
    expected_id = frame.get("id") if name != "id" else None
    assert result.id == expected_id, (frame, result)
    check_answer(result, text)


@FUZZ
@given(st.data())
def test_a_missing_required_field_is_bad_frame(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from([k for k in FrameType if k is not FrameType.HELLO]))
    frame = data.draw(valid_frames(kind))
    name = data.draw(st.sampled_from([n for n, field in FIELDS[kind].items() if field[1]]))
    del frame[name]
    if data.draw(st.booleans()):
        frame[name] = None
    result = parse_client_frame(json.dumps(frame))
    assert isinstance(result, FrameError), (frame, result)
    assert result.code is ErrorCode.BAD_FRAME
    assert result.id == (frame.get("id") if name != "id" else None)


@FUZZ
@given(st.data())
def test_the_size_limit_counts_utf8_bytes_and_closes_1009(data: st.DataObject) -> None:
    text = data.draw(st.text(alphabet="aé€😀", min_size=1, max_size=400))
    frame = json.dumps({"type": "say", "id": "s", "text": text}, ensure_ascii=False)
    size = len(frame.encode("utf-8"))
    assert parse_client_frame(frame, max_size=size) == protocol.Say("s", text)
    over = parse_client_frame(frame, max_size=size - 1)
    assert over == FrameError(ErrorCode.TOO_LARGE, close_code=CloseCode.MESSAGE_TOO_BIG)
    # Bytes are never parsed, however valid the JSON in them.
    assert parse_client_frame(frame.encode("utf-8"), max_size=size) == FrameError(
        ErrorCode.BAD_FRAME
    )


@FUZZ
@given(st.data())
def test_near_valid_json_text_never_raises(data: st.DataObject) -> None:
    """Valid frames cut short, with a key repeated, nested deep, or padded: an answer."""
    frame = data.draw(valid_frames())
    text = json.dumps(frame)
    mangle = data.draw(st.sampled_from(["cut", "repeat", "nest", "pad", "bom", "array"]))
    if mangle == "cut":
        text = text[: data.draw(st.integers(0, len(text) - 1))]
    elif mangle == "repeat":
        # JSON leaves repeated keys to the reader; whichever wins, the answer is one.
        text = text[:-1] + ', "type": ' + json.dumps(data.draw(json_values)) + "}"
    elif mangle == "nest":
        depth = data.draw(st.integers(1, 5000))
        text = text[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    elif mangle == "pad":
        text = (
            data.draw(st.text(" \t\r\n", max_size=5)) + text + data.draw(st.text(" \n", max_size=5))
        )
    elif mangle == "bom":
        text = "\ufeff" + text
    else:
        text = "[" + text + "]"
    result = parse_client_frame(text, max_size=1 << 20)
    check_answer(result, text)
    if mangle == "pad":
        assert result == expected_frame(frame)
    if mangle in ("cut", "bom", "array"):
        assert result == FrameError(ErrorCode.BAD_FRAME), (text, result)


markers = st.text(min_size=6, max_size=30).filter(lambda s: s.strip() == s and _encodable(s))


@FUZZ
@given(st.data(), markers)
def test_an_error_carries_nothing_of_the_frame_but_its_id(data: st.DataObject, marker: str) -> None:
    """A marker in every field but ``type`` and ``id``: no error ever shows it."""
    kind = data.draw(st.sampled_from(list(FrameType)))
    frame = data.draw(valid_frames(kind))
    for name in FIELDS[kind]:
        if name != "id":
            frame[name] = data.draw(
                st.sampled_from([marker, [marker], {"x": marker}, marker * 2000, marker + "\ud800"])
            )
    frame[data.draw(unknown_names)] = marker
    result = parse_client_frame(json.dumps(frame))
    if isinstance(result, FrameError):
        assume(marker not in protocol.encode(protocol.error(result.code)))
        assert result.id in (None, frame.get("id")), (frame, result)
        wire = json.loads(protocol.encode(result.to_wire()))
        wire.pop("id", None)
        assert marker not in json.dumps(wire, ensure_ascii=False), (frame, wire)
