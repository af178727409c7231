"""Reading new instructions for a running task out of a turn.

"Tell the Ozempic request to mark it urgent", "for the Ozempic one, add that the
patient tried metformin first", "mark it a priority": each pattern yields the words
that point at a task (``ref``, absent when none are named) and what to pass on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from agents.brains.rule.sentences import sentence

_LEAD = (
    r"^(?:(?:hey|hi|ok|okay|oh|so|and|also|please|pls|kindly|can you|could you|would you|"
    r"will you|go ahead and|actually|then|now|just|could someone|can someone)\b[\s,]*)*"
)
_TASK_NOUN = r"(?:request|one|task|call|calls|auth|authorization|lookup|job|work|order|pa|thing)"
_PRIORITY = r"(?:urgent|a priority|high priority|priority|stat|asap|a rush|rush|expedited)"
_PATTERNS = (
    # "tell the Ozempic request to mark it urgent", "let the caller know that …"
    re.compile(
        _LEAD + r"(?:tell|ask|remind|let|instruct)\s+(?!me\b|us\b|you\b)(?P<ref>.+?)\s+"
        r"(?:know\s+)?(?:to|that)\s+(?P<payload>.+)$",
        re.I,
    ),
    # "for the Ozempic one, add that the patient tried metformin first"
    re.compile(
        _LEAD + r"(?:for|on|about|regarding|re)\s+(?P<ref>[^,:;]*\b" + _TASK_NOUN + r"\b[^,:;]*?)"
        r"\s*[,:;—–-]\s*(?P<payload>.+)$",
        re.I,
    ),
    # "Ozempic request: please mark it urgent" (never a question: see parse_instruction)
    re.compile(
        _LEAD + r"(?P<ref>[^,:;?]*\b" + _TASK_NOUN + r"\b)\s*[,:;—–-]\s*(?P<payload>[^?]+)$",
        re.I,
    ),
    # "add to the Ozempic request that …"
    re.compile(
        _LEAD + r"(?:add|mention|include|note|say)\s+(?:to|on|for)\s+(?P<ref>.+?)\s+that\s+"
        r"(?P<payload>.+)$",
        re.I,
    ),
    # "mark the Ozempic request urgent", "make it a priority"
    re.compile(
        _LEAD
        + r"(?P<verb>mark|flag|make|set)\s+(?P<ref>.+?)\s+(?:as\s+)?(?P<priority>"
        + _PRIORITY
        + r")\b(?P<tail>.*)$",
        re.I,
    ),
    # "let the payer know Dana has run out of her pen"
    re.compile(_LEAD + r"let\s+(?P<ref>.+?)\s+know\s+(?:that\s+)?(?P<payload>.+)$", re.I),
    # "when you reach Carol, remind her about the forms"
    re.compile(
        _LEAD + r"(?:when|once|if)\s+(?:you|they|the caller)\s+(?:reach|get hold of|get through "
        r"to|speak to|speak with|talk to|talk with|call|get)\s+(?P<ref>[^,;:]+?)\s*[,;:—–-]\s*"
        r"(?P<payload>.+)$",
        re.I,
    ),
    # "add that the patient tried metformin first" (to the one running task)
    re.compile(
        _LEAD + r"(?P<payload>(?:(?:add|include|note|say)\s+(?:that|a note)|mention|expedite|"
        r"prioriti[sz]e|escalate|rush)\b.+)$",
        re.I,
    ),
)
_NEGATED = re.compile(
    _LEAD + r"(?:do not|don'?t|dont|never|no need to)\s+(?:tell|mention|add|let|ask|say|inform|"
    r"mark|flag|remind|expedite)\b",
    re.I,
)
# "tell them it's urgent", "tell the insurer Hana's sugar has been high"
_TELL = re.compile(_LEAD + r"(?:tell|inform|remind|ask|warn)\s+(?P<rest>.+)$", re.I)


_IS_CONTRACTIONS = frozenset({"it's", "that's", "she's", "he's", "they're", "its", "this's"})


@dataclass(frozen=True, slots=True)
class Instruction:
    """What to pass on (``payload``), and the words naming the task, if any (``ref``)."""

    ref: str | None
    payload: str
    negated: bool = False


def parse_instruction(
    original: str, is_ref_word: Callable[[str], bool] = lambda _word: False
) -> Instruction | None:
    """The instruction *original* gives a task, or ``None`` if it gives none.

    *is_ref_word* tells the words that can name a task ("them", "Dana's", "insurer"),
    for sentences that name one without "to" or "that": "tell them it's urgent".
    """
    if original.strip().endswith("?"):
        return None  # "the Ozempic one: any news?" asks; it does not instruct
    text = " ".join(original.split()).strip().rstrip("!. ")
    if _NEGATED.match(text):
        return Instruction(None, "", negated=True)
    for pattern in _PATTERNS:
        found = pattern.match(text)
        if found is None:
            continue
        groups = found.groupdict()
        if groups.get("priority"):
            payload = f"{groups['verb']} it {groups['priority']}{groups.get('tail') or ''}"
            return Instruction(groups["ref"], sentence(payload))
        return Instruction(groups.get("ref"), sentence(groups["payload"]))
    told = _TELL.match(text)
    if told is not None:
        tokens = told.group("rest").split()
        ref: list[str] = []
        while tokens and is_ref_word(tokens[0]):
            token = tokens[0]
            if token.lower().replace("’", "'") in _IS_CONTRACTIONS:
                break  # "tell them it's urgent": "it's" starts what to tell
            if ref and ref[-1].lower() not in {"the", "a", "an"} and token[:1].isupper():
                break  # "tell the insurer Hana's sugar is high": the name starts it
            ref.append(tokens.pop(0))
        if ref and tokens:
            if tokens[0].lower() == "about":
                return Instruction(" ".join(ref), sentence(text))
            return Instruction(" ".join(ref), sentence(" ".join(tokens)))
    return None
