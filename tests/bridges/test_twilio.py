"""Twilio Media Streams messages without sockets: what Twilio sends, parsed; what the
bridge sends, built; and malformed input refused without echoing it."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridges.phone import twilio
from bridges.phone.twilio import Connected, Dtmf, Mark, Media, MediaStreamError, Start, Stop

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL = "CA7f1ec0d56a3e40f1a5e4b5b7d9f1c2a3"
ACCOUNT = "AC0123456789abcdef0123456789abcdef"


def start_message(**media_format: object) -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": SID,
            "start": {
                "accountSid": ACCOUNT,
                "streamSid": SID,
                "callSid": CALL,
                "tracks": ["inbound"],
                "customParameters": {"workspace": "demo", "caller": "caller-1"},
                "mediaFormat": {
                    "encoding": "audio/x-mulaw",
                    "sampleRate": 8000,
                    "channels": 1,
                    **media_format,
                },
            },
        }
    )


def test_a_call_as_twilio_sends_it_is_parsed() -> None:
    frame = bytes(range(160))
    messages = [
        '{"event": "connected", "protocol": "Call", "version": "1.0.0"}',
        start_message(),
        json.dumps(
            {
                "event": "media",
                "sequenceNumber": "2",
                "streamSid": SID,
                "media": {
                    "track": "inbound",
                    "chunk": "1",
                    "timestamp": "5",
                    "payload": base64.b64encode(frame).decode(),
                },
            }
        ),
        json.dumps(
            {
                "event": "dtmf",
                "sequenceNumber": "3",
                "streamSid": SID,
                "dtmf": {"track": "inbound_track", "digit": "#"},
            }
        ),
        json.dumps(
            {"event": "mark", "sequenceNumber": "4", "streamSid": SID, "mark": {"name": "r1"}}
        ),
        json.dumps(
            {
                "event": "stop",
                "sequenceNumber": "5",
                "streamSid": SID,
                "stop": {"accountSid": ACCOUNT, "callSid": CALL},
            }
        ),
    ]
    assert [twilio.parse(m) for m in messages] == [
        Connected("Call", "1.0.0"),
        Start(SID, CALL, ACCOUNT, ("inbound",), {"workspace": "demo", "caller": "caller-1"}),
        Media(SID, "inbound", 1, 5, frame),
        Dtmf(SID, "#"),
        Mark(SID, "r1"),
        Stop(SID, CALL),
    ]


def test_what_the_bridge_sends_is_twilios_shape() -> None:
    assert json.loads(twilio.media(SID, b"\xff\x7f")) == {
        "event": "media",
        "streamSid": SID,
        "media": {"payload": "/38="},
    }
    assert json.loads(twilio.mark(SID, "reply-7")) == {
        "event": "mark",
        "streamSid": SID,
        "mark": {"name": "reply-7"},
    }
    assert json.loads(twilio.clear(SID)) == {"event": "clear", "streamSid": SID}


@given(st.binary(max_size=400))
def test_outgoing_audio_comes_back_as_it_went(mulaw: bytes) -> None:
    sent = json.loads(twilio.media(SID, mulaw))
    sent["media"].update(track="outbound", chunk="9", timestamp="180")
    assert twilio.parse(json.dumps(sent)) == Media(SID, "outbound", 9, 180, mulaw)


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ("not json {", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"event": "hello", "streamSid": "MZ1"}', "unknown event"),
        ('{"event": "media", "media": {"payload": ""}}', "streamSid is missing"),
        (
            '{"event": "media", "streamSid": "MZ1", "media": {"payload": "%%%%", '
            '"chunk": "1", "timestamp": "0"}}',
            "not base64",
        ),
        (
            '{"event": "media", "streamSid": "MZ1", "media": {"payload": "", '
            '"chunk": "-1", "timestamp": "0"}}',
            "chunk is missing or not a non-negative integer",
        ),
        ('{"event": "dtmf", "streamSid": "MZ1", "dtmf": {"digit": "x"}}', "not 0-9"),
        ('{"event": "mark", "streamSid": "MZ1", "mark": "r1"}', "mark is missing"),
        (start_message(sampleRate=16000), "not 8 kHz mono"),
        (start_message(encoding="audio/l16"), "not 8 kHz mono"),
    ],
)
def test_a_malformed_message_is_refused_by_name(message: str, problem: str) -> None:
    with pytest.raises(MediaStreamError, match=problem):
        twilio.parse(message)


def test_a_refusal_never_quotes_the_message() -> None:
    secret = "Jane Doe, DOB 1970-01-01"
    message = start_message().replace('"caller-1"', json.dumps([secret]))
    with pytest.raises(MediaStreamError) as caught:
        twilio.parse(message)
    assert secret not in str(caught.value)
    assert "customParameters" in str(caught.value)
