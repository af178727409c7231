"""Voice activity: when the caller starts and stops speaking, from 20 ms PCM frames.

Sans-I/O: :meth:`VoiceActivity.feed` takes one frame and returns the events it ends
(none, ``started`` or ``stopped``); nothing here waits or does I/O. Each frame is
classified by the WebRTC detector (``webrtcvad-wheels``, MIT) — fast enough (microseconds
a frame) to run on the event loop.

Two debounces keep it from chattering: an utterance *starts* only when
``start_frames`` of the last ``start_window`` frames are voiced (a cough or a click is
not a turn), and it *stops* only after ``hangover_ms`` without a voiced frame (a pause
between words or for breath is not the end of a turn).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from .audio import FRAME_MS, TELEPHONE_RATE, frame_bytes
from .exceptions import EngineUnavailable

try:
    import webrtcvad
except ImportError:  # pragma: no cover - the phone extra is not installed
    webrtcvad = None

DEFAULT_HANGOVER_MS = 600
SUPPORTED_RATES = (8000, 16000, 32000, 48000)


class Activity(enum.StrEnum):
    """The same values as the protocol's ``speech`` states."""

    STARTED = "started"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    """The caller started or stopped speaking *at_ms* into the stream.

    For ``started`` it is the start of the first voiced frame of the utterance; for
    ``stopped``, the end of its last voiced frame (the hangover is not counted).
    """

    activity: Activity
    at_ms: int


class VoiceActivity:
    """One stream's voice activity detector; feed it every 20 ms frame, in order.

    *aggressiveness* is WebRTC's mode, 0 (lenient) to 3 (strict about what is speech).
    Raises :class:`EngineUnavailable` without ``webrtcvad-wheels``, ``ValueError`` for
    an unsupported rate.
    """

    def __init__(
        self,
        rate: int = TELEPHONE_RATE,
        *,
        aggressiveness: int = 2,
        hangover_ms: int = DEFAULT_HANGOVER_MS,
        start_frames: int = 3,
        start_window: int = 5,
    ) -> None:
        if webrtcvad is None:  # pragma: no cover
            raise EngineUnavailable("voice activity needs the phone extra (webrtcvad-wheels)")
        if rate not in SUPPORTED_RATES:
            raise ValueError(f"voice activity runs at {SUPPORTED_RATES} Hz, not {rate}")
        if not 1 <= start_frames <= start_window:
            raise ValueError("start_frames must be between 1 and start_window")
        self.rate = rate
        self.frame_bytes = frame_bytes(rate)
        self.hangover_frames = max(1, hangover_ms // FRAME_MS)
        self.start_frames = start_frames
        self._vad = webrtcvad.Vad(aggressiveness)
        # The recent frames' verdicts (frame index, voiced), for the start debounce.
        self._window: deque[tuple[int, bool]] = deque(maxlen=start_window)
        self._frames = 0
        self._speaking = False
        self._last_voiced = -1
        self.utterances = 0

    @property
    def speaking(self) -> bool:
        return self._speaking

    def feed(self, frame: bytes) -> ActivityEvent | None:
        """Classify one 20 ms frame; return the event it completes, if any.

        Raises ``ValueError`` when *frame* is not exactly one frame long.
        """
        if len(frame) != self.frame_bytes:
            raise ValueError(f"a frame is {self.frame_bytes} bytes, not {len(frame)}")
        index = self._frames
        self._frames += 1
        voiced = bool(self._vad.is_speech(frame, self.rate))
        self._window.append((index, voiced))
        if voiced:
            self._last_voiced = index
        if not self._speaking:
            if sum(v for _, v in self._window) >= self.start_frames:
                self._speaking = True
                self.utterances += 1
                first = next(i for i, v in self._window if v)
                return ActivityEvent(Activity.STARTED, first * FRAME_MS)
            return None
        if index - self._last_voiced >= self.hangover_frames:
            self._speaking = False
            self._window.clear()
            return ActivityEvent(Activity.STOPPED, (self._last_voiced + 1) * FRAME_MS)
        return None

    def reset(self) -> None:
        """Forget the utterance under way, if any, without an event: the next voiced
        frames start a new one (after the start debounce). The stream's clock goes on.

        For a bridge that cuts an utterance itself (a caller who never pauses): left
        speaking, the detector would never report the rest as an utterance of its own.
        """
        self._speaking = False
        self._window.clear()
        self._last_voiced = -1

    def statistics(self) -> dict[str, int | bool]:
        return {"frames": self._frames, "utterances": self.utterances, "speaking": self._speaking}
