"""Signed checkpoints of the chain's head, kept where the database is not.

The hash chain (:mod:`audit.verify`) proves that the records present are unchanged and
in order, but not that nothing was cut from the end, nor that whoever holds the
database did not rewrite the chain from some record on, recomputing every hash after
it. A **checkpoint** closes both: it is the head's ``seq`` and ``hash`` and the time it
was taken, signed with an Ed25519 key the database never holds, and written somewhere
else (a directory, or a line appended to a log the operator names). Against a set of
checkpoints whose signatures hold, :func:`verify_with_checkpoints` reports

- the chain's own problems (a record edited without re-hashing, missing, reordered);
- ``REWRITTEN``: the record at a checkpoint's ``seq`` is not the one signed there, so
  the chain was rewritten at or before it (after the last checkpoint that matched);
- ``TRUNCATED``: a checkpoint names a ``seq`` the trail no longer reaches;
- ``BAD_CHECKPOINT``: a checkpoint is malformed or not signed by the trusted key (the
  checkpoints themselves were tampered with, or another key signed them).

Records after the newest checkpoint are protected by the chain alone until the next
one is taken: take them often (the server can, on a schedule).

A checkpoint is one line of JSON: ``{"v": 1, "seq", "hash", "time", "key_id",
"signature"}``; the signature is over ``MESSAGE_PREFIX`` and the compact, sorted JSON
of the other fields, so it cannot be mistaken for a signature over anything else.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.exceptions import AuditError
from audit.record import GENESIS_HASH, AuditRecord
from audit.verify import ChainProblem, VerifyReport, verify_chain

VERSION = 1
MESSAGE_PREFIX = b"switchboard audit checkpoint v1\n"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_FIELDS = frozenset({"v", "seq", "hash", "time", "key_id", "signature"})


class InvalidCheckpoint(AuditError):
    """A checkpoint is malformed, or a key file is not an Ed25519 key."""


class CheckpointProblem(enum.StrEnum):
    """What checkpoints found that the chain alone cannot."""

    #: A checkpoint's seq is past the trail's end: the newest records were removed.
    TRUNCATED = "truncated"
    #: The record at a checkpoint's seq is not the one signed: the chain was rewritten.
    REWRITTEN = "rewritten"
    #: A checkpoint is malformed or its signature does not hold under the trusted key.
    BAD_CHECKPOINT = "bad_checkpoint"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The head (``seq``, ``hash``) at ``time``, signed by the key ``key_id`` names."""

    seq: int
    hash: str
    time: datetime
    key_id: str
    signature: str

    def signed_part(self) -> bytes:
        """The bytes the signature covers."""
        body = {
            "v": VERSION,
            "seq": self.seq,
            "hash": self.hash,
            "time": self.time.strftime(_TIME_FORMAT),
            "key_id": self.key_id,
        }
        return MESSAGE_PREFIX + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def to_json(self) -> str:
        """One line of JSON (no newline)."""
        body = json.loads(self.signed_part()[len(MESSAGE_PREFIX) :])
        body["signature"] = self.signature
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        """Parse one line; raises :class:`InvalidCheckpoint` (signature not checked)."""
        try:
            data = json.loads(text)
        except ValueError:
            raise InvalidCheckpoint("not JSON") from None
        if not isinstance(data, dict) or set(data) != _FIELDS or data["v"] != VERSION:
            raise InvalidCheckpoint(f"not a version {VERSION} checkpoint")
        seq, head, key, signature = data["seq"], data["hash"], data["key_id"], data["signature"]
        if type(seq) is not int or seq < 0:
            raise InvalidCheckpoint("seq must be a whole number")
        if not all(isinstance(value, str) for value in (head, key, signature, data["time"])):
            raise InvalidCheckpoint("hash, time, key_id and signature must be strings")
        if len(head) != 64 or any(c not in "0123456789abcdef" for c in head):
            raise InvalidCheckpoint("hash must be 64 lowercase hex digits")
        try:
            time = datetime.strptime(data["time"], _TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise InvalidCheckpoint("time is malformed") from None
        return cls(seq=seq, hash=head, time=time, key_id=key, signature=signature)


# -- keys ----------------------------------------------------------------------------


def generate_key() -> Ed25519PrivateKey:
    """A new signing key."""
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in PEM file *path*; raises :class:`InvalidCheckpoint`."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidCheckpoint(
            f"cannot read a private key from {path}: {type(exc).__name__}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidCheckpoint(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key in PEM file *path* (a private key's public half is taken
    too); raises :class:`InvalidCheckpoint`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidCheckpoint(f"cannot read {path}: {type(exc).__name__}") from None
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InvalidCheckpoint(
            f"cannot read a public key from {path}: {type(exc).__name__}"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidCheckpoint(f"{path} is not an Ed25519 public key")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """A short name for *key*: the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


# -- signing and checking ------------------------------------------------------------


def sign_head(key: Ed25519PrivateKey, head: AuditRecord | None, time: datetime) -> Checkpoint:
    """A checkpoint of *head* (``None``: the empty trail, seq 0) at *time* (UTC)."""
    unsigned = Checkpoint(
        seq=0 if head is None else head.seq,
        hash=GENESIS_HASH if head is None else head.hash,
        time=time.astimezone(UTC),
        key_id=key_id(key.public_key()),
        signature="",
    )
    signature = key.sign(unsigned.signed_part())
    return Checkpoint(
        seq=unsigned.seq,
        hash=unsigned.hash,
        time=unsigned.time,
        key_id=unsigned.key_id,
        signature=base64.urlsafe_b64encode(signature).decode("ascii"),
    )


def signature_holds(checkpoint: Checkpoint, key: Ed25519PublicKey) -> bool:
    """Whether *key* signed *checkpoint* exactly as it reads."""
    if checkpoint.key_id != key_id(key):
        return False
    try:
        signature = base64.urlsafe_b64decode(checkpoint.signature.encode("ascii"))
        key.verify(signature, checkpoint.signed_part())
    except (InvalidSignature, ValueError):
        return False
    return True


# -- where checkpoints are kept ------------------------------------------------------


def write_checkpoint(checkpoint: Checkpoint, target: Path) -> Path:
    """Keep *checkpoint* at *target*: a new file in it if it is a directory, else a
    line appended to it (created if need be). Flushed to disk; returns the file."""
    line = checkpoint.to_json() + "\n"
    if target.is_dir():
        stamp = checkpoint.time.strftime("%Y%m%dT%H%M%S%fZ")
        path = target / f"checkpoint-{checkpoint.seq:012d}-{stamp}.json"
        temporary = target / f".{path.name}.tmp"
        with temporary.open("w", encoding="ascii") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())
        # Renamed into place: a reader never sees half a checkpoint.
        os.replace(temporary, path)
        return path
    with target.open("a", encoding="ascii") as out:
        out.write(line)
        out.flush()
        os.fsync(out.fileno())
    return target


def read_checkpoints(source: Path) -> Iterator[tuple[str, Checkpoint | InvalidCheckpoint]]:
    """Every checkpoint at *source* (a directory of files, or one file of lines), with
    where it was read (``file:line``); a malformed one comes as its error."""
    files = sorted(p for p in source.iterdir() if p.is_file()) if source.is_dir() else [source]
    for path in files:
        if path.name.startswith("."):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            yield f"{path}", InvalidCheckpoint(f"unreadable: {type(exc).__name__}")
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{number}", Checkpoint.from_json(line)
            except InvalidCheckpoint as exc:
                yield f"{path}:{number}", exc


# -- verifying -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckpointReport:
    """The outcome of :func:`verify_with_checkpoints`.

    ``chain`` is the chain's own report; ``problem`` the first thing wrong (``None``
    when ``ok``); ``matched`` how many checkpoints agreed with the trail;
    ``newest_seq`` the highest seq a valid checkpoint vouches for.
    """

    ok: bool
    chain: VerifyReport
    checkpoints: int
    matched: int
    newest_seq: int | None
    problem: ChainProblem | CheckpointProblem | None = None
    detail: str = ""


def verify_with_checkpoints(
    records: Iterable[AuditRecord],
    checkpoints: Iterable[tuple[str, Checkpoint | InvalidCheckpoint]],
    key: Ed25519PublicKey,
) -> CheckpointReport:
    """Check the chain *records* (from seq 1) against *checkpoints* signed by *key*.

    Never raises for a bad trail or a bad checkpoint: the report says what is wrong.
    Holds the checkpoints in memory and two records at a time.
    """
    valid: list[tuple[str, Checkpoint]] = []
    for where, checkpoint in checkpoints:
        if isinstance(checkpoint, InvalidCheckpoint):
            return _bad_checkpoint(where, str(checkpoint), len(valid))
        if not signature_holds(checkpoint, key):
            return _bad_checkpoint(
                where, f"seq {checkpoint.seq}: not signed by key {key_id(key)}", len(valid)
            )
        valid.append((where, checkpoint))
    valid.sort(key=lambda item: (item[1].seq, item[1].time))
    wanted = {checkpoint.seq for _, checkpoint in valid}
    seen: dict[int, str] = {}

    def tap(stream: Iterable[AuditRecord]) -> Iterator[AuditRecord]:
        for record in stream:
            if record.seq in wanted and record.seq not in seen:
                seen[record.seq] = record.hash
            yield record

    chain = verify_chain(tap(records))
    seen[0] = GENESIS_HASH
    newest = valid[-1][1].seq if valid else None
    matched = 0
    last_good: Checkpoint | None = None
    for where, checkpoint in valid:
        if checkpoint.seq > chain.last_seq:
            break
        if seen.get(checkpoint.seq) != checkpoint.hash:
            after = f"after seq {last_good.seq}, " if last_good is not None else ""
            return CheckpointReport(
                ok=False,
                chain=chain,
                checkpoints=len(valid),
                matched=matched,
                newest_seq=newest,
                problem=CheckpointProblem.REWRITTEN,
                detail=(
                    f"the record at seq {checkpoint.seq} is not the one signed at "
                    f"{checkpoint.time.strftime(_TIME_FORMAT)} ({where}): the chain was "
                    f"rewritten {after}at or before seq {checkpoint.seq}"
                ),
            )
        matched += 1
        last_good = checkpoint
    if not chain.ok:
        return CheckpointReport(
            ok=False,
            chain=chain,
            checkpoints=len(valid),
            matched=matched,
            newest_seq=newest,
            problem=chain.problem,
            detail=chain.detail,
        )
    if newest is not None and newest > chain.last_seq:
        _, beyond = next((w, c) for w, c in valid if c.seq > chain.last_seq)
        return CheckpointReport(
            ok=False,
            chain=chain,
            checkpoints=len(valid),
            matched=matched,
            newest_seq=newest,
            problem=CheckpointProblem.TRUNCATED,
            detail=(
                f"the trail ends at seq {chain.last_seq} but a checkpoint signed at "
                f"{beyond.time.strftime(_TIME_FORMAT)} vouches for seq {beyond.seq}: "
                f"records after seq {chain.last_seq} were removed"
            ),
        )
    return CheckpointReport(
        ok=True,
        chain=chain,
        checkpoints=len(valid),
        matched=matched,
        newest_seq=newest,
        detail=f"{chain.checked} records, chain intact, {matched} checkpoints agree",
    )


def _bad_checkpoint(where: str, why: str, good: int) -> CheckpointReport:
    return CheckpointReport(
        ok=False,
        chain=VerifyReport(ok=False, checked=0, last_seq=0, head_hash=GENESIS_HASH),
        checkpoints=good,
        matched=0,
        newest_seq=None,
        problem=CheckpointProblem.BAD_CHECKPOINT,
        detail=f"checkpoint {where} cannot be trusted: {why}",
    )
