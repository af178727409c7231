"""Signed stream parameters, and Twilio's own request signature, sans-I/O.

The TwiML that points a call at the bridge carries ``<Parameter>`` elements naming the
workspace and the caller; Twilio hands them back in the stream's ``start``. Anyone who
can reach the bridge could open a stream with parameters of their choosing, so the
TwiML endpoint signs them (HMAC-SHA256 with the operator's secret, with an expiry) and
the stream endpoint accepts only a ``start`` whose signature holds.

A refusal names the reason, never a parameter's value: they say who is calling.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping

SIGNATURE = "signature"
EXPIRES = "expires"
DEFAULT_TTL_S = 120
"""A stream starts seconds after its TwiML is fetched; two minutes is generous."""


class SignatureError(ValueError):
    """The parameters are unsigned, signed with another secret, altered, or expired."""


def _canonical(parameters: Mapping[str, str]) -> bytes:
    # JSON, so that no value can pass for a separator and another parameter.
    items = sorted((k, v) for k, v in parameters.items() if k != SIGNATURE)
    return json.dumps(items, separators=(",", ":")).encode()


def _mac(secret: str, parameters: Mapping[str, str]) -> str:
    digest = hmac.new(secret.encode(), _canonical(parameters), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(
    secret: str,
    parameters: Mapping[str, str],
    *,
    ttl: float = DEFAULT_TTL_S,
    now: float | None = None,
) -> dict[str, str]:
    """*parameters* with an ``expires`` stamp and a ``signature`` over them all."""
    if len(secret.encode()) < 32:
        raise ValueError("the signing secret must be at least 32 bytes")
    signed = {k: v for k, v in parameters.items() if k not in (SIGNATURE, EXPIRES)}
    signed[EXPIRES] = str(int((time.time() if now is None else now) + ttl))
    signed[SIGNATURE] = _mac(secret, signed)
    return signed


def verify(secret: str, parameters: Mapping[str, str], *, now: float | None = None) -> None:
    """Raise :class:`SignatureError` unless *parameters* carry a valid, live signature."""
    given = parameters.get(SIGNATURE)
    if not given:
        raise SignatureError("unsigned")
    if not hmac.compare_digest(given.encode(), _mac(secret, parameters).encode()):
        raise SignatureError("bad signature")
    expires = parameters.get(EXPIRES, "")
    if not expires.isdecimal():
        raise SignatureError("no expiry")
    if int(expires) < (time.time() if now is None else now):
        raise SignatureError("expired")


def twilio_signature(auth_token: str, url: str, form: Mapping[str, str] | None = None) -> str:
    """Twilio's ``X-Twilio-Signature`` for a request to *url* (with *form*, a POST's
    parameters): base64 of HMAC-SHA1 over the URL and the sorted parameters."""
    data = url + "".join(f"{k}{v}" for k, v in sorted((form or {}).items()))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def twilio_signature_ok(
    auth_token: str, url: str, signature: str | None, form: Mapping[str, str] | None = None
) -> bool:
    """Whether *signature* is Twilio's for this request."""
    if not signature:
        return False
    expected = twilio_signature(auth_token, url, form)
    return hmac.compare_digest(signature.encode(), expected.encode())
