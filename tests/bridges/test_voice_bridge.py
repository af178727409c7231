"""The voice bridge without sockets: call scripts, the call's protocol state, playback."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridges.voice import (
    AgentMessage,
    Answered,
    CallState,
    Failed,
    Hangup,
    Playback,
    Say,
    ScriptError,
    Sentences,
    Speech,
    TaskChanged,
    Wait,
    WaitFor,
    Welcomed,
    conversation_ws_url,
    parse_script,
    parse_step,
)
from bridges.wire import SpeechState

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "voice" / "prior-auth-call.txt"
STARTED = Speech(SpeechState.STARTED)
STOPPED = Speech(SpeechState.STOPPED)

# -- call scripts ----------------------------------------------------------------------


def test_a_script_reads_as_its_steps_in_order() -> None:
    script = """
        # the caller asks, then talks on
        speak-start
        wait: 1.5
        speak-stop
        say: I need a prior authorization for my Ozempic prescription
        wait-for: in the background

        Speak-Start
        WAIT: 0
        speak-stop
        say:   What are your hours?
        hangup
    """
    assert parse_script(script) == [
        STARTED,
        Wait(1.5),
        STOPPED,
        Say("I need a prior authorization for my Ozempic prescription"),
        WaitFor("in the background"),
        STARTED,
        Wait(0.0),
        STOPPED,
        Say("What are your hours?"),
        Hangup(),
    ]


def test_space_around_a_step_and_its_text_is_trimmed() -> None:
    assert parse_step(" \t say:   What are your hours?  \t ") == Say("What are your hours?")
    assert parse_step("  hangup  ") == Hangup()


def test_only_the_first_colon_separates_a_step_from_its_text() -> None:
    assert parse_step("say: Note: it's urgent: really") == Say("Note: it's urgent: really")
    assert parse_step("wait-for: approved: reference") == WaitFor("approved: reference")


@pytest.mark.parametrize("line", ["", "   ", "# a comment", "   # say: not a step"])
def test_blank_lines_and_comments_are_no_steps(line: str) -> None:
    assert parse_step(line) is None


def test_json_lines_mean_the_same_steps() -> None:
    script = "\n".join(
        [
            '{"speech": "started"}',
            '{"wait": 2}',
            '{"speech": "stopped"}',
            '{"say": "What is Dana\'s date of birth?"}',
            '{"wait-for": "date of birth", "timeout": 5}',
            '{"wait-for": "March"}',
            "say: plain lines mix with JSON ones",
            '{"hangup": true}',
        ]
    )
    assert parse_script(script) == [
        STARTED,
        Wait(2.0),
        STOPPED,
        Say("What is Dana's date of birth?"),
        WaitFor("date of birth", 5.0),
        WaitFor("March"),
        Say("plain lines mix with JSON ones"),
        Hangup(),
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("shout: hello", "unknown step 'shout'"),
        ("dance", "unknown step 'dance'"),
        ("say:", "needs the caller's words"),
        ("say:    ", "needs the caller's words"),
        ("wait-for:", "needs the text"),
        ("wait: soon", "number of seconds"),
        ("wait: -1", ">= 0"),
        ("wait: nan", "finite"),
        ("wait: inf", "finite"),
        ("hangup: now", "takes no argument"),
        ("speak-start: loudly", "takes no argument"),
        ("{not json", "not valid JSON"),
        ("{", "not valid JSON"),
        ('{"say": "a", "wait": 1}', "exactly one"),
        ("{}", "exactly one"),
        ('{"timeout": 3}', "exactly one"),
        ('{"say": "hi", "timeout": 3}', "exactly one"),
        ('{"speech": "shouting"}', '"started" or "stopped"'),
        ('{"hangup": false}', "must be true"),
        ('{"wait": true}', "number of seconds"),
        ('{"wait": "1"}', "number of seconds"),
        ('{"wait": -0.5}', ">= 0"),
        ('{"say": ""}', "non-empty text"),
        ('{"say": 42}', "non-empty text"),
        ('{"wait-for": "x", "timeout": "soon"}', "number of seconds"),
        ('{"dance": true}', "unknown step 'dance'"),
    ],
)
def test_a_bad_line_is_refused_with_its_line_number(line: str, problem: str) -> None:
    with pytest.raises(ScriptError, match=r"^line 3: .*") as raised:
        parse_script(f"speak-start\n# fine so far\n{line}\nhangup")
    assert raised.value.line == 3
    assert problem in str(raised.value)


def test_a_json_array_is_no_step() -> None:
    with pytest.raises(ScriptError, match="unknown step"):
        parse_step('["say", "hi"]')


@given(st.text(max_size=200))
def test_any_line_is_a_step_nothing_or_a_script_error(line: str) -> None:
    error: ScriptError | None = None
    try:
        step = parse_step(line, line_number=7)
    except ScriptError as exc:
        error, step = exc, None
    if error is not None:
        assert error.line == 7
    else:
        assert step is None or isinstance(step, Say | Speech | Wait | WaitFor | Hangup)


def test_the_shipped_example_is_a_whole_call() -> None:
    steps = parse_script(EXAMPLE.read_text())
    assert steps[-1] == Hangup()
    says = [s.text for s in steps if isinstance(s, Say)]
    assert any("prior authorization" in text for text in says)
    # Voice activity is balanced: every turn starts and stops.
    speech = [s for s in steps if isinstance(s, Speech)]
    assert speech == [STARTED, STOPPED] * (len(speech) // 2)
    assert any(isinstance(s, WaitFor) and "quick update" in s.text.lower() for s in steps)


# -- the call's protocol state ---------------------------------------------------------


def message(
    seq: int, text: str = "hello", kind: str = "reply", **extra: object
) -> dict[str, object]:
    return {
        "type": "message",
        "seq": seq,
        "chat_id": "chat-1",
        "role": "agent",
        "kind": kind,
        "text": text,
        "speak": True,
        **extra,
    }


def test_hello_asks_for_a_voice_connection_resuming_after_the_last_seq() -> None:
    state = CallState(resume_after=12)
    assert state.hello("tok") == {
        "type": "hello",
        "token": "tok",
        "client": "voice",
        "resume_after": 12,
    }
    assert CallState().hello("tok")["resume_after"] == 0


def test_frames_the_bridge_sends() -> None:
    state = CallState()
    first, second = state.say("hi"), state.say("there")
    assert first == {"type": "say", "id": "say-1", "text": "hi"}
    assert second["id"] == "say-2"
    assert state.speech(SpeechState.STARTED) == {"type": "speech", "state": "started"}
    assert state.speaking
    state.speech(SpeechState.STOPPED)
    assert not state.speaking


def test_server_frames_become_events() -> None:
    state = CallState()
    assert state.receive({"type": "welcome", "protocol": 1, "conversation_id": "c", "last_seq": 4})
    assert state.conversation_id == "c"
    assert state.receive({"type": "ack", "id": "say-1", "seq": 3}) == Answered("say-1", 3)
    assert state.receive({"type": "ack", "id": "say-2"}) == Answered("say-2", None)
    assert state.receive({"type": "error", "id": "say-3", "code": "rate_limited"}) == Failed(
        "say-3", "rate_limited"
    )
    assert state.receive({"type": "error", "code": "bad_frame"}) == Failed(None, "bad_frame")
    assert state.receive(message(1, "Let me start that", task_id="t1")) == AgentMessage(
        1, "reply", "Let me start that", True, "t1"
    )
    view = {"id": "t1", "state": "working"}
    assert state.receive({"type": "task", "seq": 2, "task": view}) == TaskChanged(2, view)
    # The caller's own words, pongs, results and types added later are not events.
    user = {**message(3), "role": "user"}
    for frame in (user, {"type": "pong", "id": "p"}, {"type": "result", "id": "r"}):
        assert state.receive(frame) is None
    assert state.receive({"type": "presence", "seq": 4}) is None
    assert state.last_seq == 4


def test_welcome_event_carries_the_last_seq() -> None:
    assert CallState().receive({"type": "welcome", "conversation_id": "c", "last_seq": 9}) == (
        Welcomed("c", 9)
    )


def test_an_agent_message_without_speak_is_not_to_be_spoken() -> None:
    frame = message(1)
    del frame["speak"]
    event = CallState().receive(frame)
    assert isinstance(event, AgentMessage)
    assert not event.speak


def test_the_resume_point_never_passes_a_held_message() -> None:
    # A follow-up stored as 5 is held while the caller speaks; 6 and 7 arrive first.
    state = CallState(resume_after=4)
    assert state.receive(message(6)) is not None
    assert state.receive(message(7)) is not None
    assert state.last_seq == 4  # resuming from 7 would lose 5
    assert state.receive(message(5, kind="followup")) is not None
    assert state.last_seq == 7


def test_a_replay_repeats_nothing_already_received() -> None:
    state = CallState(resume_after=2)
    assert state.receive(message(2)) is None  # at or before the resume point
    state.receive(message(4))
    assert state.receive(message(4)) is None  # ahead of the resume point, seen already
    assert state.receive(message(3)) is not None
    assert state.receive(message(3)) is None
    assert state.last_seq == 4


@pytest.mark.parametrize("seq", [None, "5", True, 1.5])
def test_a_stream_event_without_an_integer_seq_is_ignored(seq: object) -> None:
    state = CallState()
    assert state.receive({**message(1), "seq": seq}) is None
    assert state.last_seq == 0


def delta(message_id: str, text: str) -> dict[str, object]:
    return {"type": "message.delta", "message_id": message_id, "chat_id": "chat-1", "text": text}


def test_a_streamed_reply_is_handed_on_a_whole_sentence_at_a_time() -> None:
    state = CallState()
    assert state.receive(delta("m1", "Let me check")) is None
    assert state.receive(delta("m1", " that. It may")) == Sentences("m1", "Let me check that.")
    assert state.receive(delta("m1", " take a minute! Dana's")) == Sentences(
        "m1", "It may take a minute!"
    )
    assert state.receive(delta("m1", " PA is filed")) is None
    # The stored message: only what was not said ahead is still to say.
    text = "Let me check that. It may take a minute! Dana's PA is filed."
    stored = state.receive(message(1, text, message_id="m1"))
    assert isinstance(stored, AgentMessage)
    assert stored.text == text
    assert stored.unsaid == "Dana's PA is filed."
    # A message that never streamed is said whole; one whose text does not begin with
    # what streamed (it was stored otherwise) is said whole too.
    assert state.receive(message(2, "Hello.", message_id="m2")).unsaid == "Hello."  # type: ignore[union-attr]
    state.receive(delta("m3", "One thing. "))
    other = state.receive(message(3, "Something else entirely.", message_id="m3"))
    assert isinstance(other, AgentMessage)
    assert other.unsaid == "Something else entirely."


def test_streams_whose_message_never_came_are_forgotten() -> None:
    state = CallState()
    for n in range(20):
        state.receive(delta(f"m{n}", "Half a sentence. And"))
    assert len(state._drafts) <= 8
    assert state.receive({"type": "message.delta", "text": "no id"}) is None


# -- playback --------------------------------------------------------------------------


class RecordingSpeaker:
    """Speaks instantly, except "slow …" texts, which play until cut."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.stops = 0
        self.playing_slow = anyio.Event()

    async def speak(self, text: str) -> None:
        self.started.append(text)
        if text.startswith("slow"):
            self.playing_slow.set()
            await anyio.sleep_forever()
        await anyio.lowlevel.checkpoint()

    def stop(self) -> None:
        self.stops += 1


def said(seq: int, text: str) -> AgentMessage:
    return AgentMessage(seq, "reply", text, True)


@pytest.mark.anyio
async def test_barge_in_cuts_what_plays_and_drops_what_waits() -> None:
    speaker = RecordingSpeaker()
    heard: list[AgentMessage] = []
    all_heard = anyio.Event()

    def on_heard(message: AgentMessage) -> None:
        heard.append(message)
        if message.seq == 4:
            all_heard.set()

    playback = Playback(speaker, on_heard)
    async with anyio.create_task_group() as tg:
        tg.start_soon(playback.run)
        await playback.queue(said(1, "quick"))
        await playback.queue(said(2, "slow reply"))
        await playback.queue(said(3, "then the progress"))
        with anyio.fail_after(5):
            await speaker.playing_slow.wait()
        cut = playback.stop()
        assert [m.seq for m in cut] == [2, 3]
        assert speaker.stops == 1
        # Nothing playing: a barge-in has nothing to cut.
        await anyio.wait_all_tasks_blocked()
        assert playback.stop() == ()
        assert speaker.stops == 1
        await playback.queue(said(4, "after the caller's turn"))
        with anyio.fail_after(5):
            await all_heard.wait()
        tg.cancel_scope.cancel()
    assert [m.seq for m in heard] == [1, 4]
    assert speaker.started == ["quick", "slow reply", "after the caller's turn"]


# -- addresses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "url"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/v1/conversations/conv_1/ws"),
        ("https://sb.example/", "wss://sb.example/v1/conversations/conv_1/ws"),
        ("https://sb.example/api", "wss://sb.example/api/v1/conversations/conv_1/ws"),
    ],
)
def test_the_conversation_socket_url(server: str, url: str) -> None:
    assert conversation_ws_url(server, "conv_1") == url


def test_only_http_servers_are_accepted() -> None:
    with pytest.raises(ValueError, match="http"):
        conversation_ws_url("file:///etc/passwd", "conv_1")


@pytest.mark.anyio
async def test_a_streamed_reply_is_spoken_as_its_sentences_come_then_the_rest() -> None:
    speaker = RecordingSpeaker()
    heard: list[AgentMessage] = []
    both = anyio.Event()

    def on_heard(message: AgentMessage) -> None:
        heard.append(message)
        if len(heard) == 2:
            both.set()

    playback = Playback(speaker, on_heard)
    async with anyio.create_task_group() as tg:
        tg.start_soon(playback.run)
        await playback.queue(Sentences("m1", "Let me check that."))
        await playback.queue(AgentMessage(1, "reply", "Let me check that. Done.", True, None, 19))
        await playback.queue(AgentMessage(2, "reply", "Let me check that.", True, None, 19))
        with anyio.fail_after(5):
            await both.wait()
        tg.cancel_scope.cancel()
    assert speaker.started == ["Let me check that.", "Done."]
    assert [m.seq for m in heard] == [1, 2]  # each stored message heard once
