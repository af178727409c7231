"""Offline speech for telephone bridges, each engine behind a small interface.

- :mod:`.audio`: 8 kHz μ-law 20 ms frames ⇄ 16-bit PCM, and resampling (``audioop``).
- :mod:`.vad`: :class:`VoiceActivity`, when the caller starts and stops speaking
  (``webrtcvad-wheels``), sans-I/O.
- :mod:`.stt`: :class:`SpeechToText`, one utterance to its transcript (``pocketsphinx``).
- :mod:`.tts`: :class:`TextToSpeech`, text to audio (the ``espeak-ng`` program).

The engines' CPU work runs in worker threads or processes, bounded by a
``CapacityLimiter``, never on the event loop. Like every bridge, this package imports
nothing of the server: see docs/VOICE.md for plugging in another engine.
"""

from __future__ import annotations

from .audio import Audio, Transcoder, telephone_frames
from .exceptions import EngineUnavailable, SpeechError, SynthesisFailed
from .stt import PocketSphinxRecognizer, SpeechToText
from .tts import EspeakSynthesizer, TextToSpeech, synthesize_frames
from .vad import Activity, ActivityEvent, VoiceActivity

__all__ = [
    "Activity",
    "ActivityEvent",
    "Audio",
    "EngineUnavailable",
    "EspeakSynthesizer",
    "PocketSphinxRecognizer",
    "SpeechError",
    "SpeechToText",
    "SynthesisFailed",
    "TextToSpeech",
    "Transcoder",
    "VoiceActivity",
    "synthesize_frames",
    "telephone_frames",
]
