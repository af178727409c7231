"""JWT bearer tokens: what is accepted, and every way a token is refused."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from agents.models import Principal, Role
from server.auth import bearer_token, issue_token, verify_token
from server.exceptions import ServerError, Unauthorized

SECRET = "k" * 32
OTHER_SECRET = "o" * 32


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": "person_1",
        "ws": "ws_demo",
        "role": "person",
        "exp": int(time.time()) + 600,
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def sign(payload: dict[str, Any], secret: str = SECRET, **kwargs: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", **kwargs)


def refused(token: str, reason: str | None = None, **kwargs: Any) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, token, **kwargs)
    if reason is not None:
        assert caught.value.reason == reason
    assert caught.value.code == "unauthorized"
    assert caught.value.__cause__ is None
    return caught.value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- accepted -------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.PERSON, Role.AGENT, Role.AUDITOR])
def test_issued_token_round_trips(role: Role) -> None:
    token = issue_token(SECRET, workspace="ws_1", sub="u-1_x", role=role, name="Dana Reyes")
    assert verify_token(SECRET, token) == Principal(
        workspace_id="ws_1", id="u-1_x", role=role, name="Dana Reyes"
    )


def test_ids_are_opaque_like_the_audit_trails() -> None:
    # An e-mail address is not an opaque id, and the audit trail could not record it.
    with pytest.raises(ValueError, match="sub"):
        issue_token(SECRET, workspace="ws_1", sub="u-1@x.org", role="person")


def test_service_token_acts_for_a_person() -> None:
    token = issue_token(
        SECRET, workspace="ws_1", sub="voice-bridge", role="service", act_for="person_1"
    )
    principal = verify_token(SECRET, token)
    assert principal.role is Role.SERVICE
    assert principal.act_for == "person_1"
    assert principal.person_id == "person_1"


def test_name_is_optional() -> None:
    principal = verify_token(SECRET, sign(claims()))
    assert principal.name is None
    assert principal == Principal("ws_demo", "person_1", Role.PERSON)


def test_unknown_claims_are_ignored() -> None:
    assert verify_token(SECRET, sign(claims(scope="chat", jti="x"))).id == "person_1"


def test_issued_token_carries_the_protocol_claims() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    token = issue_token(SECRET, workspace="w", sub="s", role="person", ttl=60, now=now)
    payload = jwt.decode(
        token, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert payload == {
        "sub": "s",
        "ws": "w",
        "role": "person",
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 60,
    }
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


# -- refused --------------------------------------------------------------------------


def test_expired_token() -> None:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    token = issue_token(SECRET, workspace="w", sub="s", role="person", ttl=60, now=an_hour_ago)
    refused(token, "token expired")


def test_leeway_forgives_small_clock_skew() -> None:
    token = sign(claims(exp=int(time.time()) - 5))
    refused(token, "token expired")
    assert verify_token(SECRET, token, leeway=30).id == "person_1"


def test_wrong_secret() -> None:
    refused(sign(claims(), OTHER_SECRET), "bad signature")


def test_alg_none_is_refused() -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    refused(f"{header}.{payload}.", "algorithm not allowed")
    refused(f"{header}.{payload}.{b64(b'sig')}", "algorithm not allowed")


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_algorithms_are_refused(alg: str) -> None:
    refused(jwt.encode(claims(), "k" * 64, algorithm=alg), "algorithm not allowed")


def test_tampered_payload_is_refused() -> None:
    header, _, signature = sign(claims()).split(".")
    forged = b64(json.dumps(claims(role="auditor")).encode())
    refused(f"{header}.{forged}.{signature}", "bad signature")


@pytest.mark.parametrize("missing", ["sub", "ws", "role", "exp"])
def test_missing_claims(missing: str) -> None:
    payload = claims()
    del payload[missing]
    refused(sign(payload), "missing claim")


@pytest.mark.parametrize("role", ["admin", "Person", "", 1, ["person"], None])
def test_bad_role(role: Any) -> None:
    payload = claims()
    payload["role"] = role
    refused(sign(payload))


def test_service_without_act_for() -> None:
    refused(sign(claims(role="service")))
    refused(sign(claims(role="service", act_for="")))
    refused(sign(claims(role="service", act_for=["person_1"])))


def test_a_patient_token_names_one_record() -> None:
    token = issue_token(SECRET, workspace="ws_1", sub="person_1", role="person", patient="pt-1")
    assert verify_token(SECRET, token).patient_id == "pt-1"
    bridge = issue_token(
        SECRET, workspace="ws_1", sub="bridge", role="service", act_for="p", patient="pt-1"
    )
    assert verify_token(SECRET, bridge).patient_id == "pt-1"
    assert verify_token(SECRET, sign(claims())).patient_id is None
    for role in ("agent", "auditor"):
        refused(sign(claims(role=role, patient="pt-1")))
        with pytest.raises(ValueError, match="patient"):
            issue_token(SECRET, workspace="ws_1", sub="a", role=role, patient="pt-1")
    for bad in ("", "has space", ["pt-1"], 7):
        refused(sign(claims(patient=bad)))


def test_a_caller_token_names_its_call() -> None:
    bridge = issue_token(
        SECRET, workspace="ws_1", sub="bridge", role="service", act_for="p", call="call-1"
    )
    assert verify_token(SECRET, bridge).call == "call-1"
    assert verify_token(SECRET, sign(claims(role="service", act_for="p"))).call is None
    # Only a service carries a call: a person or an agent with one would be a caller
    # that no bridge vouches for.
    for role in ("person", "agent", "auditor"):
        refused(sign(claims(role=role, call="call-1")))
        with pytest.raises(ValueError, match="call"):
            issue_token(SECRET, workspace="ws_1", sub="a", role=role, call="call-1")
    for bad in ("", "has space", ["call-1"], 7):
        refused(sign(claims(role="service", act_for="p", call=bad)))


@pytest.mark.parametrize("role", ["person", "agent", "auditor"])
def test_act_for_is_refused_on_other_roles(role: str) -> None:
    refused(sign(claims(role=role, act_for="person_2")))


@pytest.mark.parametrize(
    "overrides",
    [
        {"sub": ""},
        {"sub": "has space"},
        {"sub": "x" * 129},
        {"sub": "a/b"},
        {"ws": 7},
        {"ws": "ws\n"},
        {"ws": "ws/../other"},
        {"role": "service", "act_for": "person 1"},
        {"name": 5},
        {"name": ""},
        {"name": "x" * 201},
        {"name": "line\nbreak"},
        {"exp": "tomorrow"},
    ],
)
def test_malformed_claims(overrides: dict[str, Any]) -> None:
    refused(sign(claims(**overrides)))


@pytest.mark.parametrize(
    "token", ["", "not-a-token", "a.b.c", "x" * 9000, "....", sign(claims()) + "x"]
)
def test_malformed_tokens(token: str) -> None:
    refused(token)


def test_non_json_object_payload_is_refused() -> None:
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    refused(f"{header}.{b64(b'[1]')}.{b64(b'x')}")


def test_refusals_never_quote_the_token_or_its_claims() -> None:
    marker = "PATIENT-MARKER-42"
    tokens = [
        sign(claims(sub=marker + " bad")),
        sign(claims(role=marker)),
        sign(claims(role="service")) + marker,
        sign(claims(), headers={"crit": [marker]}),
        sign(claims(name=marker + "\n")),
        marker,
    ]
    for token in tokens:
        error = refused(token)
        assert marker not in str(error)
        assert marker not in repr(error)
        assert isinstance(error, ServerError)


def test_short_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        verify_token("short", sign(claims()))
    with pytest.raises(ValueError, match="32 bytes"):
        issue_token("short", workspace="w", sub="s", role="person")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"role": "admin"},
        {"workspace": "has space"},
        {"sub": ""},
        {"role": "service"},
        {"role": "person", "act_for": "p"},
        {"ttl": 0},
        {"name": ""},
    ],
)
def test_issue_refuses_what_verify_would_refuse(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"workspace": "w", "sub": "s", "role": "person"}
    arguments.update(kwargs)
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError; the message is ours
        issue_token(SECRET, **arguments)


# -- Authorization header -------------------------------------------------------------


def test_bearer_token() -> None:
    assert bearer_token(None) is None
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer  abc") == "abc"


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "abc", "Bearer a b"]
)
def test_malformed_authorization_header(header: str) -> None:
    with pytest.raises(Unauthorized, match="malformed authorization header"):
        bearer_token(header)
