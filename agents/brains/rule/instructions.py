"""Reading new instructions for a running task out of a turn.

"Tell the Ozempic request to mark it urgent", "for the Ozempic one, add that the
patient tried metformin first", "mark it a priority": each pattern yields the words
that point at a task (``ref``, absent when none are named) and what to pass on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agents.brains.rule.sentences import sentence

_LEAD = (
    r"^(?:(?:hey|hi|ok|okay|oh|so|and|also|please|pls|kindly|can you|could you|would you|"
    r"will you|go ahead and)\b[\s,]*)*"
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
    # "add that the patient tried metformin first" (to the one running task)
    re.compile(
        _LEAD + r"(?P<payload>(?:(?:add|mention|include|note|say)\s+(?:that|a note)|expedite|"
        r"prioriti[sz]e|escalate|rush)\b.+)$",
        re.I,
    ),
)


@dataclass(frozen=True, slots=True)
class Instruction:
    """What to pass on (``payload``), and the words naming the task, if any (``ref``)."""

    ref: str | None
    payload: str


def parse_instruction(original: str) -> Instruction | None:
    """The instruction *original* gives a task, or ``None`` if it gives none."""
    if original.strip().endswith("?"):
        return None  # "the Ozempic one: any news?" asks; it does not instruct
    text = " ".join(original.split()).strip().rstrip("!. ")
    for pattern in _PATTERNS:
        found = pattern.match(text)
        if found is None:
            continue
        groups = found.groupdict()
        if groups.get("priority"):
            payload = f"{groups['verb']} it {groups['priority']}{groups.get('tail') or ''}"
            return Instruction(groups["ref"], sentence(payload))
        return Instruction(groups.get("ref"), sentence(groups["payload"]))
    return None
