"""Audit records: who did what to which ids, when, through which channel, and how it went.

Fields follow FHIR AuditEvent:

=================  ==========================================================
FHIR AuditEvent    here
=================  ==========================================================
``type``           ``type`` (:class:`AuditType`)
``action``         ``action`` (:class:`AuditAction`, FHIR's C/R/U/D/E codes)
``recorded``       ``recorded`` (UTC, microseconds)
``outcome``        ``outcome`` (FHIR's 0/4/8/12) and ``reason`` (enumerated)
``agent``          ``actor_kind``, ``actor_id`` and ``on_behalf_of``
``source``         ``node_id`` (the node that wrote it)
``entity``         ``task_id``, ``chat_id``, ``conversation_id`` (opaque ids)
``agent.network``  ``channel`` (a route template: ``http:GET /v1/tasks/{task_id}``)
=================  ==========================================================

A record never holds contents: no text, titles, names, dates of birth, tool arguments,
query strings, tokens or stack traces. That is enforced by construction: every field is
an enumeration, an integer, a UTC time, or a string matching a strict pattern with no
room for prose, and a record that breaks one raises :class:`InvalidAuditField`.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from audit.exceptions import InvalidAuditField

#: ``prev_hash`` of the first record of a trail.
GENESIS_HASH = "0" * 64

#: How many principals an actor may act for (a bridge for a caller, an agent for its
#: conversation's person, a sub-agent for its parent...); deeper means a bug upstream.
MAX_ON_BEHALF_OF = 8

# Ids are opaque tokens (``task_3fJ…``): no spaces, dots or punctuation, so no prose.
_ID = re.compile(r"[A-Za-z0-9_\-]{1,100}")
# Node ids may be host names, hence dots and colons; still no spaces.
_NODE_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")
_HASH = re.compile(r"[0-9a-f]{64}")
# A channel is ``kind:name`` (``ws:task.status``, ``agent:child_result``) or
# ``http:METHOD /route/{template}``. The single space allowed is the one after an HTTP
# method; ``?``, ``=``, ``&`` and ``%`` are not in the alphabet, so no query strings.
_SEGMENT = r"(?:[A-Za-z0-9_.\-]+|\{[a-z_][a-z0-9_]*(?::[a-z]+)?\})"
_PATH = rf"(?:/{_SEGMENT})+/?|/"
_CHANNEL = re.compile(
    rf"[a-z]{{2,16}}:(?:[A-Za-z0-9_.\-]{{1,100}}|{_PATH})"
    rf"|http:(?:GET|HEAD|POST|PUT|PATCH|DELETE) (?:{_PATH})"
)
_MAX_CHANNEL = 200
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class AuditAction(enum.StrEnum):
    """FHIR's AuditEvent action codes.

    ``TASK_STARTED`` is ``C``; ``PHI_RECORD_VIEWED`` is ``R``; ``TASK_INSTRUCTED`` and
    ``TASK_CANCELLED`` are ``U`` (a cancelled task is kept, so not ``D``);
    ``CALLER_VERIFICATION`` (one try of a caller at proving who they are) is ``E``; an
    ``ACCESS_DENIED`` carries the action that was attempted.
    """

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class AuditType(enum.StrEnum):
    """What happened."""

    PHI_RECORD_VIEWED = "PHI_RECORD_VIEWED"
    ACCESS_DENIED = "ACCESS_DENIED"
    TASK_STARTED = "TASK_STARTED"
    TASK_INSTRUCTED = "TASK_INSTRUCTED"
    TASK_CANCELLED = "TASK_CANCELLED"
    CALLER_VERIFICATION = "CALLER_VERIFICATION"

    @property
    def default_action(self) -> AuditAction:
        """The action code this type records unless told otherwise."""
        return _DEFAULT_ACTIONS[self]


_DEFAULT_ACTIONS = {
    AuditType.PHI_RECORD_VIEWED: AuditAction.READ,
    AuditType.ACCESS_DENIED: AuditAction.READ,
    AuditType.TASK_STARTED: AuditAction.CREATE,
    AuditType.TASK_INSTRUCTED: AuditAction.UPDATE,
    AuditType.TASK_CANCELLED: AuditAction.UPDATE,
    AuditType.CALLER_VERIFICATION: AuditAction.EXECUTE,
}


class AuditOutcome(enum.StrEnum):
    """FHIR's AuditEvent outcome codes; a refused access is a minor failure (``4``)."""

    SUCCESS = "0"
    MINOR_FAILURE = "4"
    SERIOUS_FAILURE = "8"
    MAJOR_FAILURE = "12"


class AuditReason(enum.StrEnum):
    """Why the outcome is what it is: an enumeration, never free text."""

    OWNER = "owner"
    NOT_OWNER = "not_owner"
    NO_SUCH_RECORD = "no_such_record"
    OTHER_WORKSPACE = "other_workspace"
    VERIFIED = "verified"
    NO_MATCH = "no_match"
    LOCKED = "locked"


class ActorKind(enum.StrEnum):
    """What kind of principal acted."""

    PERSON = "person"
    AGENT = "agent"
    SERVICE = "service"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """What a caller asks the trail to record; the trail adds id, seq, time and hashes.

    ``action`` defaults to the type's :attr:`AuditType.default_action`; ``outcome`` to
    ``MINOR_FAILURE`` for ``ACCESS_DENIED`` and ``SUCCESS`` otherwise. Raises
    :class:`InvalidAuditField` if a field is malformed.
    """

    type: AuditType
    workspace_id: str
    actor_kind: ActorKind
    actor_id: str
    channel: str
    reason: AuditReason
    action: AuditAction | None = None
    outcome: AuditOutcome | None = None
    on_behalf_of: tuple[str, ...] = ()
    task_id: str | None = None
    chat_id: str | None = None
    conversation_id: str | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        _check_facts(self)
        if self.action is not None:
            _check_enum("action", self.action, AuditAction)
        if self.outcome is not None:
            _check_enum("outcome", self.outcome, AuditOutcome)
            _check_outcome(self.type, self.outcome)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """One stored link of the trail. ``hash`` is SHA-256 over :meth:`canonical`.

    Construction validates every field (raising :class:`InvalidAuditField`) but not the
    hash: a tampered record must still load so that :func:`audit.verify.verify_chain`
    can name it.
    """

    id: str
    seq: int
    workspace_id: str
    type: AuditType
    action: AuditAction
    recorded: datetime
    outcome: AuditOutcome
    reason: AuditReason
    actor_kind: ActorKind
    actor_id: str
    on_behalf_of: tuple[str, ...]
    channel: str
    node_id: str
    task_id: str | None
    chat_id: str | None
    conversation_id: str | None
    request_id: str | None
    prev_hash: str
    hash: str

    def __post_init__(self) -> None:
        check_id("id", self.id)
        if type(self.seq) is not int or not 1 <= self.seq < 2**63:
            raise InvalidAuditField("seq must be an int from 1 to 2**63 - 1")
        _check_facts(self)
        _check_enum("action", self.action, AuditAction)
        _check_enum("outcome", self.outcome, AuditOutcome)
        _check_outcome(self.type, self.outcome)
        if not isinstance(self.recorded, datetime) or self.recorded.utcoffset() != _ZERO:
            raise InvalidAuditField("recorded must be a timezone-aware UTC datetime")
        check_node_id(self.node_id)
        for name in ("prev_hash", "hash"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _HASH.fullmatch(value):
                raise InvalidAuditField(f"{name} must be 64 lowercase hex digits")

    @classmethod
    def seal(
        cls,
        event: AuditEvent,
        *,
        id: str,
        seq: int,
        recorded: datetime,
        node_id: str,
        prev_hash: str,
    ) -> AuditRecord:
        """The record for *event* at position *seq*, its hash computed.

        Raises :class:`InvalidAuditField` if a field is malformed.
        """
        # Constructed (so validated) with a placeholder hash, then hashed: the hash is
        # never computed over a malformed field.
        unsealed = cls(
            id=id,
            seq=seq,
            workspace_id=event.workspace_id,
            type=event.type,
            action=event.action if event.action is not None else event.type.default_action,
            recorded=recorded,
            outcome=event.outcome if event.outcome is not None else _default_outcome(event.type),
            reason=event.reason,
            actor_kind=event.actor_kind,
            actor_id=event.actor_id,
            on_behalf_of=event.on_behalf_of,
            channel=event.channel,
            node_id=node_id,
            task_id=event.task_id,
            chat_id=event.chat_id,
            conversation_id=event.conversation_id,
            request_id=event.request_id,
            prev_hash=prev_hash,
            hash=GENESIS_HASH,
        )
        return dataclasses.replace(unsealed, hash=unsealed.computed_hash())

    def to_dict(self) -> dict[str, str | int | list[str] | None]:
        """The record as JSON-ready values: enum values, ``recorded`` as ISO 8601 ``Z``."""
        return {
            "id": self.id,
            "seq": self.seq,
            "workspace_id": self.workspace_id,
            "type": self.type.value,
            "action": self.action.value,
            "recorded": self.recorded.strftime(_TIME_FORMAT),
            "outcome": self.outcome.value,
            "reason": self.reason.value,
            "actor_kind": self.actor_kind.value,
            "actor_id": self.actor_id,
            "on_behalf_of": list(self.on_behalf_of),
            "channel": self.channel,
            "node_id": self.node_id,
            "task_id": self.task_id,
            "chat_id": self.chat_id,
            "conversation_id": self.conversation_id,
            "request_id": self.request_id,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    def canonical(self) -> bytes:
        """Sorted-key compact JSON of every field but ``hash``: the bytes that are hashed."""
        body = self.to_dict()
        del body["hash"]
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")

    def computed_hash(self) -> str:
        """SHA-256 (hex) of :meth:`canonical`; equals ``hash`` unless the record changed."""
        return hashlib.sha256(self.canonical()).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> AuditRecord:
        """The inverse of :meth:`to_dict`. Raises :class:`InvalidAuditField`."""
        expected = set(_RECORD_FIELDS)
        if set(data) != expected:
            missing = sorted(expected - set(data))
            extra = sorted(str(key) for key in set(data) - expected)
            raise InvalidAuditField(f"record fields differ: missing {missing}, unknown {extra}")
        # Any: the values are checked by __post_init__, which is the point of this method.
        values: dict[str, Any] = dict(data)
        try:
            values["type"] = AuditType(_str(data["type"]))
            values["action"] = AuditAction(_str(data["action"]))
            values["outcome"] = AuditOutcome(_str(data["outcome"]))
            values["reason"] = AuditReason(_str(data["reason"]))
            values["actor_kind"] = ActorKind(_str(data["actor_kind"]))
            recorded = datetime.strptime(_str(data["recorded"]), _TIME_FORMAT)
        except ValueError:
            # ``from None``: the ValueError's message would quote the rejected value.
            raise InvalidAuditField("an enumerated field or recorded is malformed") from None
        values["recorded"] = recorded.replace(tzinfo=UTC)
        on_behalf_of = data["on_behalf_of"]
        if not isinstance(on_behalf_of, list | tuple):
            raise InvalidAuditField("on_behalf_of must be a list of ids")
        values["on_behalf_of"] = tuple(on_behalf_of)
        return cls(**values)


_RECORD_FIELDS = tuple(AuditRecord.__dataclass_fields__)
_ZERO = timedelta(0)


def _default_outcome(type_: AuditType) -> AuditOutcome:
    if type_ is AuditType.ACCESS_DENIED:
        return AuditOutcome.MINOR_FAILURE
    return AuditOutcome.SUCCESS


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


def _check_facts(facts: AuditEvent | AuditRecord) -> None:
    _check_enum("type", facts.type, AuditType)
    _check_enum("reason", facts.reason, AuditReason)
    _check_enum("actor_kind", facts.actor_kind, ActorKind)
    check_id("workspace_id", facts.workspace_id)
    check_id("actor_id", facts.actor_id)
    for name in ("task_id", "chat_id", "conversation_id", "request_id"):
        value = getattr(facts, name)
        if value is not None:
            check_id(name, value)
    if not isinstance(facts.on_behalf_of, tuple) or len(facts.on_behalf_of) > MAX_ON_BEHALF_OF:
        raise InvalidAuditField(f"on_behalf_of must be a tuple of at most {MAX_ON_BEHALF_OF} ids")
    for principal in facts.on_behalf_of:
        check_id("on_behalf_of", principal)
    channel = facts.channel
    if (
        not isinstance(channel, str)
        or len(channel) > _MAX_CHANNEL
        or not _CHANNEL.fullmatch(channel)
    ):
        raise InvalidAuditField(
            "channel must be 'kind:name' or 'http:METHOD /route/{template}' "
            f"(at most {_MAX_CHANNEL} characters, no query string)"
        )


def check_id(name: str, value: object) -> None:
    """Raise :class:`InvalidAuditField` unless *value* is an opaque id (no free text)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidAuditField(f"{name} must match {_ID.pattern}")


def check_node_id(value: object) -> None:
    """Raise :class:`InvalidAuditField` unless *value* is a node id (a host name at most)."""
    if not isinstance(value, str) or not _NODE_ID.fullmatch(value):
        raise InvalidAuditField(f"node_id must match {_NODE_ID.pattern}")


def _check_enum(name: str, value: object, kind: type[enum.Enum]) -> None:
    if not isinstance(value, kind):
        raise InvalidAuditField(f"{name} must be an {kind.__name__}")


def _check_outcome(type_: AuditType, outcome: AuditOutcome) -> None:
    # A denied access recorded as a success would hide exactly what auditors look for.
    if type_ is AuditType.ACCESS_DENIED and outcome is AuditOutcome.SUCCESS:
        raise InvalidAuditField("an ACCESS_DENIED record cannot have outcome SUCCESS")
