"""Reading a person's words: normalization, politeness stripping and stemming.

Everything downstream compares normalized words, so "What's Evan's phone number?"
and "whats evans phone number" read the same: lowercase, no punctuation, contractions
expanded, possessives dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agents.brains.rule.vocabulary import QUESTION_AUX, SYNONYMS, words

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})
_CONTRACTIONS = (
    ("can't", "can not"),
    ("won't", "will not"),
    ("n't", " not"),
    ("'re", " are"),
    ("'ve", " have"),
    ("'ll", " will"),
    ("'m", " am"),
    ("'d", " would"),
    ("'s", ""),  # possessives and "what's": the noun or verb alone carries the meaning
    ("s'", "s"),
)


# Contractions typed without their apostrophe: "dont call Bob" must read as "do not".
_BARE_CONTRACTIONS = {
    "dont": "do not",
    "doesnt": "does not",
    "didnt": "did not",
    "isnt": "is not",
    "arent": "are not",
    "wasnt": "was not",
    "werent": "were not",
    "hasnt": "has not",
    "havent": "have not",
    "hadnt": "had not",
    "wont": "will not",
    "cant": "can not",
    "cannot": "can not",
    "shouldnt": "should not",
    "wouldnt": "would not",
    "couldnt": "could not",
    "mustnt": "must not",
    "lets": "let us",
    "whats": "what",
    "hows": "how",
    "wheres": "where",
    "thats": "that",
    "im": "i am",
    "ive": "i have",
    "youre": "you are",
    "theyre": "they are",
    "shes": "she",
    "hes": "he",
}


def normalize(text: str) -> str:
    """*text* lowercased, without punctuation, contractions expanded."""
    lowered = text.translate(_APOSTROPHES).lower()
    lowered = lowered.replace("let's", "let us")
    for short, long in _CONTRACTIONS:
        lowered = lowered.replace(short, long)
    tokens = [
        part
        for token in re.sub(r"[^a-z0-9]+", " ", lowered).split()
        for part in _BARE_CONTRACTIONS.get(token, token).split()
    ]
    # "phone number" is a noun: keep it from reading as "phone (someone)".
    return re.sub(
        r"\b(?:tele)?(?:phone|contact) (?:number|no|num)\b", "phonenumber", " ".join(tokens)
    )


@dataclass(frozen=True, slots=True)
class Text:
    """A user's words, normalized: lowercase, no punctuation, contractions expanded."""

    original: str
    words: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Text:
        return cls(text, tuple(normalize(text).split()))

    @property
    def padded(self) -> str:
        return f" {' '.join(self.words)} "

    def has(self, *phrases: str) -> bool:
        """Whether any of *phrases* (normalized, whole words) occurs."""
        padded = self.padded
        return any(f" {phrase} " in padded for phrase in phrases)

    def starts(self, *phrases: str) -> bool:
        """Whether the words, past any leading politeness, begin with one of *phrases*."""
        body = " ".join(strip_lead(self.words))
        return any(body == p or body.startswith(p + " ") for p in phrases)

    def original_word(self, word: str) -> str:
        """*word* as the person wrote it (its case), for quoting back."""
        for token in re.findall(r"[\w'’-]+", self.original):
            if normalize(token) == word:
                return str(token)
        return word


_LEAD_WORDS = words("hey hi hello ok okay oh so and also please pls um uh well right alright")
_LEAD_WORDS |= words("great thanks kindly now")
_LEAD_PAIRS = {("can", "you"), ("could", "you"), ("would", "you"), ("will", "you")}
_LEAD_PAIRS |= {("go", "ahead"), ("i", "want"), ("i", "would"), ("we", "need"), ("i", "need")}


def strip_lead(tokens: Sequence[str]) -> list[str]:
    """*tokens* without leading politeness ("ok, can you please …")."""
    rest = list(tokens)
    while rest:
        if rest[0] in _LEAD_WORDS:
            rest = rest[1:]
        elif len(rest) > 1 and (rest[0], rest[1]) in _LEAD_PAIRS:
            rest = rest[2:]
            if rest[:1] in (["like"], ["and"]):
                rest = rest[1:]
            if rest[:1] == ["to"]:
                rest = rest[1:]
        else:
            break
    return rest


def is_question(text: Text) -> bool:
    """Whether *text* opens like a yes/no question ("did …", "is …")."""
    tokens = strip_lead(text.words)
    return bool(tokens) and tokens[0] in QUESTION_AUX


def stem(word: str) -> str:
    """*word* reduced for matching: synonyms merged, a plural "s" dropped."""
    word = SYNONYMS.get(word, word)
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    return SYNONYMS.get(word, word)


_FIRST_PERSON = re.compile(r"\b(my|mine|me|myself)\b", re.IGNORECASE)


def first_person_as(name: str, text: str) -> str:
    """*text* with a patient's "my", "me" and "mine" said as *name* ("what's my date of
    birth?" → "what's Dana Whitfield's date of birth?"), for a patient speaking of
    themselves."""

    def said(match: re.Match[str]) -> str:
        word = match[1].casefold()
        return f"{name}'s" if word in ("my", "mine") else name

    return _FIRST_PERSON.sub(said, text)
