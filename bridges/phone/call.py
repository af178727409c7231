"""One phone call: a Twilio Media Streams socket carried over a conversation socket.

:class:`PhoneCall` is the reference bridge's :class:`~bridges.voice.VoiceBridge` with
audio at the caller's end: the caller's μ-law frames go through voice activity
detection (``speech`` ``started``/``stopped``) and, one utterance at a time, through
speech-to-text (``say``); every message the server marks ``speak: true`` goes through
text-to-speech and back to Twilio as 20 ms ``media`` frames, paced in real time. When
the caller starts speaking over the agent, playback is cut and Twilio is told to drop
what it has buffered (``clear``); the background work goes on, on the server.

The engines' CPU work runs in worker threads or processes (:mod:`bridges.speech`);
only voice activity (microseconds a frame) and μ-law decoding run on the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from bridges.speech import (
    Activity,
    Audio,
    SpeechError,
    SpeechToText,
    TextToSpeech,
    Transcoder,
    VoiceActivity,
    synthesize_frames,
)
from bridges.speech.audio import ENGINE_RATE, FRAME_MS
from bridges.voice import BridgeError, VoiceBridge
from bridges.wire import SpeechState

from . import twilio

log = logging.getLogger("bridges.phone")

Send = Callable[[str], Coroutine[Any, Any, None]]
"""Sends one text message to Twilio."""

PRE_ROLL_FRAMES = 10
"""Frames kept from before voice activity starts (its debounce), so that speech-to-text
hears the first syllable too."""
MAX_UTTERANCE_S = 30.0
"""Longer speech is cut into utterances of this length (a caller who never pauses)."""
MARK_TIMEOUT_S = 2.0
"""How long after a reply's last frame its mark's echo may take: Twilio holds a frame or
two of it (the frames go out at the rate they play), the rest is the network's delay."""


class TwilioSpeaker:
    """The :class:`~bridges.voice.Speaker` of a phone call: text to ``media`` frames.

    :meth:`speak` synthesises *text* (off the event loop) and sends its 20 ms frames
    paced at the rate they play, so a reply cut by barge-in leaves no more than a frame
    or two in Twilio's buffer; :meth:`stop` sends ``clear`` for those. After the last
    frame it sends a ``mark``, and returns when Twilio echoes it (:meth:`marked`): the
    reply has then played to the end, and the caller's pause begins. A barge-in before
    the echo still cuts the reply (it was not yet heard to the end), and an echo that
    never comes is waited for :data:`MARK_TIMEOUT_S` at most.
    """

    def __init__(self, tts: TextToSpeech, send: Send, stream_sid: str, tg: TaskGroup) -> None:
        self.tts = tts
        self._send = send
        self._stream_sid = stream_sid
        self._tg = tg
        self.frames_sent = 0
        # time.monotonic() of the first frame of each reply: the benchmark reads them.
        self.reply_started: list[float] = []
        self.marks_sent = 0
        self.marks_missed = 0
        # The mark each speak() waits for: one at a time, as replies are spoken.
        self._awaited: dict[str, anyio.Event] = {}

    async def speak(self, text: str) -> None:
        try:
            frames = await synthesize_frames(self.tts, text)
        except SpeechError as exc:
            log.warning("phone call: text-to-speech failed (%s)", type(exc).__name__)
            return
        start = time.monotonic()
        self.reply_started.append(start)
        for index, frame in enumerate(frames):
            # Paced against the clock, not by sleeps that add up.
            await anyio.sleep(max(0.0, start + index * FRAME_MS / 1000 - time.monotonic()))
            await self._send(twilio.media(self._stream_sid, frame))
            self.frames_sent += 1
        await self._wait_played()

    async def _wait_played(self) -> None:
        """Mark the end of what was sent, and wait until Twilio has played it."""
        self.marks_sent += 1
        name = f"reply-{self.marks_sent}"
        played = self._awaited[name] = anyio.Event()
        try:
            await self._send(twilio.mark(self._stream_sid, name))
            with anyio.move_on_after(MARK_TIMEOUT_S) as waiting:
                await played.wait()
            if waiting.cancelled_caught:
                self.marks_missed += 1
                log.info("phone call: no echo of a mark within %g s", MARK_TIMEOUT_S)
        finally:
            del self._awaited[name]

    def marked(self, name: str) -> None:
        """Twilio echoed the mark *name*: what was sent before it has played (or was
        dropped by ``clear``). Marks this speaker no longer waits for are ignored."""
        played = self._awaited.get(name)
        if played is not None:
            played.set()

    def stop(self) -> None:
        self._tg.start_soon(self._send, twilio.clear(self._stream_sid))


@dataclass
class Listener:
    """The caller's side: μ-law frames in, utterances out (sans-I/O).

    :meth:`feed` returns the voice activity a frame completes; after ``stopped``,
    :meth:`utterance` gives the audio since ``started`` (with a little before it).
    """

    vad: VoiceActivity = field(default_factory=VoiceActivity)
    transcoder: Transcoder = field(default_factory=Transcoder)
    _recent: list[bytes] = field(default_factory=list)
    _speech: list[bytes] = field(default_factory=list)

    def feed(self, mulaw: bytes) -> Activity | None:
        pcm = self.transcoder.decode(mulaw)
        wide = self.transcoder.upsample(pcm)
        event = self.vad.feed(pcm) if len(pcm) == self.vad.frame_bytes else None
        if self.vad.speaking or event is not None:
            if event is not None and event.activity is Activity.STARTED:
                self._speech = list(self._recent)
            self._speech.append(wide)
            if len(self._speech) * FRAME_MS / 1000 >= MAX_UTTERANCE_S and event is None:
                # Cut here, and let the detector start afresh: if the caller goes on
                # speaking, the rest is an utterance of its own, with its own started
                # (left speaking, the detector would never report it).
                self.vad.reset()
                self._recent = []
                return Activity.STOPPED
        else:
            self._recent.append(wide)
            del self._recent[:-PRE_ROLL_FRAMES]
        return None if event is None else event.activity

    def utterance(self) -> Audio:
        audio = Audio(b"".join(self._speech), ENGINE_RATE)
        self._speech = []
        return audio


class PhoneCall:
    """Carries one Media Stream (after its ``start``) over a conversation.

    *bridge* is the call's :class:`VoiceBridge`, not yet entered; its speaker must be
    this call's :class:`TwilioSpeaker`, given as *speaker* so that Twilio's ``mark``
    echoes reach it. :meth:`run` reads Twilio's messages until ``stop`` or the socket
    closes, then hangs up.

    The voice activity the server hears keeps the order the caller spoke in: an
    utterance's ``stopped`` goes with its transcript, so a ``started`` that comes while
    an earlier utterance is still being transcribed is sent after that one's ``stopped``
    (the agent's playback is cut at once all the same). DTMF digits are counted and
    otherwise dropped: never kept, passed on or logged, as they may be a date of birth.
    """

    def __init__(
        self, bridge: VoiceBridge, stt: SpeechToText, speaker: TwilioSpeaker | None = None
    ) -> None:
        self.bridge = bridge
        self.stt = stt
        self.speaker = speaker
        self.listener = Listener()
        self.dtmf_digits = 0
        # Utterances to transcribe and say, and the starts queued behind them, in order,
        # one at a time. When full, the reader waits (and Twilio buffers).
        self._turns_in, self._turns_out = anyio.create_memory_object_stream[Audio | Activity](16)
        self._queued = 0  # items in that stream not yet sent on

    async def run(self, messages: Callable[[], Awaitable[str | bytes | None]]) -> None:
        try:
            await self._run(messages)
        finally:
            if self.dtmf_digits:
                log.info("phone call: %d DTMF digits pressed, not used", self.dtmf_digits)

    async def _run(self, messages: Callable[[], Awaitable[str | bytes | None]]) -> None:
        async with self.bridge, anyio.create_task_group() as tg:
            tg.start_soon(self._transcribe)
            tg.start_soon(self._watch_ended, tg)
            with self._turns_in:
                while (raw := await messages()) is not None:
                    try:
                        event = twilio.parse(raw)
                    except twilio.MediaStreamError as exc:
                        log.info("phone call: ignored a message (%s)", exc)
                        continue
                    if isinstance(event, twilio.Stop):
                        break
                    if isinstance(event, twilio.Media) and event.track == "inbound":
                        await self._on_audio(event.payload)
                    elif isinstance(event, twilio.Mark) and self.speaker is not None:
                        self.speaker.marked(event.name)
                    elif isinstance(event, twilio.Dtmf):
                        self.dtmf_digits += 1
            tg.cancel_scope.cancel()

    async def _on_audio(self, mulaw: bytes) -> None:
        activity = self.listener.feed(mulaw)
        if activity is Activity.STARTED:
            if self._queued:
                # Barge-in now; the server hears started after the stopped before it.
                self.bridge.playback.stop()
                await self._queue(Activity.STARTED)
            else:
                # Cuts the playback (barge-in), which sends Twilio its clear.
                await self.bridge.speech(SpeechState.STARTED)
        elif activity is Activity.STOPPED:
            await self._queue(self.listener.utterance())

    async def _queue(self, item: Audio | Activity) -> None:
        self._queued += 1
        await self._turns_in.send(item)

    async def _transcribe(self) -> None:
        with self._turns_out:
            async for item in self._turns_out:
                try:
                    await self._send_on(item)
                finally:
                    self._queued -= 1

    async def _send_on(self, item: Audio | Activity) -> None:
        if isinstance(item, Activity):
            with contextlib.suppress(BridgeError):
                await self.bridge.speech(SpeechState.STARTED)
            return
        try:
            text = await self.stt.transcribe(item)
        except SpeechError as exc:
            log.warning("phone call: speech-to-text failed (%s)", type(exc).__name__)
            text = ""
        try:
            await self.bridge.speech(SpeechState.STOPPED)
            if text:
                await self.bridge.say(text)
        except BridgeError as exc:
            log.info("phone call: the server did not take an utterance (%s)", exc)

    async def _watch_ended(self, tg: TaskGroup) -> None:
        code = await self.bridge.wait_ended()
        log.info("phone call: the conversation ended (close code %s)", code)
        tg.cancel_scope.cancel()
