"""Offline speech (bridges/speech/) with the real engines: espeak-ng speaks a sentence,
it travels as 20 ms μ-law frames, voice activity finds the utterance, pocketsphinx
transcribes it. Skips without espeak-ng; fails instead under ``CI=true``."""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Iterator

import anyio
import pytest

from bridges.speech import (
    Activity,
    ActivityEvent,
    Audio,
    EspeakSynthesizer,
    PocketSphinxRecognizer,
    Transcoder,
    VoiceActivity,
    synthesize_frames,
    telephone_frames,
)
from bridges.speech.audio import MULAW_FRAME_BYTES, TELEPHONE_RATE, resample
from bridges.speech.stt import words

pytestmark = pytest.mark.anyio

CALLER = "I am calling about the prior authorization for my knee surgery"
QUESTION = "Can you check the status of my appointment please"
# A clinic's front-desk vocabulary: the phrases its callers say, none of them the test's
# sentences word for word.
VOCABULARY = [
    "I am calling about my appointment",
    "I am calling about a prior authorization",
    "the prior authorization for my surgery",
    "my knee surgery is next week",
    "can you check my insurance",
    "what is the status of the authorization",
    "I would like to book an appointment please",
    "can you move my appointment to Tuesday",
    "thank you goodbye",
]
# Measured (espeak-ng 1.51, pocketsphinx 5.1.1, through μ-law and the detector): with the
# vocabulary, 0.82-0.91 of CALLER's words and 0.56-0.67 of QUESTION's come back (the
# decoder adapts to the line, so the figure moves a little with what it heard before);
# with the general English model, 0.18 and 0.33.
MIN_WORD_OVERLAP = 0.5
MIN_MEAN_WORD_OVERLAP = 0.65


def word_overlap(said: str, heard: str) -> float:
    """The share of *said*'s words found, in order, in *heard* (an LCS over words)."""
    a, b = words(said), words(heard)
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
            )
    return table[len(a)][len(b)] / len(a)


@pytest.fixture
def recognizer() -> PocketSphinxRecognizer:
    return PocketSphinxRecognizer(VOCABULARY)


def silence_frames(ms: int) -> list[bytes]:
    return list(telephone_frames(Audio(b"\0\0" * (TELEPHONE_RATE * ms // 1000), TELEPHONE_RATE)))


def onset_and_end_ms(audio: Audio, threshold: int = 500) -> tuple[int, int]:
    """Where *audio* is louder than *threshold*: the truth the detector is held to."""
    samples = struct.unpack(f"<{len(audio.pcm) // 2}h", audio.pcm)
    loud = [i for i, s in enumerate(samples) if abs(s) > threshold]
    return loud[0] * 1000 // audio.rate, loud[-1] * 1000 // audio.rate


def trimmed(audio: Audio) -> Audio:
    audio = resample(audio, TELEPHONE_RATE)
    onset, end = onset_and_end_ms(audio)
    return Audio(audio.pcm[onset * 16 : (end + 20) * 16], TELEPHONE_RATE)


def detect(frames: list[bytes]) -> Iterator[tuple[ActivityEvent, bytes]]:
    """Each μ-law frame decoded and fed to a detector: its events, each ``stopped`` one
    with the 16 kHz PCM of its utterance (from 100 ms before ``started`` to ``stopped``),
    as a bridge would hand it to speech-to-text."""
    vad, transcoder = VoiceActivity(), Transcoder()
    pieces: list[bytes] = []
    started = 0
    for frame in frames:
        pcm = transcoder.decode(frame)
        pieces.append(transcoder.upsample(pcm))
        event = vad.feed(pcm)
        if event is None:
            continue
        if event.activity is Activity.STARTED:
            started = max(0, event.at_ms // 20 - 5)
            yield event, b""
        else:
            yield event, b"".join(pieces[started : event.at_ms // 20])


def test_mulaw_round_trip_keeps_the_signal() -> None:
    tone = struct.pack(
        "<800h", *(int(8000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(800))
    )
    frames = list(telephone_frames(Audio(tone, TELEPHONE_RATE)))
    assert [len(f) for f in frames] == [MULAW_FRAME_BYTES] * 5
    back = struct.unpack("<800h", b"".join(Transcoder.decode(f) for f in frames))
    error = max(abs(a - b) for a, b in zip(struct.unpack("<800h", tone), back, strict=True))
    assert error < 8000 * 0.04  # μ-law's step at this level is about 3 %


def test_the_last_frame_is_padded_with_silence() -> None:
    frames = list(telephone_frames(Audio(b"\x10\x00" * 170, TELEPHONE_RATE)))
    assert [len(f) for f in frames] == [160, 160]
    assert Transcoder.decode(frames[1][10:]) == b"\0\0" * 150


def test_resampling_frame_by_frame_is_resampling_the_whole_stream() -> None:
    tone = struct.pack(
        "<1600h", *(int(6000 * math.sin(2 * math.pi * 300 * n / 8000)) for n in range(1600))
    )
    transcoder = Transcoder()
    streamed = b"".join(transcoder.upsample(tone[i : i + 320]) for i in range(0, len(tone), 320))
    whole = resample(Audio(tone, TELEPHONE_RATE), 16000).pcm
    assert streamed == whole
    assert abs(len(streamed) - 2 * len(tone)) <= 4  # the filter's delay: a sample or two


def test_a_frame_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="320 bytes"):
        VoiceActivity().feed(b"\0" * 100)


async def test_one_sentence_is_one_utterance_with_its_start_and_stop(
    espeak: EspeakSynthesizer,
) -> None:
    audio = await espeak.synthesize(CALLER)
    onset, end = onset_and_end_ms(resample(audio, TELEPHONE_RATE))
    frames = silence_frames(500) + list(telephone_frames(audio)) + silence_frames(1500)
    events = [event for event, _ in detect(frames)]
    assert [e.activity for e in events] == [Activity.STARTED, Activity.STOPPED]
    started, stopped = (e.at_ms - 500 for e in events)
    assert onset - 40 <= started <= onset + 100
    # The fading tail of the last word is quieter than the threshold but still voice;
    # the hangover (600 ms) is not counted in the stop time.
    assert end - 100 <= stopped <= end + 200


async def test_a_short_pause_does_not_end_the_utterance_and_a_long_one_does(
    espeak: EspeakSynthesizer,
) -> None:
    # Cut to the voice: espeak-ng adds silence of its own around what it says.
    first = list(telephone_frames(trimmed(await espeak.synthesize("Good morning"))))
    second = list(telephone_frames(trimmed(await espeak.synthesize(QUESTION))))
    for gap_ms, utterances in ((300, 1), (1500, 2)):
        frames = (
            silence_frames(400) + first + silence_frames(gap_ms) + second + silence_frames(1500)
        )
        events = [e.activity for e, _ in detect(frames)]
        assert events == [Activity.STARTED, Activity.STOPPED] * utterances, gap_ms


async def test_speech_sent_as_telephone_frames_is_transcribed(
    espeak: EspeakSynthesizer, recognizer: PocketSphinxRecognizer
) -> None:
    overlaps = []
    for sentence in (CALLER, QUESTION):
        frames = silence_frames(400) + await synthesize_frames(espeak, sentence)
        utterances = [
            pcm
            for event, pcm in detect([*frames, *silence_frames(1000)])
            if event.activity is Activity.STOPPED
        ]
        assert len(utterances) == 1
        heard = await recognizer.transcribe(Audio(utterances[0], 16000))
        overlaps.append(word_overlap(sentence, heard))
        assert overlaps[-1] >= MIN_WORD_OVERLAP, heard
    assert sum(overlaps) / len(overlaps) >= MIN_MEAN_WORD_OVERLAP


async def test_transcribing_does_not_block_the_event_loop(
    espeak: EspeakSynthesizer, recognizer: PocketSphinxRecognizer
) -> None:
    audio = await espeak.synthesize(f"{CALLER}. {QUESTION}")
    await recognizer.transcribe(audio)  # the decoder is loaded: time the decoding only
    gaps: list[float] = []
    done = anyio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await anyio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        await recognizer.transcribe(audio)
        done.set()
    # A 20 ms frame is due every 20 ms; the loop never waits much longer than one.
    assert len(gaps) >= 10
    assert max(gaps) < 0.1


async def test_what_is_spoken_is_not_on_the_command_line(espeak: EspeakSynthesizer) -> None:
    audio = await espeak.synthesize("-v xx --help")  # text that looks like options
    assert audio.seconds > 0.5
