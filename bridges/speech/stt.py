"""Speech-to-text: one utterance's audio to its final transcript.

:class:`SpeechToText` is the interface a bridge uses; :class:`PocketSphinxRecognizer`
is the offline engine (``pocketsphinx`` 5, BSD, with the US English acoustic model,
dictionary and language model inside its wheel). A cloud engine plugs in by offering
the same one coroutine.

Decoding is CPU work that holds the GIL only in short stretches: it runs in worker
threads, at most ``workers`` at a time (an AnyIO ``CapacityLimiter``), so an event loop
serving other calls is never blocked by it. The decoder holds the GIL while it works, so
it is fed 50 ms at a time, and the GIL changes hands between pieces. A ``Decoder`` is
not thread-safe: each worker thread takes an idle one from a pool, and the limiter
bounds the pool's size. A pooled decoder keeps adapting to the audio it has heard (its
cepstral mean), so one utterance's transcript depends a little on the ones before.
"""

from __future__ import annotations

import queue
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.to_thread

from .audio import ENGINE_RATE, Audio, resample
from .exceptions import EngineUnavailable

try:
    import pocketsphinx
    from pocketsphinx.lm import ArpaBoLM
except ImportError:  # pragma: no cover - the phone extra is not installed
    pocketsphinx = None

DEFAULT_WORKERS = 2
CHUNK_BYTES = ENGINE_RATE * 2 // 20  # 50 ms of 16 kHz 16-bit PCM
_WORD = re.compile(r"[a-z']+")


class SpeechToText(Protocol):
    """The speech-to-text edge of a bridge."""

    async def transcribe(self, audio: Audio) -> str:
        """The final transcript of one utterance (lower case; ``""`` if nothing heard)."""


def words(text: str) -> list[str]:
    """*text*'s words, lower case, without punctuation (as a transcript has them)."""
    return _WORD.findall(text.lower())


class PocketSphinxRecognizer:
    """Offline speech-to-text with pocketsphinx, in up to *workers* threads at once.

    *vocabulary*: phrases the callers are expected to say (a workspace's agent names,
    procedures, the questions its front desk hears). When given, the recogniser decodes
    with a small language model built from them instead of the general English one:
    far more accurate on those phrases (see docs/VOICE.md for figures) and several
    times faster, at the price of forcing what it hears onto those words. Words that
    the pronouncing dictionary does not know are left out of it.

    Raises :class:`EngineUnavailable` without the ``pocketsphinx`` package.
    """

    def __init__(
        self,
        vocabulary: Iterable[str] | None = None,
        *,
        workers: int = DEFAULT_WORKERS,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        if pocketsphinx is None:  # pragma: no cover
            raise EngineUnavailable("speech-to-text needs the phone extra (pocketsphinx)")
        self.workers = workers
        self._limiter = limiter
        self._vocabulary = [" ".join(words(p)) for p in vocabulary or ()]
        self._vocabulary = [p for p in self._vocabulary if p]
        self._language_model: bytes | None = None
        self._dictionary: bytes | None = None
        # Idle decoders; never more than the limiter's tokens exist, so it is bounded.
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        # Created on first use: a limiter belongs to the event loop it is made in, so an
        # engine serves one event loop (make one per loop, or pass each its own limiter).
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.workers)
        return self._limiter

    async def transcribe(self, audio: Audio) -> str:
        """The transcript of *audio* (any rate; resampled to 16 kHz)."""
        return await anyio.to_thread.run_sync(self.transcribe_sync, audio, limiter=self.limiter)

    def transcribe_sync(self, audio: Audio) -> str:
        """:meth:`transcribe` in the calling thread (blocks for the decoding)."""
        pcm = resample(audio, ENGINE_RATE).pcm
        try:
            decoder = self._idle.get_nowait()
        except queue.Empty:
            decoder = self._new_decoder()
        try:
            decoder.start_utt()
            # In short pieces: the decoder holds the GIL while it works on one, and
            # between pieces the event loop's thread gets it back.
            for start in range(0, len(pcm), CHUNK_BYTES):
                decoder.process_raw(pcm[start : start + CHUNK_BYTES])
            decoder.end_utt()
            hypothesis = decoder.hyp()
            return " ".join(words(hypothesis.hypstr)) if hypothesis is not None else ""
        finally:
            self._idle.put(decoder)

    def _new_decoder(self) -> Any:
        # No second (flat-lexicon) pass: it runs inside end_utt() for ~0.4 s of an
        # utterance of a few seconds without letting go of the GIL, which would stall
        # every call's event loop; the first pass alone is almost as accurate.
        options: dict[str, Any] = {"samprate": ENGINE_RATE, "loglevel": "FATAL", "fwdflat": False}
        if not self._vocabulary:
            return pocketsphinx.Decoder(**options)
        language_model, dictionary = self._vocabulary_model()
        with tempfile.TemporaryDirectory(prefix="switchboard-lm-") as tmp:
            lm, dict_ = Path(tmp) / "vocabulary.arpa", Path(tmp) / "vocabulary.dict"
            lm.write_bytes(language_model)
            dict_.write_bytes(dictionary)
            return pocketsphinx.Decoder(lm=str(lm), dict=str(dict_), **options)

    def _vocabulary_model(self) -> tuple[bytes, bytes]:
        """The vocabulary's language model (ARPA) and pronouncing dictionary: only its
        own words, so that a decoder loads in milliseconds rather than seconds."""
        if self._language_model is None or self._dictionary is None:
            entries = _pronunciations({w for p in self._vocabulary for w in p.split()})
            phrases = [" ".join(w for w in p.split() if w in entries) for p in self._vocabulary]
            model = ArpaBoLM(text="\n".join(p for p in phrases if p), add_start=True)
            model.compute()
            with tempfile.TemporaryDirectory(prefix="switchboard-lm-") as tmp:
                path = Path(tmp) / "vocabulary.arpa"
                model.write_file(str(path))
                self._language_model = path.read_bytes()
            self._dictionary = "".join(line for e in entries.values() for line in e).encode()
        return self._language_model, self._dictionary


def _pronunciations(wanted: set[str]) -> dict[str, list[str]]:
    """The pronouncing dictionary's lines for *wanted* words (alternatives included)."""
    found: dict[str, list[str]] = {}
    path = Path(pocketsphinx.get_model_path("en-us")) / "cmudict-en-us.dict"
    with path.open(encoding="utf-8") as f:
        for line in f:
            word = line.split(maxsplit=1)[0].split("(")[0] if line.strip() else ""
            if word in wanted:
                found.setdefault(word, []).append(line)
    return found
