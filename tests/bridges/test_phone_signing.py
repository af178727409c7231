"""Signed stream parameters and Twilio's request signature, without sockets."""

from __future__ import annotations

import pytest

from bridges.phone.signing import (
    SignatureError,
    sign,
    twilio_signature,
    twilio_signature_ok,
    verify,
)
from bridges.phone.twiml import connect_stream, stream_parameters

SECRET = "a-phone-signing-secret-of-32-bytes-or-more"
PARAMETERS = {"workspace": "demo", "caller": "phone-15550100"}


def test_signed_parameters_verify_until_they_expire() -> None:
    signed = sign(SECRET, PARAMETERS, ttl=60, now=1000)
    verify(SECRET, signed, now=1059)
    with pytest.raises(SignatureError, match="expired"):
        verify(SECRET, signed, now=1061)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: p.pop("signature"), "unsigned"),
        (lambda p: p.update(caller="phone-15550199"), "bad signature"),
        (lambda p: p.update(workspace="other"), "bad signature"),
        (lambda p: p.update(expires="99999999999"), "bad signature"),
        (lambda p: p.update(extra="x"), "bad signature"),
        (lambda p: p.update(signature=p["signature"][:-1] + "A"), "bad signature"),
    ],
)
def test_altered_or_unsigned_parameters_are_refused_without_naming_them(
    change: object, reason: str
) -> None:
    signed = sign(SECRET, PARAMETERS, now=1000)
    change(signed)  # type: ignore[operator]
    with pytest.raises(SignatureError) as refused:
        verify(SECRET, signed, now=1001)
    assert str(refused.value) == reason
    assert "15550" not in str(refused.value)


def test_another_secret_does_not_verify() -> None:
    signed = sign(SECRET, PARAMETERS, now=1000)
    with pytest.raises(SignatureError):
        verify("another-secret-that-is-32-bytes-long!", signed, now=1001)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        sign("short", PARAMETERS)


def test_twilio_signature_matches_twilios_published_example() -> None:
    # The example of Twilio's "Security" documentation (webhook request validation).
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    form = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    assert twilio_signature("12345", url, form) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert twilio_signature_ok("12345", url, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", form)
    assert not twilio_signature_ok("12345", url + "&x=1", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", form)
    assert not twilio_signature_ok("12345", url, None, form)


def test_the_twiml_connects_a_stream_with_the_signed_parameters() -> None:
    parameters = stream_parameters(SECRET, workspace="demo", caller_number="+15550100")
    verify(SECRET, parameters)
    xml = connect_stream('wss://phone.example.org/twilio/stream?a="b"', parameters)
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream ')
    assert 'url="wss://phone.example.org/twilio/stream?a=&quot;b&quot;"' in xml
    assert '<Parameter name="caller" value="phone-15550100"/>' in xml
    assert f'<Parameter name="signature" value="{parameters["signature"]}"/>' in xml
    assert xml.endswith("</Stream></Connect></Response>")


def test_a_value_cannot_pass_for_another_parameter() -> None:
    # Signed as one caller whose value looks like a separator and a second parameter...
    signed = sign(SECRET, {"caller": "phone-1\ncarrier=other"}, now=1000)
    # ...must not verify once split into two parameters.
    forged = {
        "caller": "phone-1",
        "carrier": "other",
        "expires": signed["expires"],
        "signature": signed["signature"],
    }
    with pytest.raises(SignatureError, match="bad signature"):
        verify(SECRET, forged, now=1001)
