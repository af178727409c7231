"""The speech engines' errors.

::

    SpeechError                 anything this package raises on purpose
    ├── EngineUnavailable       an engine's package or program is not installed
    └── SynthesisFailed         the text-to-speech engine did not produce audio

Neither carries the text or the audio it was given: both may be a patient's words.
"""

from __future__ import annotations


class SpeechError(Exception):
    """Base of this package's errors."""


class EngineUnavailable(SpeechError):
    """An engine cannot run here: its Python package or program is missing."""


class SynthesisFailed(SpeechError):
    """The text-to-speech engine exited with an error or produced no audio."""
