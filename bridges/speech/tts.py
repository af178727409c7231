"""Text-to-speech: what the agent says, as audio for the call.

:class:`TextToSpeech` is the interface; :class:`EspeakSynthesizer` is the offline
engine, the ``espeak-ng`` program (GPL-3.0, run as a separate process, from the Debian
package of that name). A cloud engine, or a neural one such as Piper, plugs in by
offering the same one coroutine.

The text goes to espeak-ng on its standard input, never on its command line: an
argument would be visible to every user of the machine (``ps``), and the text may be
from a patient's chart.
"""

from __future__ import annotations

import io
import shutil
import wave
from typing import Protocol

import anyio
import anyio.to_thread

from .audio import Audio, telephone_frames
from .exceptions import EngineUnavailable, SynthesisFailed

DEFAULT_WORKERS = 2


class TextToSpeech(Protocol):
    """The text-to-speech edge of a bridge."""

    async def synthesize(self, text: str) -> Audio:
        """*text* spoken, as mono 16-bit PCM at the engine's rate."""


class EspeakSynthesizer:
    """Offline text-to-speech with espeak-ng, at most *workers* processes at once.

    Raises :class:`EngineUnavailable` when the ``espeak-ng`` program is not installed.
    """

    def __init__(
        self,
        *,
        voice: str = "en-us",
        words_per_minute: int = 150,
        workers: int = DEFAULT_WORKERS,
        limiter: anyio.CapacityLimiter | None = None,
        program: str = "espeak-ng",
    ) -> None:
        found = shutil.which(program)
        if found is None:
            raise EngineUnavailable(f"text-to-speech needs the {program} program")
        self.program = found
        self.voice = voice
        self.words_per_minute = words_per_minute
        self.workers = workers
        self._limiter = limiter

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        # Created on first use: a limiter belongs to the event loop it is made in, so an
        # engine serves one event loop (make one per loop, or pass each its own limiter).
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.workers)
        return self._limiter

    async def synthesize(self, text: str) -> Audio:
        """*text* spoken. Raises :class:`SynthesisFailed` if espeak-ng fails."""
        command = [
            self.program,
            "--stdin",
            "--stdout",
            "-v",
            self.voice,
            "-s",
            str(self.words_per_minute),
        ]
        async with self.limiter:
            try:
                done = await anyio.run_process(command, input=text.encode(), check=False)
            except OSError as exc:
                raise SynthesisFailed("espeak-ng could not be started") from exc
        if done.returncode != 0 or not done.stdout:
            # Its stderr is not passed on: it may quote the text.
            raise SynthesisFailed(f"espeak-ng exited with status {done.returncode}")
        return await anyio.to_thread.run_sync(_read_wav, done.stdout, limiter=self.limiter)


async def synthesize_frames(tts: TextToSpeech, text: str) -> list[bytes]:
    """*text* spoken by *tts*, as 8 kHz μ-law 20 ms frames (resampled in a thread)."""
    audio = await tts.synthesize(text)
    return await anyio.to_thread.run_sync(lambda: list(telephone_frames(audio)))


def _read_wav(data: bytes) -> Audio:
    try:
        with wave.open(io.BytesIO(data)) as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise SynthesisFailed("espeak-ng produced audio that is not mono 16-bit")
            return Audio(w.readframes(w.getnframes()), w.getframerate())
    except (wave.Error, EOFError) as exc:
        raise SynthesisFailed("espeak-ng produced no readable audio") from exc
