"""One phone call's own logic, without sockets: the caller's audio through the Listener,
Twilio's messages through PhoneCall, the agent's replies through TwilioSpeaker.

The conversation side is a stand-in that records what the bridge would send the server;
the audio is espeak-ng's, as on a real line.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest

from bridges.phone import Listener, PhoneCall, TwilioSpeaker, twilio
from bridges.phone.call import MAX_UTTERANCE_S
from bridges.speech import Activity, Audio, EspeakSynthesizer, synthesize_frames
from bridges.speech.audio import FRAME_MS, MULAW_FRAME_BYTES, MULAW_SILENCE, TELEPHONE_RATE
from bridges.voice import VoiceBridge
from bridges.wire import SpeechState

pytestmark = pytest.mark.anyio

SID = "MZ00000000000000000000000000000001"
SILENCE = MULAW_SILENCE * MULAW_FRAME_BYTES
# About 50 s of speech with no pause a detector would take for the end of a turn.
MONOLOGUE = " and ".join(["the patient would like to book an appointment for next week"] * 13)


class Playback:
    """Records, for each cut, how many frames the server had been sent by then."""

    def __init__(self, sent: list[tuple[str, str]]) -> None:
        self._sent = sent
        self.cuts: list[int] = []

    def stop(self) -> tuple[object, ...]:
        self.cuts.append(len(self._sent))
        return ()


class StandInBridge:
    """What PhoneCall uses of a VoiceBridge; records what would go to the server."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.playback = Playback(self.sent)
        self._ended = anyio.Event()

    async def __aenter__(self) -> StandInBridge:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def speech(self, state: SpeechState) -> None:
        if state is SpeechState.STARTED:
            self.playback.stop()
        self.sent.append(("speech", state.value))

    async def say(self, text: str) -> int:
        self.sent.append(("say", text))
        return len(self.sent)

    async def wait_ended(self) -> int:
        await self._ended.wait()
        return 1000


class SlowRecognizer:
    """Speech-to-text that takes *seconds* per utterance and hears its length."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def transcribe(self, audio: Audio) -> str:
        await anyio.sleep(self.seconds)
        return f"utterance of {round(audio.seconds)} s"


def media(frame: bytes, chunk: int) -> str:
    return json.dumps(
        {
            "event": "media",
            "streamSid": SID,
            "media": {
                "track": "inbound",
                "chunk": str(chunk),
                "timestamp": str(chunk * FRAME_MS),
                "payload": base64.b64encode(frame).decode(),
            },
        }
    )


def feeder(
    messages: list[str], hold: Callable[[], Awaitable[None]] | None = None
) -> Callable[[], Awaitable[str | None]]:
    """Twilio's messages one after another, with a checkpoint between them; then, once
    *hold* returns (the line stays open meanwhile), ``stop``."""
    pending = iter(messages)
    stop = json.dumps({"event": "stop", "streamSid": SID, "stop": {"callSid": "CA0"}})

    async def receive() -> str | None:
        await anyio.lowlevel.checkpoint()
        message = next(pending, None)
        if message is None and hold is not None:
            with anyio.fail_after(10):
                await hold()
        return stop if message is None else message

    return receive


async def test_a_caller_who_never_pauses_is_heard_in_30_s_utterances(
    espeak: EspeakSynthesizer,
) -> None:
    frames = await synthesize_frames(espeak, MONOLOGUE)
    assert len(frames) * FRAME_MS / 1000 > MAX_UTTERANCE_S + 5
    listener = Listener()
    events: list[tuple[Activity, float]] = []
    utterances: list[Audio] = []
    for index, frame in enumerate([*frames, *[SILENCE] * 50]):
        activity = listener.feed(frame)
        if activity is not None:
            events.append((activity, index * FRAME_MS / 1000))
        if activity is Activity.STOPPED:
            utterances.append(listener.utterance())
    # The cut ends one utterance, and the speech that goes on is a new one: started
    # again (so the server knows the caller still speaks), stopped at the real end.
    assert [a for a, _ in events] == [
        Activity.STARTED,
        Activity.STOPPED,
        Activity.STARTED,
        Activity.STOPPED,
    ], events
    assert events[1][1] == pytest.approx(MAX_UTTERANCE_S, abs=0.5)
    assert events[2][1] - events[1][1] < 0.2
    spoken = len(frames) * FRAME_MS / 1000
    assert utterances[0].seconds <= MAX_UTTERANCE_S + 0.3
    assert sum(u.seconds for u in utterances) == pytest.approx(spoken, abs=1.0)


async def test_a_cut_utterance_reaches_the_server_in_the_order_it_was_spoken(
    espeak: EspeakSynthesizer,
) -> None:
    frames = await synthesize_frames(espeak, MONOLOGUE)
    bridge = StandInBridge()
    call = PhoneCall(cast(VoiceBridge, bridge), SlowRecognizer(0.3))
    messages = [media(f, n) for n, f in enumerate([*frames, *[SILENCE] * 50])]

    async def both_said() -> None:
        while sum(kind == "say" for kind, _ in bridge.sent) < 2:  # noqa: ASYNC110
            await anyio.sleep(0.05)

    await call.run(feeder(messages, both_said))
    # The second started comes while the first utterance is still being transcribed:
    # the server must still hear stopped (and its say) first.
    assert bridge.sent == [
        ("speech", "started"),
        ("speech", "stopped"),
        ("say", "utterance of 30 s"),
        ("speech", "started"),
        ("speech", "stopped"),
        ("say", f"utterance of {round(len(frames) * FRAME_MS / 1000 - 30)} s"),
    ]
    # ...while the playback was cut the moment the caller went on speaking, before the
    # first utterance's transcript was in.
    assert 1 in bridge.playback.cuts, bridge.playback.cuts


async def test_dtmf_digits_are_counted_and_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    digits = "03141980#"  # a date of birth, keyed in
    messages = [
        json.dumps(
            {"event": "dtmf", "streamSid": SID, "dtmf": {"track": "inbound_track", "digit": d}}
        )
        for d in digits
    ]
    call = PhoneCall(cast(VoiceBridge, StandInBridge()), SlowRecognizer(0))
    await call.run(feeder(messages))
    assert call.dtmf_digits == len(digits)
    logged = [r.getMessage() for r in caplog.records]
    assert any(f"{len(digits)} DTMF digits" in line for line in logged), logged
    for line in logged:
        assert "0314" not in line
        assert "1980" not in line
        assert "#" not in line


class Line:
    """Twilio's end of the speaker: what the bridge sent, in order."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.marked = anyio.Event()

    async def send(self, message: str) -> None:
        self.sent.append(json.loads(message))
        if self.sent[-1]["event"] == "mark":
            self.marked.set()

    def kinds(self) -> list[str]:
        return [m["event"] for m in self.sent]


class ToneSynthesizer:
    async def synthesize(self, text: str) -> Audio:
        return Audio(b"\x10\x00" * (TELEPHONE_RATE // 10), TELEPHONE_RATE)  # 100 ms


async def test_a_reply_is_heard_once_twilio_echoes_its_mark() -> None:
    line = Line()
    async with anyio.create_task_group() as tg:
        speaker = TwilioSpeaker(ToneSynthesizer(), line.send, SID, tg)
        done = anyio.Event()

        async def speak() -> None:
            await speaker.speak("one moment")
            done.set()

        tg.start_soon(speak)
        with anyio.fail_after(2):
            await line.marked.wait()
        # All the audio went out first, then the mark, and Twilio has not yet echoed it.
        assert line.kinds() == ["media"] * 5 + ["mark"]
        await anyio.sleep(0.2)
        assert not done.is_set()
        speaker.marked("someone else's mark")
        await anyio.sleep(0.05)
        assert not done.is_set()
        speaker.marked(line.sent[-1]["mark"]["name"])
        with anyio.fail_after(1):
            await done.wait()
    assert line.sent[-1] == json.loads(twilio.mark(SID, line.sent[-1]["mark"]["name"]))
    assert speaker.marks_missed == 0


async def test_twilios_mark_reaches_the_speaker_through_the_call() -> None:
    line = Line()
    bridge = StandInBridge()
    async with anyio.create_task_group() as tg:
        speaker = TwilioSpeaker(ToneSynthesizer(), line.send, SID, tg)
        played = anyio.Event()

        async def speak() -> None:
            await speaker.speak("one moment")
            played.set()

        tg.start_soon(speak)
        with anyio.fail_after(2):
            await line.marked.wait()
        name = line.sent[-1]["mark"]["name"]
        echo = json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": name}})
        call = PhoneCall(cast(VoiceBridge, bridge), SlowRecognizer(0), speaker)
        await call.run(feeder([echo]))
        with anyio.fail_after(0.5):
            await played.wait()
