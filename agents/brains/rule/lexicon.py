"""What a workspace teaches the rule brain about its own work: a :class:`Lexicon`.

The brain's grammar (requests, negations, questions, cancels, instructions, pronouns)
is the same everywhere; what differs is the work. A lexicon names the kinds of work a
workspace does with its tools ("call" is ``phone.call``; "the PA", "the insurer" mean a
prior authorization), the things its people talk about (medicines, a group such as
"the onboarding stragglers"), and the words that make a request urgent. A kind whose
tool none of the team has is ignored, so a lexicon never makes the brain promise work
that nobody can do. The demo's lexicon is data of the demo (``agents.demo.lexicon``);
a workspace without one gets :data:`EMPTY_LEXICON` and is read from its agents'
descriptions and examples alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

WorkShape = Literal["call", "prior_auth", "records"]
"""The shapes of work the brain knows how to ask for: each has its own arguments."""
SHAPES: tuple[WorkShape, ...] = ("call", "prior_auth", "records")


@dataclass(frozen=True, slots=True)
class WorkKind:
    """One kind of work: its tool, its shape, and what people call it.

    ``nouns`` name the work ("prior auth", "pa", "the insurer"); ``verbs`` ask for it
    ("call", "ring", "chase up"). Both are normalized phrases (lowercase, no
    punctuation). ``label`` is how replies name one ("prior auth"); ``plural`` several.
    """

    shape: WorkShape
    tool: str
    label: str
    plural: str
    nouns: tuple[str, ...]
    verbs: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    """Words that point at this work once started but never ask for it ("the insurer")."""

    @property
    def names(self) -> tuple[str, ...]:
        """Every phrase that names work of this kind: nouns and aliases."""
        return (*self.nouns, *self.aliases)


@dataclass(frozen=True, slots=True)
class PatientGroup:
    """A group of patients people name by a phrase: "the onboarding stragglers".

    ``phrases`` name the group (with any negation in the sentence, or with
    ``incomplete`` words, it means the patients *without* the flag); ``nicknames``
    always mean the patients without it. ``flag`` is the :class:`Patient` attribute.
    """

    name: str
    flag: str
    phrases: tuple[str, ...]
    nicknames: tuple[str, ...] = ()


DEFAULT_URGENT = ("urgent", "asap", "expedite", "expedited", "rush", "priority")


@dataclass(frozen=True, slots=True)
class Lexicon:
    """A workspace's own vocabulary for the rule brain (see the module docstring)."""

    kinds: tuple[WorkKind, ...] = ()
    medicines: frozenset[str] = frozenset()
    """Medicines by name, lowercased; with the patients' own, they are recognised."""
    brands: frozenset[str] = frozenset()
    """The medicines written with a capital ("Ozempic"), lowercased."""
    groups: tuple[PatientGroup, ...] = ()
    urgent: tuple[str, ...] = DEFAULT_URGENT
    words: frozenset[str] = field(default_factory=frozenset)
    """More words to correct typos towards (the workspace's jargon)."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Lexicon:
        """A lexicon from plain data (a workspace file's ``[lexicon]`` table)::

            medicines = ["ozempic"]; brands = ["ozempic"]; urgent = ["urgent", "asap"]
            [[lexicon.kinds]]  shape, tool, label, plural, nouns, verbs, aliases
            [[lexicon.groups]] name, flag, phrases, nicknames

        Phrases are normalized (lowercased). Raises :class:`ValueError` for a shape the
        brain does not know, or a missing or mistyped field.
        """

        def phrases(
            source: Mapping[str, Any], key: str, *, required: bool = False
        ) -> tuple[str, ...]:
            value = source.get(key, None)
            if value is None:
                if required:
                    raise ValueError(f"lexicon: {key!r} is required")
                return ()
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise ValueError(f"lexicon: {key!r} must be a list of strings")
            if not all(isinstance(v, str) for v in value):
                raise ValueError(f"lexicon: {key!r} must be a list of strings")
            return tuple(" ".join(v.lower().split()) for v in value if v.strip())

        def text(source: Mapping[str, Any], key: str) -> str:
            value = source.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"lexicon: {key!r} must be a non-empty string")
            return value.strip()

        kinds = []
        for entry in data.get("kinds") or ():
            if not isinstance(entry, Mapping):
                raise ValueError("lexicon: each kind must be a table")
            shape = text(entry, "shape")
            if shape not in SHAPES:
                raise ValueError(f"lexicon: unknown shape {shape!r} (known: {', '.join(SHAPES)})")
            kinds.append(
                WorkKind(
                    shape=shape,
                    tool=text(entry, "tool"),
                    label=text(entry, "label"),
                    plural=text(entry, "plural"),
                    nouns=phrases(entry, "nouns", required=True),
                    verbs=phrases(entry, "verbs"),
                    aliases=phrases(entry, "aliases"),
                )
            )
        groups = []
        for entry in data.get("groups") or ():
            if not isinstance(entry, Mapping):
                raise ValueError("lexicon: each group must be a table")
            groups.append(
                PatientGroup(
                    name=text(entry, "name"),
                    flag=text(entry, "flag"),
                    phrases=phrases(entry, "phrases", required=True),
                    nicknames=phrases(entry, "nicknames"),
                )
            )
        urgent = phrases(data, "urgent") or DEFAULT_URGENT
        return cls(
            kinds=tuple(kinds),
            medicines=frozenset(phrases(data, "medicines")),
            brands=frozenset(phrases(data, "brands")),
            groups=tuple(groups),
            urgent=urgent,
            words=frozenset(phrases(data, "words")),
        )

    def kind(self, shape: WorkShape) -> WorkKind | None:
        """The kind of work of this shape, if the workspace has one."""
        return next((k for k in self.kinds if k.shape == shape), None)

    def for_tools(self, tools: frozenset[str]) -> Lexicon:
        """This lexicon without the kinds whose tool is not in *tools*."""
        kept = tuple(k for k in self.kinds if k.tool in tools)
        if len(kept) == len(self.kinds):
            return self
        return Lexicon(kept, self.medicines, self.brands, self.groups, self.urgent, self.words)


EMPTY_LEXICON = Lexicon()
"""No built-in kinds of work: the brain reads the team's agents and tools alone."""
