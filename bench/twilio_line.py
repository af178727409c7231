"""Twilio's end of a phone call, as P11 places it: what a bridge behind a real number sees.

:class:`TwilioLine` is one Media Stream seen from Twilio's side. It fetches the TwiML
from the bridge's webhook (signed as Twilio signs it), opens the stream, sends
``connected`` and ``start`` with the TwiML's parameters, and then, like a phone line,
a ``media`` frame every 20 ms for as long as the call lasts — the caller's speech when
there is some, silence otherwise. What the bridge sends back is played out at 8 kHz:
a ``mark`` is echoed once the audio before it has played, a ``clear`` drops what is
buffered and echoes the marks at once, as the Twilio docs describe.

Every time is ``time.perf_counter()`` in this process: frames sent are stamped just
after they are written, frames received as the reader takes them off the socket.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import urllib.parse
import urllib.request
from array import array
from collections import deque
from dataclasses import dataclass, field
from xml.etree import ElementTree

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bridges.phone.signing import twilio_signature
from bridges.speech import Transcoder
from bridges.speech.audio import FRAME_MS, MULAW_FRAME_BYTES, MULAW_SILENCE

FRAME_S = FRAME_MS / 1000
SILENCE = MULAW_SILENCE * MULAW_FRAME_BYTES
VOICED_THRESHOLD = 500
"""A frame with a sample louder than this (16-bit PCM) is speech, as the bench knows it."""


def last_voiced(frames: list[bytes]) -> int:
    """The index of the last frame of *frames* with speech in it."""
    for index in range(len(frames) - 1, -1, -1):
        samples = array("h", Transcoder.decode(frames[index]))
        if max(abs(s) for s in samples) > VOICED_THRESHOLD:
            return index
    raise ValueError("the line is silent")


async def answer(http: str, auth_token: str, caller_number: str, call_sid: str) -> dict[str, str]:
    """What Twilio does when a call comes in: fetch the bridge's TwiML (with its
    ``X-Twilio-Signature``) and return the stream's URL and parameters."""
    query = urllib.parse.urlencode({"CallSid": call_sid, "From": caller_number, "To": "+15550111"})
    url = f"{http}/twilio/voice?{query}"

    def fetch() -> str:
        request = urllib.request.Request(
            url, headers={"X-Twilio-Signature": twilio_signature(auth_token, url)}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.read().decode())

    twiml = await asyncio.to_thread(fetch)
    stream = ElementTree.fromstring(twiml).find("./Connect/Stream")
    if stream is None:
        raise RuntimeError("the TwiML has no <Connect><Stream>")
    parameters = {p.attrib["name"]: p.attrib["value"] for p in stream.iter("Parameter")}
    return {"url": stream.attrib["url"], **parameters}


@dataclass
class Turn:
    """One line the caller said, and when its answer began."""

    spoke_until: float  # the last voiced frame was written to the socket
    first_reply: float | None = None  # the first media frame back after it


@dataclass
class TwilioLine:
    """One call's Media Stream, from Twilio's side (see the module's docstring)."""

    socket: ClientConnection
    stream_sid: str
    turns: list[Turn] = field(default_factory=list)
    replies: list[list[float]] = field(default_factory=list)
    """Arrival times of each reply's frames (a reply ends at its mark or a clear)."""
    send_lag: list[float] = field(default_factory=list)
    """How late each outgoing frame was written, against its 20 ms slot: this
    process's own event-loop lag."""
    clears: int = 0
    marks_echoed: int = 0
    last_media_at: float = 0.0
    _outbox: deque[tuple[bytes, bool]] = field(default_factory=deque)
    _sent_all: asyncio.Event = field(default_factory=asyncio.Event)
    _playout_end: float = 0.0
    _marks: list[tuple[float, str]] = field(default_factory=list)
    _reply: list[float] | None = None

    @classmethod
    async def open(cls, url: str, parameters: dict[str, str], call_sid: str) -> TwilioLine:
        socket = await connect(url, max_size=2**16, open_timeout=10, close_timeout=2)
        stream_sid = "MZ" + call_sid[2:]
        line = cls(socket, stream_sid)
        await socket.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1"}))
        start = {
            "accountSid": "AC0",
            "streamSid": stream_sid,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        await socket.send(json.dumps({"event": "start", "streamSid": stream_sid, "start": start}))
        return line

    async def run(self) -> None:
        """Carry the call (send and receive) until cancelled or the bridge hangs up."""
        async with asyncio.TaskGroup() as tg:
            sending = tg.create_task(self._send_frames())
            await self._receive()
            sending.cancel()

    async def say(self, frames: list[bytes]) -> Turn:
        """Queue *frames* on the line and wait until they have all gone out; the turn
        is dated at its last voiced frame."""
        end = last_voiced(frames)
        self._sent_all.clear()
        self._outbox.extend((frame, index == end) for index, frame in enumerate(frames))
        await self._sent_all.wait()
        return self.turns[-1]

    def quiet_for(self) -> float:
        """How long the bridge has sent no audio and owes no echo of a mark: the agent
        has finished speaking, as the caller hears it."""
        now = time.perf_counter()
        if self._marks or now < self._playout_end:
            return 0.0
        return now - max(self.last_media_at, self._playout_end)

    async def hang_up(self) -> None:
        stop = {"accountSid": "AC0", "callSid": "CA" + self.stream_sid[2:]}
        with contextlib.suppress(ConnectionClosed):
            await self.socket.send(
                json.dumps({"event": "stop", "streamSid": self.stream_sid, "stop": stop})
            )
        await self.socket.close()

    async def _send_frames(self) -> None:
        began = time.perf_counter()
        chunk = 0
        while True:
            due = began + chunk * FRAME_S
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            self.send_lag.append(time.perf_counter() - due)
            frame, ends_turn = self._outbox.popleft() if self._outbox else (SILENCE, False)
            chunk += 1
            media = {
                "track": "inbound",
                "chunk": str(chunk),
                "timestamp": str(chunk * FRAME_MS),
                "payload": base64.b64encode(frame).decode(),
            }
            message = {"event": "media", "streamSid": self.stream_sid, "media": media}
            try:
                await self.socket.send(json.dumps(message))
            except ConnectionClosed:
                return
            if ends_turn:
                self.turns.append(Turn(time.perf_counter()))
            if not self._outbox:
                self._sent_all.set()
            await self._echo_marks(time.perf_counter())

    async def _echo_marks(self, now: float) -> None:
        while self._marks and self._marks[0][0] <= now:
            _, name = self._marks.pop(0)
            self.marks_echoed += 1
            mark = {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
            await self.socket.send(json.dumps(mark))

    async def _receive(self) -> None:
        try:
            async for raw in self.socket:
                now = time.perf_counter()
                message = json.loads(raw)
                event = message.get("event")
                if event == "media":
                    self.last_media_at = now
                    # Played out in order, 20 ms a frame, from when it arrives.
                    self._playout_end = max(now, self._playout_end) + FRAME_S
                    if self._reply is None:
                        self._reply = []
                        self.replies.append(self._reply)
                    self._reply.append(now)
                    if self.turns and self.turns[-1].first_reply is None:
                        self.turns[-1].first_reply = now
                elif event == "mark":
                    self._marks.append((self._playout_end, message["mark"]["name"]))
                    self._reply = None
                elif event == "clear":
                    self.clears += 1
                    self._playout_end = now
                    self._marks = [(now, name) for _, name in self._marks]
                    self._reply = None
        except ConnectionClosed:
            pass
