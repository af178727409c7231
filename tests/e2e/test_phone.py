"""A phone call the way Twilio places it, through the phone bridge, to a real server.

The test is the telephone network: it synthesises the caller's lines with espeak-ng,
sends them to the bridge as 20 ms μ-law ``media`` frames in real time (silence between
lines, as a phone line carries), and transcribes what comes back with pocketsphinx.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError

from bridges.phone import STREAM_PATH, PhoneBridge
from bridges.phone.signing import sign, twilio_signature
from bridges.speech import (
    Audio,
    EspeakSynthesizer,
    PocketSphinxRecognizer,
    Transcoder,
    synthesize_frames,
)
from bridges.speech.audio import FRAME_MS, MULAW_FRAME_BYTES, MULAW_SILENCE, TELEPHONE_RATE
from bridges.speech.stt import words
from bridges.wire import DEVELOPMENT_SECRET

from .conftest import ServerProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

PRIOR_AUTH = "I need a prior authorization for my aspirin prescription"
IDENTITY = "this is Dana Whitfield born March fourteenth nineteen sixty eight"
# What the bridge's recogniser expects callers to say, and the test's what the agent says.
CALLER_VOCABULARY = [
    "I need a prior authorization for my aspirin prescription",
    "this is Dana Whitfield born March fourteenth nineteen sixty eight",
    "what are your opening hours",
    "who is my provider",
    "great thanks",
]
AGENT_VOCABULARY = [
    "I can help with that first I need to confirm who I'm speaking with",
    "please tell me your full name and date of birth",
    "thank you Dana I've confirmed who you are",
    "we're open Monday to Friday",
    "Dana Whitfield's provider is doctor Priya Natarajan",
    "let me start that in the background",
    "I'll file the prior authorization for aspirin",
    "and let you know as soon as the payer decides",
    "submitting the aspirin request to the payer",
    "quick update on the prior auth you asked about earlier",
    "approved the payer approved aspirin reference",
]
SILENCE = MULAW_SILENCE * MULAW_FRAME_BYTES
SIGNING_SECRET = "the-operator's-phone-signing-secret-0123456789"
AUTH_TOKEN = "a-twilio-auth-token"
CALLER_NUMBER = "+15550100"


@dataclass
class Line:
    """The telephone network's end of one Media Stream."""

    socket: ClientConnection
    stream_sid: str = "MZ00000000000000000000000000000001"
    heard: list[tuple[float, bytes]] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    other: list[dict[str, Any]] = field(default_factory=list)

    async def start(self, **parameters: str) -> None:
        await self.socket.send(
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        )
        start = {
            "accountSid": "AC0",
            "streamSid": self.stream_sid,
            "callSid": "CA0",
            "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        await self.socket.send(
            json.dumps({"event": "start", "streamSid": self.stream_sid, "start": start})
        )
        self._chunk = 0

    async def play(self, frames: list[bytes]) -> None:
        """Send *frames* at the rate they play."""
        began = time.monotonic()
        for index, frame in enumerate(frames):
            await anyio.sleep(max(0.0, began + index * FRAME_MS / 1000 - time.monotonic()))
            self._chunk += 1
            media = {
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str(self._chunk * FRAME_MS),
                "payload": base64.b64encode(frame).decode(),
            }
            await self.socket.send(
                json.dumps({"event": "media", "streamSid": self.stream_sid, "media": media})
            )

    async def silence(self, seconds: float) -> None:
        await self.play([SILENCE] * int(seconds * 1000 / FRAME_MS))

    async def say(self, frames: list[bytes]) -> tuple[float, float]:
        """The caller says *frames* (then a breath of silence); when they spoke."""
        began = time.monotonic()
        await self.play(frames)
        ended = time.monotonic()
        await self.silence(0.2)
        return began, ended

    async def wait_for_quiet(self, after: float, quiet: float = 1.2, within: float = 30) -> None:
        """Carry silence until the agent has said something since *after*, then been
        quiet for *quiet* seconds: the caller's turn, as a polite caller takes it."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            last = self.heard[-1][0] if self.heard else 0.0
            if last > after and time.monotonic() - last >= quiet:
                return
            await self.silence(0.1)
        raise TimeoutError("the agent never finished speaking")

    def frames_between(self, start: float, end: float) -> list[bytes]:
        return [frame for at, frame in self.heard if start <= at < end]

    async def listen(self) -> None:
        async for raw in self.socket:
            message = json.loads(raw)
            assert message.get("streamSid") == self.stream_sid
            if message["event"] == "media":
                self.heard.append((time.monotonic(), base64.b64decode(message["media"]["payload"])))
            elif message["event"] == "clear":
                self.clears.append(time.monotonic())
            elif message["event"] == "mark":
                # Played at once: the bridge sends audio no faster than it plays.
                self.marks.append(message["mark"]["name"])
                await self.socket.send(json.dumps(message))
            else:
                self.other.append(message)


@dataclass
class Phone:
    """The bridge as Twilio reaches it."""

    http: str

    @property
    def stream(self) -> str:
        return self.http.replace("http://", "ws://") + STREAM_PATH

    async def answer(self, number: str = CALLER_NUMBER) -> dict[str, str]:
        """What Twilio does when a call comes in: fetch the TwiML (signed with the
        account's auth token), and return the stream's parameters."""
        url = f"{self.http}/twilio/voice?CallSid=CA0&From=%2B{number[1:]}&To=%2B15550111"
        signature = twilio_signature(AUTH_TOKEN, url)
        async with httpx.AsyncClient() as client:
            answer = await client.get(url, headers={"X-Twilio-Signature": signature})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/xml")
        stream = ElementTree.fromstring(answer.text).find("./Connect/Stream")
        assert stream is not None
        assert stream.get("url") == self.stream
        return {p.attrib["name"]: p.attrib["value"] for p in stream.iter("Parameter")}


@pytest.fixture
async def phone(server: ServerProcess, espeak: EspeakSynthesizer) -> AsyncIterator[Phone]:
    async with phone_for(server, espeak) as line:
        yield line


@pytest.fixture
async def slow_payer_phone(server_factory: Any, espeak: EspeakSynthesizer) -> AsyncIterator[Phone]:
    """A phone in front of a server whose payer takes 48 s to decide: long enough for a
    caller to be verified and ask two more questions meanwhile."""
    async with phone_for(server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE="8"), espeak) as line:
        yield line


@contextlib.asynccontextmanager
async def phone_for(server: ServerProcess, espeak: EspeakSynthesizer) -> AsyncIterator[Phone]:
    port = free_port()
    bridge = PhoneBridge(
        server.http,
        DEVELOPMENT_SECRET,
        SIGNING_SECRET,
        f"http://127.0.0.1:{port}",
        twilio_auth_token=AUTH_TOKEN,
        stt=PocketSphinxRecognizer(CALLER_VOCABULARY),
        tts=espeak,
    )
    listening = await bridge.serve("127.0.0.1", port)
    yield Phone(f"http://127.0.0.1:{port}")
    listening.close()
    await listening.wait_closed()


def transcribe(frames: list[bytes]) -> str:
    """What the caller makes of *frames*. The decoder adapts to the line as it listens
    (its cepstral mean), so it hears the call once before the transcript is taken."""
    audio = Audio(b"".join(Transcoder.decode(f) for f in frames), TELEPHONE_RATE)
    recognizer = PocketSphinxRecognizer(AGENT_VOCABULARY, workers=1)
    recognizer.transcribe_sync(audio)
    return recognizer.transcribe_sync(audio)


async def test_a_caller_who_asks_for_a_prior_authorization_hears_the_agent_take_it_on(
    phone: Phone, espeak: EspeakSynthesizer
) -> None:
    asks = await synthesize_frames(espeak, PRIOR_AUTH)
    identity = await synthesize_frames(espeak, IDENTITY)
    parameters = await phone.answer()
    async with connect(phone.stream) as socket, anyio.create_task_group() as tg:
        line = Line(socket)
        tg.start_soon(line.listen)
        await line.start(**parameters)
        await line.silence(0.3)
        _, ended = await line.say(asks)
        await line.wait_for_quiet(ended)
        asked_who = time.monotonic()
        await line.say(identity)
        # A phone line carries silence while the caller listens; the demo's payer
        # decides in 6 s.
        await line.silence(22)
        tg.cancel_scope.cancel()
    assert line.heard, "no audio came back"
    assert line.heard[0][0] > ended
    assert all(len(frame) == MULAW_FRAME_BYTES for _, frame in line.heard)
    # Paced in real time: the frames arrive no faster than they play.
    span = line.heard[-1][0] - line.heard[0][0]
    assert span >= (len(line.heard) - 1) * FRAME_MS / 1000 * 0.9
    # Each message spoken ends with a mark of its own (the reply and the follow-up at
    # least), which Twilio echoes once it has played.
    assert len(line.marks) >= 2, line.marks
    assert len(set(line.marks)) == len(line.marks)
    # Nothing of the work before the caller said who they are.
    first = words(transcribe(line.frames_between(0, asked_who)))
    assert "confirm" in first, " ".join(first)
    assert "background" not in first, first
    heard = words(transcribe(line.frames_between(asked_who, time.monotonic())))
    said = " ".join(heard)
    assert "confirmed" in heard, said
    assert "background" in heard, said
    assert "approved" in heard[heard.index("background") :], said


@pytest.mark.timeout(180)
async def test_the_prior_auth_call_is_woven_around_the_caller_and_never_over_them(
    slow_payer_phone: Phone, espeak: EspeakSynthesizer
) -> None:
    """The seed's call, by phone: the caller asks, is asked who they are, keeps asking
    while the payer decides, and hears the approval after the answer to their next
    question, in a pause, never over their own voice."""
    asks, identity, hours, provider = [
        await synthesize_frames(espeak, text)
        for text in (PRIOR_AUTH, IDENTITY, "what are your opening hours", "who is my provider")
    ]
    phone = slow_payer_phone
    parameters = await phone.answer()
    spoke: list[tuple[float, float]] = []
    async with connect(phone.stream) as socket, anyio.create_task_group() as tg:
        line = Line(socket)
        tg.start_soon(line.listen)
        await line.start(**parameters)
        await line.silence(0.3)
        spoke.append(await line.say(asks))
        await line.wait_for_quiet(spoke[-1][1])
        asked_who = time.monotonic()
        spoke.append(await line.say(identity))
        await line.wait_for_quiet(spoke[-1][1], quiet=1.5)
        taken_on = time.monotonic()
        # The payer decides in 6 s: both questions are asked while it does.
        spoke.append(await line.say(hours))
        await line.wait_for_quiet(spoke[-1][1])
        spoke.append(await line.say(provider))
        asked_provider = spoke[-1][1]
        with anyio.fail_after(60):
            while True:
                await line.wait_for_quiet(asked_provider, quiet=1.5)
                since = line.frames_between(asked_provider, time.monotonic())
                if "approved" in words(await anyio.to_thread.run_sync(transcribe, since)):
                    break
                await line.silence(1)
        tg.cancel_scope.cancel()

    assert all(len(frame) == MULAW_FRAME_BYTES for _, frame in line.heard)
    # Nothing was said over the caller: no audio reached the line while they spoke
    # (the first 300 ms aside: an update that began as they did is cut by barge-in).
    for began, ended in spoke:
        over = [at for at, _ in line.heard if began + 0.3 < at < ended]
        assert not over, f"{len(over)} frames over the caller at {began:.1f}-{ended:.1f}"
    first = words(transcribe(line.frames_between(0, asked_who)))
    assert "confirm" in first, " ".join(first)
    assert "background" not in first, first
    verified = words(transcribe(line.frames_between(asked_who, taken_on)))
    assert "confirmed" in verified, verified
    assert "background" in verified, verified
    last = words(transcribe(line.frames_between(asked_provider, time.monotonic())))
    # The answer to the question first, then the approval, at the pause after it.
    assert "natarajan" in last or "provider" in last, last
    assert "approved" in last, last
    answer_at = max(last.index(w) for w in ("natarajan", "provider") if w in last)
    assert answer_at < last.index("approved"), last


@pytest.mark.parametrize("tamper", ["unsigned", "other caller", "other secret", "expired"])
async def test_a_stream_the_operator_did_not_set_up_is_refused(
    phone: Phone, tamper: str, caplog: pytest.LogCaptureFixture
) -> None:
    parameters = await phone.answer()
    if tamper == "unsigned":
        del parameters["signature"]
    elif tamper == "other caller":
        parameters["caller"] = "phone-15550199"
    elif tamper == "other secret":
        parameters = sign("someone-else's-secret-of-32-bytes-at-least", parameters)
    else:
        parameters = sign(SIGNING_SECRET, parameters, ttl=-1)
    async with connect(phone.stream) as socket:
        await Line(socket).start(**parameters)
        with anyio.fail_after(5), contextlib.suppress(ConnectionClosedError):
            async for _ in socket:
                raise AssertionError("the bridge spoke on a refused stream")
    assert socket.close_code == 1008
    refusals = [r.getMessage() for r in caplog.records if "refused a stream" in r.getMessage()]
    assert len(refusals) == 1
    assert "15550" not in refusals[0]


async def test_the_twiml_webhook_needs_twilios_signature(phone: Phone) -> None:
    url = f"{phone.http}/twilio/voice?CallSid=CA0&From=%2B15550100"
    async with httpx.AsyncClient() as client:
        unsigned = await client.get(url)
        forged = await client.get(url, headers={"X-Twilio-Signature": twilio_signature("x", url)})
        signed = await client.get(
            url, headers={"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, url)}
        )
    assert (unsigned.status_code, forged.status_code, signed.status_code) == (403, 403, 200)
    assert "15550100" not in unsigned.text


def onset(frames: list[bytes], threshold: int = 500) -> int:
    """The index of the first frame of *frames* louder than *threshold*: where the
    caller's speech begins, as the test knows it."""
    for index, frame in enumerate(frames):
        if max(abs(sample) for sample in array("h", Transcoder.decode(frame))) > threshold:
            return index
    raise AssertionError("the line is silent")


async def test_a_caller_who_speaks_over_the_agent_cuts_it_off_within_300_ms(
    phone: Phone, espeak: EspeakSynthesizer
) -> None:
    question = await synthesize_frames(espeak, "What are your opening hours?")
    interruption = await synthesize_frames(espeak, "Great, thanks")
    spoke_at = 0.0
    async with connect(phone.stream) as socket, anyio.create_task_group() as tg:
        line = Line(socket)
        tg.start_soon(line.listen)
        await line.start(**await phone.answer())
        await line.silence(0.3)
        await line.play(question)
        with anyio.fail_after(15):
            while not line.heard:
                await line.silence(0.02)
        # A second into the answer, the caller speaks over it.
        await line.silence(1.0)
        cut_from = len(line.heard)
        lead = onset(interruption)
        await line.play(interruption[:lead])
        spoke_at = time.monotonic()
        await line.play(interruption[lead:])
        # Its answer to the interruption may start once voice activity has stopped.
        spoke_until = time.monotonic()
        await line.silence(1.0)
        tg.cancel_scope.cancel()
    assert line.clears, "no clear was sent"
    assert line.clears[0] - spoke_at < 0.3, line.clears[0] - spoke_at
    assert line.clears[0] > spoke_at
    # The reply stopped: at most a frame in flight after the clear.
    after = [at for at, _ in line.heard[cut_from:] if line.clears[0] + 0.05 < at < spoke_until]
    assert len(after) <= 1, len(after)
