"""Bearer tokens: JWTs signed with HS256 and the server's secret (PROTOCOL.md, Identity).

:func:`verify_token` is the only way a request becomes a
:class:`~agents.models.Principal`. Every refusal is the same
:class:`~server.exceptions.Unauthorized` with a fixed reason: no token, claim value
or library message ever reaches an exception, since those may echo what a forger sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from agents.models import Principal, Role, utcnow
from server.exceptions import Unauthorized

ALGORITHM = "HS256"
# RFC 7518, 3.2: an HS256 key must be at least as long as the hash output.
MIN_SECRET_BYTES = 32
# Far above any token this server issues; refuses to spend work on megabyte headers.
MAX_TOKEN_CHARS = 8_192
MAX_NAME_CHARS = 200

_OPAQUE_ID = re.compile(r"[A-Za-z0-9_\-]{1,100}")
# Only HS256 is ever accepted, whatever the token's header says: this is what refuses
# "alg": "none" and the RS256/HS256 key confusion.
_JWT = jwt.PyJWT(options={"enforce_minimum_key_length": True})
_REQUIRED_CLAIMS = ["exp", "sub", "ws", "role"]


def issue_token(
    secret: str,
    *,
    workspace: str,
    sub: str,
    role: Role | str,
    name: str | None = None,
    act_for: str | None = None,
    patient: str | None = None,
    call: str | None = None,
    ttl: float = 3600,
    now: datetime | None = None,
) -> str:
    """Sign a token for *sub* in *workspace*, valid for *ttl* seconds from *now*.

    *patient* makes the token a patient's: it may see only that record of the
    workspace's directory (a person, or a service acting for one). *call* makes a
    service token a caller's, on that phone call: not yet verified.
    Raises ``ValueError`` for claims :func:`verify_token` would refuse, so that a token
    this function returns is always accepted until it expires.
    """
    _check_secret(secret)
    role = Role(role)
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    for claim, value in (("workspace", workspace), ("sub", sub)):
        if not _is_opaque_id(value):
            raise ValueError(f"{claim} must be an opaque id")
    _check_act_for(role, act_for, ValueError)
    _check_patient(role, patient, ValueError)
    _check_call(role, call, ValueError)
    if name is not None and not _is_display_name(name):
        raise ValueError(f"name must be 1 to {MAX_NAME_CHARS} printable characters")
    issued = now or utcnow()
    claims: dict[str, Any] = {
        "sub": sub,
        "ws": workspace,
        "role": role.value,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=ttl)).timestamp()),
    }
    if name is not None:
        claims["name"] = name
    if act_for is not None:
        claims["act_for"] = act_for
    if patient is not None:
        claims["patient"] = patient
    if call is not None:
        claims["call"] = call
    return _JWT.encode(claims, secret, algorithm=ALGORITHM)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A valid token's principal and the moment it stops being valid (epoch seconds)."""

    principal: Principal
    expires_at: float


def verify_token(secret: str, token: str, *, leeway: float = 0) -> Principal:
    """The principal a valid, unexpired token names.

    Raises :class:`Unauthorized` for a token that is malformed, not HS256, signed with
    another secret, expired, or whose claims do not fit PROTOCOL.md; ``ValueError``
    if *secret* itself is too short to be a key.
    """
    return verify_session_token(secret, token, leeway=leeway).principal


def verify_session_token(secret: str, token: str, *, leeway: float = 0) -> VerifiedToken:
    """Like :func:`verify_token`, with the token's expiry: a socket lives no longer.

    Raises as :func:`verify_token` does.
    """
    _check_secret(secret)
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
        raise Unauthorized("malformed token")
    try:
        claims = _JWT.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": _REQUIRED_CLAIMS},
            leeway=leeway,
        )
    # PyJWT messages can quote the token's header (an unsupported "crit" extension),
    # so its exception is not chained: only our fixed reason leaves this function.
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.InvalidSignatureError:
        raise Unauthorized("bad signature") from None
    except jwt.InvalidAlgorithmError:
        raise Unauthorized("algorithm not allowed") from None
    except jwt.MissingRequiredClaimError:
        raise Unauthorized("missing claim") from None
    except jwt.PyJWTError:
        raise Unauthorized("invalid token") from None
    exp = claims["exp"]
    # PyJWT has checked that exp is a number; a bool would be one to Python too.
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise Unauthorized("invalid claim")
    return VerifiedToken(_principal(claims), float(exp))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None`` if absent.

    Raises :class:`Unauthorized` for a header that is present but not a bearer token.
    """
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    # RFC 7235: the scheme is case-insensitive.
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthorized("malformed authorization header")
    return token


def _principal(claims: Mapping[str, Any]) -> Principal:
    sub, workspace = claims["sub"], claims["ws"]
    if not _is_opaque_id(sub) or not _is_opaque_id(workspace):
        raise Unauthorized("invalid claim")
    try:
        role = Role(claims["role"])
    except (ValueError, TypeError):
        raise Unauthorized("invalid role") from None
    name = claims.get("name")
    if name is not None and not _is_display_name(name):
        raise Unauthorized("invalid claim")
    act_for = claims.get("act_for")
    _check_act_for(role, act_for, Unauthorized)
    patient = claims.get("patient")
    _check_patient(role, patient, Unauthorized)
    call = claims.get("call")
    _check_call(role, call, Unauthorized)
    return Principal(
        workspace_id=workspace,
        id=sub,
        role=role,
        name=name,
        act_for=act_for,
        patient_id=patient,
        call=call,
    )


def _check_act_for(
    role: Role, act_for: object, error: type[ValueError] | type[Unauthorized]
) -> None:
    # A service only ever speaks for one person; any other role speaks for itself, and
    # an act_for there would be a second identity that some check might trust.
    if role is Role.SERVICE:
        if not _is_opaque_id(act_for):
            raise error("a service token needs act_for, an opaque id")
    elif act_for is not None:
        raise error("act_for is only allowed on service tokens")


def _check_patient(
    role: Role, patient: object, error: type[ValueError] | type[Unauthorized]
) -> None:
    # Only a person is a patient (or a service speaking for one): an agent or an
    # auditor with a patient claim would be a scope that no check expects.
    if patient is None:
        return
    if role not in (Role.PERSON, Role.SERVICE):
        raise error("patient is only allowed on person and service tokens")
    if not _is_opaque_id(patient):
        raise error("patient must be an opaque id")


def _check_call(role: Role, call: object, error: type[ValueError] | type[Unauthorized]) -> None:
    # Only a service carries a phone call (a bridge, for its caller).
    if call is None:
        return
    if role is not Role.SERVICE:
        raise error("call is only allowed on service tokens")
    if not _is_opaque_id(call):
        raise error("call must be an opaque id")


def _check_secret(secret: str) -> None:
    if not isinstance(secret, str) or len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret must be at least {MIN_SECRET_BYTES} bytes long")


def _is_opaque_id(value: object) -> bool:
    return isinstance(value, str) and _OPAQUE_ID.fullmatch(value) is not None


def _is_display_name(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_NAME_CHARS
        and value.isprintable()
        and bool(value.strip())
    )
