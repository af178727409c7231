"""Telephone audio: 8 kHz μ-law in 20 ms frames, and the 16-bit PCM the engines use.

Twilio Media Streams (and the providers compatible with it) carry mono μ-law at 8 kHz,
160 bytes per 20 ms frame. Voice activity detection runs on that rate directly; the
speech-to-text engine wants 16 kHz, and the text-to-speech engine produces its own rate.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

if sys.version_info >= (3, 13):  # pragma: no cover - the audioop-lts package
    import audioop
else:
    # Deprecated in 3.11 and 3.12 (removed in 3.13, where audioop-lts provides it).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

TELEPHONE_RATE = 8000
ENGINE_RATE = 16000
FRAME_MS = 20
SAMPLE_WIDTH = 2  # 16-bit signed, native byte order
MULAW_FRAME_BYTES = TELEPHONE_RATE * FRAME_MS // 1000  # 160: one byte per sample
MULAW_SILENCE = b"\xff"  # μ-law code for zero


@dataclass(frozen=True, slots=True)
class Audio:
    """Mono 16-bit PCM at *rate* Hz."""

    pcm: bytes
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / SAMPLE_WIDTH / self.rate


def frame_bytes(rate: int) -> int:
    """Bytes of 16-bit PCM in one 20 ms frame at *rate*."""
    return rate * FRAME_MS // 1000 * SAMPLE_WIDTH


def resample(audio: Audio, rate: int) -> Audio:
    """*audio* at *rate* Hz (the whole clip at once; streams use :class:`Transcoder`)."""
    if audio.rate == rate:
        return audio
    pcm, _ = audioop.ratecv(audio.pcm, SAMPLE_WIDTH, 1, audio.rate, rate, None)
    return Audio(pcm, rate)


def telephone_frames(audio: Audio) -> Iterator[bytes]:
    """*audio* as 8 kHz μ-law 20 ms frames; the last one padded with silence."""
    mulaw = audioop.lin2ulaw(resample(audio, TELEPHONE_RATE).pcm, SAMPLE_WIDTH)
    for start in range(0, len(mulaw), MULAW_FRAME_BYTES):
        yield mulaw[start : start + MULAW_FRAME_BYTES].ljust(MULAW_FRAME_BYTES, MULAW_SILENCE)


class Transcoder:
    """One call's incoming audio: μ-law frames to 8 kHz PCM (for voice activity) and
    16 kHz PCM (for speech-to-text).

    It keeps the resampler's state between frames, so a stream resampled frame by frame
    has no clicks at frame edges: use one per call and direction.
    """

    def __init__(self, engine_rate: int = ENGINE_RATE) -> None:
        self.engine_rate = engine_rate
        self._state: tuple[int, tuple[tuple[int, int], ...]] | None = None

    @staticmethod
    def decode(mulaw: bytes) -> bytes:
        """μ-law bytes to 16-bit PCM at the same (telephone) rate."""
        return audioop.ulaw2lin(mulaw, SAMPLE_WIDTH)

    @staticmethod
    def encode(pcm: bytes) -> bytes:
        """16-bit PCM to μ-law bytes at the same rate."""
        return audioop.lin2ulaw(pcm, SAMPLE_WIDTH)

    def upsample(self, pcm: bytes) -> bytes:
        """8 kHz PCM, the next piece of this stream, at the engine's rate."""
        if self.engine_rate == TELEPHONE_RATE:
            return pcm
        out, self._state = audioop.ratecv(
            pcm, SAMPLE_WIDTH, 1, TELEPHONE_RATE, self.engine_rate, self._state
        )
        return out
