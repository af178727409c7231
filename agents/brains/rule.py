"""The rule brain: deterministic, offline, and fluent enough for the demo's requests.

It reads ordinary wording, not fixed sentences: the text is normalized (case,
punctuation, contractions, possessives), then each intent is recognised from keyword
and phrase signals, checked in an order that settles the usual collisions — "stop the
calls" is a cancellation, not an outreach; "how are the calls going?" is a status
question; "what's Evan's phone number?" is a lookup. Background tasks are found again
by matching the person's words against each task's title and subject.

As a sub-agent it works from its assignment (``Task.params``): call the tool, take new
instructions into account, finish with the tool's result — or, given several
patients, fan out to the team and fall back to doing the work itself when the depth
cap refuses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import anyio.lowlevel

from agents.brains import (
    Action,
    Assignment,
    CallTool,
    Cancel,
    CheckStatus,
    Delegate,
    Finish,
    Instruct,
    Note,
    Outcome,
    Reply,
    Step,
    TaskSummary,
    Turn,
    UseTool,
    Work,
)
from agents.demo.payer import PRIOR_AUTH
from agents.demo.records import (
    FIELDS,
    RECORDS_LOOKUP,
    CrossReference,
    Overlap,
    cross_reference,
    first_name,
    medication_key,
)
from agents.demo.telephony import PHONE_CALL
from agents.models import AgentDefinition, Patient, Task, TaskState
from agents.ports import PatientDirectory
from agents.tools import ToolResult

CLINIC_HOURS = (
    "We're open Monday to Friday, 8 am to 6 pm, and Saturday 9 am to 1 pm; closed Sundays."
)
FALLBACK = (
    "Sorry, I didn't catch that. I can call patients, start prior authorizations, and look "
    "up or cross-reference records — and check on, update or cancel anything I've started."
)

# -- reading text ------------------------------------------------------------------------

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
_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}
_NUMBERS |= {"eight": 8, "nine": 9, "ten": 10}


def _normalize(text: str) -> str:
    lowered = text.translate(_APOSTROPHES).lower()
    for short, long in _CONTRACTIONS:
        lowered = lowered.replace(short, long)
    words = re.sub(r"[^a-z0-9]+", " ", lowered).split()
    # "phone number" is a noun: keep it from reading as "phone (someone)".
    return re.sub(
        r"\b(?:tele)?(?:phone|contact) (?:number|no|num)\b", "phonenumber", " ".join(words)
    )


@dataclass(frozen=True, slots=True)
class _Text:
    """A user's words, normalized: lowercase, no punctuation, contractions expanded."""

    original: str
    words: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> _Text:
        return cls(text, tuple(_normalize(text).split()))

    @property
    def padded(self) -> str:
        return f" {' '.join(self.words)} "

    def has(self, *phrases: str) -> bool:
        """Whether any of *phrases* (normalized, whole words) occurs."""
        padded = self.padded
        return any(f" {phrase} " in padded for phrase in phrases)

    def starts(self, *phrases: str) -> bool:
        body = " ".join(_strip_lead(self.words))
        return any(body == p or body.startswith(p + " ") for p in phrases)

    def original_word(self, word: str) -> str:
        """*word* as the person wrote it (its case), for quoting back."""
        for token in re.findall(r"[\w'’-]+", self.original):
            if _normalize(token) == word:
                return str(token)
        return word


def _words(text: str) -> frozenset[str]:
    """A vocabulary from space-separated words."""
    return frozenset(text.split())


def _phrases(text: str) -> tuple[str, ...]:
    """Phrases (normalized, as :func:`_normalize` writes them) separated by commas."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


_LEAD_WORDS = _words("hey hi hello ok okay oh so and also please pls um uh well right alright")
_LEAD_WORDS |= _words("great thanks kindly now")
_LEAD_PAIRS = {("can", "you"), ("could", "you"), ("would", "you"), ("will", "you")}
_LEAD_PAIRS |= {("go", "ahead"), ("i", "want"), ("i", "would"), ("we", "need"), ("i", "need")}


def _strip_lead(words: Sequence[str]) -> list[str]:
    """*words* without leading politeness ("ok, can you please …")."""
    rest = list(words)
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


# Words that mean the same thing when matching a task: "the calls", "phoning Alice".
_SYNONYMS = dict.fromkeys(_words("phone phoning calling called outreach dial ring"), "call")
_SYNONYMS |= dict.fromkeys(_words("authorization authorisation pa preauth approval"), "auth")
_SYNONYMS |= dict.fromkeys(_words("chart lookup file"), "record")


def _stem(word: str) -> str:
    word = _SYNONYMS.get(word, word)
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    return _SYNONYMS.get(word, word)


# Words that never name a task: grammar, politeness, and the intents' own vocabulary.
_FILLER = _words(
    """
    a an the this that these those it its them they their there here is are was were be
    been being am do does did doing have has had having i me my mine we us our you your
    he she him her his hers of on in at to for from with about by as and or but so if
    then than not no yes please pls thanks thank can could would will should shall may
    might must just also still yet any some all every each everything anything something
    what which who whom whose when where why how now today ok okay hey hi hello oh well
    really very much more most one ones thing things stuff bit let know tell going go goes
    gone went get got give happening happen happened news update updates status progress
    latest eta word check checking look looking doing done finished finish complete
    completed ready back come came coming along heard hear request requests task tasks job
    jobs work working background started start running run cancel cancelled stop stopped
    abort halt kill scrap drop never mind nevermind forget withdraw terminate end quit off
    whole entire again instead anymore longer need needs want wants like up out far stand
    result results outcome ahead actually sure other
    """
)
_KIND_WORDS = _words("call auth prior record")
_GENERIC_REFS = _words("it that this them those these everything all both background request")
_GENERIC_REFS |= _words("requests task tasks work job jobs one ones call calls lookup lookups auth")
_ALL_WORDS = _words("all everything every everyone everybody both background")

_BRANDS = _words(
    "ozempic wegovy mounjaro zepbound trulicity rybelsus jardiance farxiga humira enbrel "
    "dupixent stelara eliquis xarelto entresto lantus victoza saxenda"
)
_GENERICS = _words(
    "semaglutide tirzepatide liraglutide adalimumab apixaban metformin lisinopril insulin "
    "atorvastatin warfarin spironolactone furosemide aspirin"
)


@dataclass(frozen=True, slots=True)
class _Directory:
    """The workspace's patients, indexed for finding them in a sentence."""

    patients: tuple[Patient, ...]

    def named_in(self, text: _Text) -> list[Patient]:
        """Patients named by first or last name, in the order they are mentioned."""
        found: list[Patient] = []
        for word in text.words:
            for patient in self.patients:
                names = [n.lower() for n in patient.name.split()]
                if word in names and patient not in found:
                    found.append(patient)
        return found

    def name_words(self) -> set[str]:
        return {n.lower() for p in self.patients for n in p.name.split()}

    def medications(self) -> set[str]:
        known = set(_BRANDS | _GENERICS)
        for patient in self.patients:
            for entry in patient.medications:
                known.add(medication_key(entry))
                known.update(w.lower() for w in re.findall(r"\((\w+)\)", entry))
        return known


def _join(items: Sequence[str]) -> str:
    """ "Alice, Bob and Carol"."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _short_names(patients: Sequence[Patient]) -> list[str]:
    """First names, or full names where two of them share a first name."""
    firsts = [first_name(p.name) for p in patients]
    return [p.name if firsts.count(f) > 1 else f for p, f in zip(patients, firsts, strict=True)]


def _sentence(text: str) -> str:
    """*text* with a capital first letter and closing punctuation."""
    text = text.strip().rstrip(",;:—- ")
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?…" else text + "."


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[1].isupper():
        return text  # an acronym or a name: leave it
    return text[:1].lower() + text[1:]


# -- finding tasks again ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Match:
    """Which tasks the person's words point at, and what they named that matched none."""

    tasks: tuple[TaskSummary, ...]
    unmatched: tuple[str, ...]
    named_all: bool
    generic: bool


def _keywords(task: TaskSummary) -> set[str]:
    return {_stem(w) for w in _normalize(f"{task.title} {task.subject}").split()}


def _match_tasks(words: Iterable[str], tasks: Sequence[TaskSummary]) -> _Match:
    words = list(words)
    content = [_stem(w) for w in words if w not in _FILLER]
    content = [w for w in content if w not in _FILLER]
    keywords = [(task, _keywords(task)) for task in tasks]
    scores = [(task, len(set(content) & kw)) for task, kw in keywords]
    best = max((s for _, s in scores), default=0)
    matched = tuple(t for t, s in scores if best and s == best)
    every = set().union(*(kw for _, kw in keywords)) if keywords else set()
    unmatched = tuple(dict.fromkeys(w for w in content if w not in every))
    return _Match(
        tasks=matched,
        unmatched=unmatched,
        named_all=any(w in _ALL_WORDS for w in words),
        generic=any(w in _GENERIC_REFS for w in words),
    )


def _active(tasks: Iterable[TaskSummary]) -> list[TaskSummary]:
    return [t for t in tasks if not t.terminal]


# -- describing tasks -------------------------------------------------------------------


def _kind(title: str, data: Mapping[str, Any] | None = None) -> str:
    kind = (data or {}).get("kind")
    if isinstance(kind, str):
        return kind
    lowered = title.lower()
    if lowered.startswith("call"):
        return "call"
    if "prior auth" in lowered:
        return "prior_auth"
    if lowered.startswith(("records", "look up")):
        return "records"
    return "other"


def _about(task: Task) -> str:
    """What a task is about, for a label: its subject, else the end of its title."""
    if task.subject:
        return task.subject
    return task.title.split(":", 1)[-1].strip() or task.title


def _label(task: Task) -> str:
    """A noun phrase for one task: "the prior auth for Ozempic"."""
    kind = _kind(task.title)
    if kind == "call":
        return f"the call to {_about(task)}"
    if kind == "prior_auth":
        return f"the prior auth for {_about(task)}"
    if kind == "records":
        return f"the records lookup for {_about(task)}"
    return f"“{task.title}”"


def _labels(tasks: Sequence[Task]) -> str:
    """Noun phrases for several tasks, grouped by kind: "the calls to Alice and Bob"."""
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        groups.setdefault(_kind(task.title), []).append(task)
    plural = {"call": "the calls to", "prior_auth": "the prior auths for"}
    plural["records"] = "the records lookups for"
    phrases: list[str] = []
    for kind, members in groups.items():
        if len(members) == 1 or kind not in plural:
            phrases.extend(_label(t) for t in members)
        else:
            phrases.append(f"{plural[kind]} {_join([_about(t) for t in members])}")
    return _join(phrases)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _reason(result: str | None) -> str:
    """Why a task failed, without the runtime's "X could not finish:" preamble."""
    text = (result or "no reason was given").strip()
    if "could not finish:" in text:
        text = text.split("could not finish:", 1)[1].strip()
    return _lower_first(_sentence(text))


def _after_cancel(result: str | None) -> str:
    """What clean-up did, from a cancelled task's result ("Cancelled: Hung up …")."""
    text = (result or "").strip()
    if text.lower().startswith("cancelled"):
        text = text[len("cancelled") :].lstrip(":. ")
    return _sentence(text) if text else ""


def _status_line(task: Task) -> str:
    label = _capital(_label(task))
    state = task.state
    if state is TaskState.SUBMITTED:
        return f"{label} is about to start."
    if state in (TaskState.WORKING, TaskState.INPUT_REQUIRED):
        if task.progress:
            return f"{label} is still working — {_sentence(task.progress)}"
        return f"{label} is still working."
    if state is TaskState.CANCELLING:
        return f"{label} is being cancelled."
    if state is TaskState.COMPLETED:
        return f"{label} is done: {_sentence(task.result or 'finished')}"
    if state is TaskState.FAILED:
        return f"{label} failed: {_reason(task.result)}"
    if state is TaskState.CANCELLED:
        return f"{label} was cancelled." + (f" {_after_cancel(task.result)}".rstrip())
    return f"{label} was interrupted when the server restarted."


def _format_date(iso: str) -> str:
    try:
        day = date.fromisoformat(iso)
    except ValueError:
        return iso
    return f"{day:%B} {day.day}, {day.year}"


def _overlap_list(overlaps: Sequence[Overlap]) -> str:
    return "; ".join(f"{o.item} — {_join(o.patients)}" for o in overlaps)


def _cross_reference_findings(xref: CrossReference) -> list[str]:
    """What a cross-reference found, one sentence per kind of finding."""
    parts: list[str] = []
    if xref.medications:
        parts.append(f"Shared medications: {_overlap_list(xref.medications)}.")
    else:
        parts.append("No medications in common.")
    if xref.allergies:
        parts.append(f"Shared allergies: {_overlap_list(xref.allergies)}.")
    else:
        parts.append("No allergies in common.")
    if xref.conditions:
        parts.append(f"Shared conditions: {_overlap_list(xref.conditions)}.")
    if xref.providers:
        same = "; ".join(f"{o.item} sees {_join(o.patients)}" for o in xref.providers)
        parts.append(f"Same provider: {same}.")
    if xref.interactions:
        found = "; ".join(
            f"{i.patient} takes {i.first} with {i.second} ({i.risk})" for i in xref.interactions
        )
        parts.append(f"Interactions to watch: {found}.")
    else:
        parts.append("No interactions I know of.")
    return parts


_FIELD_NAMES = {
    "date_of_birth": "Date of birth",
    "mrn": "MRN",
    "phone": "Phone",
    "medications": "Medications",
    "allergies": "Allergies",
    "conditions": "Conditions",
    "provider": "Provider",
    "insurer": "Insurer",
}


def _field_value(record: Mapping[str, Any], field: str) -> str:
    value = record.get(field)
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "none on file"
    if field == "date_of_birth" and isinstance(value, str):
        return _format_date(value)
    return str(value) if value else "not on file"


def _field_answer(record: Mapping[str, Any], field: str, name: str) -> str:
    """One sentence answering *field* about *name*'s *record*."""
    value = record.get(field)
    items = [str(v) for v in value] if isinstance(value, list | tuple) else []
    if field == "date_of_birth":
        return f"{name}'s date of birth is {_field_value(record, field)}."
    if field == "mrn":
        return f"{name}'s MRN is {_field_value(record, field)}."
    if field == "phone":
        return f"{name}'s phone number is {_field_value(record, field)}."
    if field == "medications":
        return f"{name} takes {_join(items)}." if items else f"{name} has no medications on file."
    if field == "allergies":
        return (
            f"{name} is allergic to {_join(items)}." if items else f"{name} has no known allergies."
        )
    if field == "conditions":
        return (
            f"{name} has {_join(items)} on file." if items else f"{name} has no conditions on file."
        )
    if field == "provider":
        return f"{name}'s provider is {_field_value(record, field)}."
    return f"{name} is insured with {_field_value(record, field)}."


# -- the demo's requests -------------------------------------------------------------------

_OUTREACH_VERBS = _words("call phone ring dial contact reach telephone calling phoning")
_OUTREACH_VERBS |= _words("contacting reaching ringing dialing")
_OUTREACH_PHRASES = _phrases("get in touch, follow up with, check in with, reach out, do outreach")
_DETERMINERS = _words("the a an that this those these my your his her their our its no any")
_DETERMINERS |= _words("each every last next one")
_ONBOARDING = _phrases(
    "onboarding, onboarded, onboard, intake, registration, registered, signup, sign up, "
    "paperwork, enrollment, enrolled, enroll"
)
_NEGATIONS = _phrases(
    "not, never, yet, incomplete, unfinished, pending, outstanding, still, missing, without, "
    "stuck, unregistered, partway"
)
_COMPLETIONS = _phrases("completed, complete, finished, done, already, fully")
_EVERYONE = _phrases(
    "everyone, everybody, all patients, every patient, all the patients, all of the patients, "
    "all our patients, each patient"
)
_PRIOR_AUTH = _phrases(
    "prior auth, prior auths, prior authorization, prior authorisation, prior approval, "
    "preauth, pre auth, pre authorization, preauthorization, pa, pas, authorization, "
    "authorisation, authorize, authorise, authorized, authorised, insurance approval, "
    "coverage approval"
)
# Words that ask for a prior auth only when a medicine is named: "get Ozempic approved".
_APPROVAL = _phrases("approval, approved, approve, covered, coverage")
_RECORD_WORDS = _phrases(
    "record, records, chart, charts, file, files, history, look up, lookup, pull up, pull, "
    "fetch, find, check, review, read, summarize, summary, info, information, details, profile"
)
_FIELD_WORDS: Mapping[str, tuple[str, ...]] = {
    "date_of_birth": _phrases("date of birth, dob, birthday, birth date, birthdate, born"),
    "mrn": _phrases("mrn, medical record number, record number"),
    "phone": _phrases("phonenumber, number"),
    "medications": _phrases(
        "medication, medications, meds, med, prescription, prescriptions, drugs, taking, rx, "
        "medicines, medicine"
    ),
    "allergies": _phrases("allergy, allergies, allergic"),
    "conditions": _phrases(
        "condition, conditions, diagnosis, diagnoses, diagnosed, problems, problem list"
    ),
    "provider": _phrases("provider, doctor, physician, pcp, clinician, gp"),
    "insurer": _phrases("insurer, insurance, payer, coverage, insured, health plan"),
}
_CROSS_WORDS = _phrases(
    "cross reference, crossreference, cross check, crosscheck, compare, comparison, overlap, "
    "overlaps, in common, common, across, side by side, shared, share, interactions, "
    "interaction, contrast"
)
# A strong word makes a status question by itself; a weak one only when it points at a
# task ("is the prior auth done?") — "done" alone could mean anything.
_STATUS_STRONG = _phrases(
    "status, news, progress, eta, happening, heard back, hear back, any word, check on, "
    "check in on, still waiting, still working, still running, where are we, where do we stand, "
    "where things stand, how far along, coming along, what happened, how did, "
    "how is it, how are they, how it going, how are things"
)
_STATUS_WEAK = _phrases(
    "update, updates, latest, result, results, outcome, done, finished, back, approved, denied, "
    "through, over, going, complete, ready, come back, came back, yet, how"
)
_QUESTION_AUX = _words("did does has have is are was were had")
_DELEGATION_LEADS = _words(
    "call phone ring dial reach contact start begin file submit look pull fetch compare cross "
    "run get kick initiate request find check review send do open"
)
_CANCEL_PHRASES = _phrases(
    "cancel, cancelled, stop, abort, halt, kill, scrap, call off, never mind, nevermind, "
    "forget about, forget the, forget it, do not bother, withdraw, terminate, drop the, drop it, "
    "drop that, quit, no need for the, pull the plug, stand down, shut down"
)
_KEEP_GOING = _phrases(
    "do not stop, do not cancel, not stop, not cancel, never stop, keep going, keep it going, "
    "let it run, let them run, let it finish, let them finish"
)
_CANCEL_WORDS = _words("cancel stop abort halt kill scrap quit withdraw")
_URGENT_WORDS = _phrases("urgent, asap, expedite, rush, stat, priority, emergency")

_LEAD = (
    r"^(?:(?:hey|hi|ok|okay|oh|so|and|also|please|pls|kindly|can you|could you|would you|"
    r"will you|go ahead and)\b[\s,]*)*"
)
_TASK_NOUN = r"(?:request|one|task|call|calls|auth|authorization|lookup|job|work|order|pa|thing)"
_PRIORITY = r"(?:urgent|a priority|high priority|priority|stat|asap|a rush|rush|expedited)"
_INSTRUCT_PATTERNS = (
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
    # "Ozempic request: please mark it urgent" (never a question: see _parse_instruction)
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
class _Instruction:
    ref: str | None
    payload: str


def _parse_instruction(original: str) -> _Instruction | None:
    if original.strip().endswith("?"):
        return None  # "the Ozempic one: any news?" asks; it does not instruct
    text = " ".join(original.split()).strip().rstrip("!. ")
    for pattern in _INSTRUCT_PATTERNS:
        found = pattern.match(text)
        if found is None:
            continue
        groups = found.groupdict()
        if groups.get("priority"):
            payload = f"{groups['verb']} it {groups['priority']}{groups.get('tail') or ''}"
            return _Instruction(groups["ref"], _sentence(payload))
        return _Instruction(groups.get("ref"), _sentence(groups["payload"]))
    return None


def _is_question(text: _Text) -> bool:
    words = _strip_lead(text.words)
    return bool(words) and words[0] in _QUESTION_AUX


def _outreach_verb(text: _Text) -> bool:
    if text.has(*_OUTREACH_PHRASES) or re.search(r" give \w+(?: \w+)? a (call|ring) ", text.padded):
        return True
    words = text.words
    for i, word in enumerate(words):
        if word not in _OUTREACH_VERBS:
            continue
        before = words[i - 1] if i else ""
        after = words[i + 1] if i + 1 < len(words) else ""
        if before in _DETERMINERS or after in {"info", "information", "details", "list"}:
            continue  # a noun: "the calls", "contact details"
        return True
    return False


def _onboarding_group(text: _Text, patients: Sequence[Patient]) -> list[Patient] | None:
    """The patients an onboarding phrase means, or ``None`` if none is used."""
    if not text.has(*_ONBOARDING):
        return None
    if not text.has(*_NEGATIONS) and text.has(*_COMPLETIONS):
        return [p for p in patients if p.onboarding_complete]
    return [p for p in patients if not p.onboarding_complete]


def _medication(text: _Text, directory: _Directory) -> str | None:
    known = directory.medications()
    for word in text.words:
        if word in known:
            return _capital(word) if word in _BRANDS else word
    # An unknown medicine: the word after "for" or "on" that is not a patient or filler.
    names = directory.name_words()
    words = text.words
    for i, word in enumerate(words[:-1]):
        if word in {"for", "on"}:
            candidate = words[i + 1]
            if candidate not in _FILLER and candidate not in names and len(candidate) > 2:
                return text.original_word(candidate)
    return None


def _fields(text: _Text) -> list[str]:
    return [field for field in FIELDS if text.has(*_FIELD_WORDS[field])]


def _count(text: _Text) -> int | None:
    for word in text.words:
        if word in _NUMBERS:
            return _NUMBERS[word]
        if word.isdigit() and 1 < int(word) <= 20:
            return int(word)
    return None


def _helper(team: Sequence[AgentDefinition], tool: str, me: str) -> AgentDefinition | None:
    """The first of the team (not *me*) whose tools include *tool*."""
    for agent in team:
        if tool in agent.tools and agent.id != me:
            return agent
    return None


# -- the brain --------------------------------------------------------------------------------


class RuleBrain:
    """A deterministic :class:`~agents.brains.Brain` for the demo; no network.

    It reads the workspace's patients from *directory* to recognise names and the
    onboarding group. It never invents a task: status, instructions and cancellation
    only ever name tasks found in :attr:`Turn.tasks`.
    """

    def __init__(self, directory: PatientDirectory) -> None:
        self._directory = directory

    # -- primary agent ------------------------------------------------------------------

    async def respond(self, turn: Turn) -> Action:
        """Decide what to do about one user turn."""
        text = _Text.parse(turn.text)
        if not text.words:
            return Reply("I'm here — what can I do for you?")
        patients = await self._directory.list_patients(turn.agent.workspace_id)
        directory = _Directory(tuple(sorted(patients, key=lambda p: p.name)))
        for decide in (
            self._instruct,
            self._cancel,
            self._status,
        ):
            action = decide(text, turn, directory)
            if action is not None:
                return action
        for delegate in (self._explain, self._prior_auth, self._outreach, self._records):
            action = delegate(text, turn, directory)
            if action is not None:
                return action
        return self._small_talk(text, turn)

    def _instruct(self, text: _Text, turn: Turn, directory: _Directory) -> Action | None:
        parsed = _parse_instruction(turn.text)
        if parsed is None:
            return None
        payload = _Text.parse(parsed.payload)
        if set(payload.words) <= _CANCEL_WORDS | _FILLER:
            # "tell the calls to stop" is a cancellation; "…, please" says nothing new.
            return None
        if parsed.ref is not None and _Text.parse(parsed.ref).has(*_CANCEL_PHRASES):
            return None  # "call off the calls, please"
        active = _active(turn.tasks)
        if parsed.ref is None:
            # No task named: only unambiguous with exactly one running.
            match = _match_tasks(text.words, turn.tasks)
            if match.tasks:
                targets = _active(match.tasks) or list(match.tasks)
            elif len(active) == 1:
                targets = active
            elif active:
                return Reply(self._which(active, "pass that on to"))
            else:
                return None
        else:
            match = _match_tasks(_Text.parse(parsed.ref).words, turn.tasks)
            if match.tasks:
                targets = list(match.tasks)
            elif match.unmatched:
                return self._no_such_task(text, match.unmatched, "pass that on to")
            elif len(active) == 1:
                targets = active
            elif not active:
                return Reply("There's no background work running to pass that on to.")
            else:
                return Reply(self._which(active, "pass that on to"))
        running = _active(targets)
        if not running:
            return Reply(
                "That background task has already finished, so there's nothing to pass that on "
                "to — want me to start a new one?"
            )
        return Instruct(running[0].id, parsed.payload)

    def _cancel(self, text: _Text, turn: Turn, directory: _Directory) -> Action | None:
        if not text.has(*_CANCEL_PHRASES):
            return None
        if text.has(*_KEEP_GOING):
            return Reply("Okay — I'll let it keep going.")
        match = _match_tasks(text.words, turn.tasks)
        if not match.tasks and not match.generic:
            return None  # "stop taking metformin" names no background work
        if match.tasks:
            running = _active(match.tasks)
            return Cancel(tuple(t.id for t in (running or match.tasks)))
        if match.unmatched:
            return self._no_such_task(text, match.unmatched, "cancel")
        active = _active(turn.tasks)
        if not active:
            return Reply("There's no background work running, so there's nothing to cancel.")
        if len(active) == 1 or match.named_all:
            return Cancel(tuple(t.id for t in active))
        return Reply(self._which(active, "stop"))

    def _status(self, text: _Text, turn: Turn, directory: _Directory) -> Action | None:
        strong = text.has(*_STATUS_STRONG)
        weak = text.has(*_STATUS_WEAK)
        if not (strong or weak) or text.has("how are you", "how are you doing"):
            return None
        lead = _strip_lead(text.words)[:1]
        if not strong and lead and lead[0] in _DELEGATION_LEADS:
            return None  # "call Alice and let me know how it goes"
        match = _match_tasks(text.words, turn.tasks)
        entities = directory.name_words() | directory.medications() | _KIND_WORDS
        named = [w for w in match.unmatched if w in entities]
        # A weak word alone ("results", "done") is a status question only when it points
        # at a task, or asks for updates without naming anything else.
        if not strong and not match.tasks and (named or not text.has("update", "updates")):
            return None
        if match.tasks:
            return CheckStatus(tuple(t.id for t in match.tasks))
        if named:
            if _fields(text) or text.has(*_RECORD_WORDS):
                return None  # "check on Dana's allergies" is a lookup
            return self._no_such_task(text, tuple(named), "check on")
        if not turn.tasks:
            return Reply("There's no background work going on right now.")
        active = _active(turn.tasks)
        return CheckStatus(tuple(t.id for t in (active or list(turn.tasks)[:5])))

    def _no_such_task(self, text: _Text, words: Sequence[str], verb: str) -> Reply:
        named = _join([f"“{text.original_word(w)}”" for w in words[:3]])
        return Reply(
            f"I don't have any background task about {named} in this conversation, so there's "
            f"nothing to {verb}."
        )

    def _which(self, tasks: Sequence[TaskSummary], verb: str) -> str:
        titles = _join([f"“{t.title}”" for t in tasks[:6]])
        return f"Which one should I {verb}? I'm working on {titles}."

    def _explain(self, text: _Text, turn: Turn, directory: _Directory) -> Action | None:
        leads = _phrases(
            "what is, what are, what does, how does, how do, how would, how can, how long, why, "
            "explain, "
            "tell me about, is a, do i need, does"
        )
        if not text.has(*_PRIOR_AUTH):
            return None
        if not (text.starts(*leads) or _is_question(text)) or text.has("can you", "could you"):
            return None
        return Reply(
            "A prior authorization is the insurer's OK before it covers a medication: we send "
            "the prescription and the clinical reasons, and the payer (often via its pharmacy "
            "desk) decides, usually within a few days. I can start one in the background — "
            "just tell me the medication and the patient."
        )

    def _prior_auth(self, text: _Text, turn: Turn, directory: _Directory) -> Action | None:
        if _is_question(text):
            return None
        named_medicine = any(w in directory.medications() for w in text.words)
        if not (text.has(*_PRIOR_AUTH) or (named_medicine and text.has(*_APPROVAL))):
            return None
        medication = _medication(text, directory)
        if medication is None:
            return Reply("Which medication is the prior authorization for?")
        agent = _helper(turn.team, PRIOR_AUTH, turn.agent.id)
        if agent is None:
            return Reply("None of our agents can file prior authorizations, I'm afraid.")
        named = directory.named_in(text)
        patient = named[0] if named else None
        args: dict[str, Any] = {"medication": medication}
        whose = ""
        if patient is not None:
            args["patient_id"] = patient.id
            whose = f" for {first_name(patient.name)}"
        if text.has(*_URGENT_WORDS):
            args["urgent"] = True
        return Delegate(
            text=f"Let me start that in the background — I'll file the prior authorization for "
            f"{medication}{whose} and let you know as soon as the payer decides.",
            assignments=(
                Assignment(
                    agent_id=agent.id,
                    title=f"Prior auth: {medication}",
                    subject=medication,
                    instructions=f"Get a prior authorization for {medication}"
                    + (f" for {patient.name}." if patient is not None else "."),
                    tool=PRIOR_AUTH,
                    args=args,
                ),
            ),
            rollup=False,
        )

    def _outreach(self, text: _Text, turn: Turn, directory: _Directory) -> Action | None:
        if not _outreach_verb(text) or _is_question(text):
            return None
        group = _onboarding_group(text, directory.patients)
        named = directory.named_in(text)
        purpose = "follow-up"
        if group is not None:
            targets, purpose = group, "onboarding"
            if not targets:
                return Reply("Everyone has finished onboarding — there's nobody to call.")
        elif named:
            targets = named
        elif text.has(*_EVERYONE):
            return Reply(
                f"Do you want us to call all {len(directory.patients)} patients, or just "
                "the ones who haven't finished onboarding?"
            )
        else:
            return None
        agent = _helper(turn.team, PHONE_CALL, turn.agent.id)
        if agent is None:
            return Reply("None of our agents can make phone calls, I'm afraid.")
        names = _short_names(targets)
        about = "about finishing onboarding" if purpose == "onboarding" else "to follow up"
        assignments = tuple(
            Assignment(
                agent_id=agent.id,
                title=f"Call {p.name}",
                subject=short,
                instructions=f"Call {p.name} {about}, and report how it went.",
                tool=PHONE_CALL,
                args={"patient_id": p.id, "purpose": purpose},
            )
            for p, short in zip(targets, names, strict=True)
        )
        return Delegate(
            text=f"I'll have our outreach team call {_join(names)} in the background — I'll let "
            "you know how it goes.",
            assignments=assignments,
            rollup=len(assignments) > 1,
        )

    def _records(self, text: _Text, turn: Turn, directory: _Directory) -> Action | None:
        fields = _fields(text)
        crossing = text.has(*_CROSS_WORDS)
        if not (text.has(*_RECORD_WORDS) or fields or crossing):
            return None
        named = directory.named_in(text)
        count = _count(text)
        group = _onboarding_group(text, directory.patients)
        if named:
            targets = named
        elif group is not None:
            targets = group
        elif count is not None:
            # "five patients' charts": the first who have full charts.
            charted = [p for p in directory.patients if p.onboarding_complete]
            targets = (charted + [p for p in directory.patients if p not in charted])[:count]
        elif text.has(*_EVERYONE):
            targets = list(directory.patients)
        else:
            if text.has("look up", "lookup", "pull up", "record", "records", "chart", "charts"):
                return Reply("Whose records should I look up?")
            return None
        if not targets:
            return Reply("There's nobody in the directory that fits — no records to look up.")
        helper = _helper(turn.team, RECORDS_LOOKUP, turn.agent.id)
        if len(targets) == 1 and not crossing:
            patient = targets[0]
            if RECORDS_LOOKUP in turn.agent.tools:
                return UseTool(
                    RECORDS_LOOKUP,
                    {"patient_id": patient.id, "fields": fields},
                    title=f"Records: {patient.name}",
                    subject=first_name(patient.name),
                )
        if helper is None:
            return Reply("None of our agents can look up records, I'm afraid.")
        names = _short_names(targets)
        assignments = tuple(
            Assignment(
                agent_id=helper.id,
                title=f"Records: {p.name}",
                subject=short,
                instructions=f"Look up {p.name}'s chart.",
                tool=RECORDS_LOOKUP,
                args={"patient_id": p.id, "fields": fields},
            )
            for p, short in zip(targets, names, strict=True)
        )
        if len(assignments) == 1:
            return Delegate(
                f"Let me pull {names[0]}'s chart in the background — I'll get back to you.",
                assignments,
                rollup=False,
            )
        return Delegate(
            text=f"Let me pull those charts in the background — {len(assignments)} lookups in "
            f"parallel for {_join(names)}. I'll get back to you with a cross-referenced summary.",
            assignments=assignments,
            rollup=True,
        )

    def _small_talk(self, text: _Text, turn: Turn) -> Reply:
        words = set(text.words)
        if text.has("what can you do", "what do you do", "how can you help", "who are you") or (
            text.has("help") and len(words) <= 4
        ):
            team = [a for a in turn.team if a.id != turn.agent.id]
            helpers = "; ".join(f"{a.name} — {_lower_first(a.description)}" for a in team)
            return Reply(
                "I answer questions and look up charts myself, and hand slow work to the team "
                "in the background while we keep talking: calling patients (say, everyone who "
                "hasn't finished onboarding), prior authorizations, and cross-referencing several "
                "records. Ask me how it's going any time, add instructions, or cancel."
                + (f" The team: {helpers.rstrip('.')}." if helpers else "")
            )
        if text.has("hours", "open", "opening", "close", "closing", "closed", "what time"):
            return Reply(CLINIC_HOURS)
        if text.has("thank", "thanks", "thx", "appreciate", "cheers", "ty"):
            return Reply("You're welcome! Anything else I can do?")
        if text.has("bye", "goodbye", "that is all", "that all", "see you"):
            return Reply("Take care! Anything still running will be waiting for you here.")
        if text.has("never mind", "nevermind", "nothing", "forget it"):
            return Reply("No problem.")
        greetings = {"hi", "hello", "hey", "morning", "afternoon", "evening", "howdy", "yo"}
        if words & greetings or text.has("how are you"):
            return Reply("Hi! How can I help you today?")
        return Reply(FALLBACK)

    # -- sub-agents -----------------------------------------------------------------------

    async def step(self, work: Work) -> Step:
        """A sub-agent's next step: acknowledge instructions, call the tool, finish."""
        await anyio.lowlevel.checkpoint()
        if work.new_instructions:
            return Note(self._acknowledge(work))
        for record in work.history:
            if isinstance(record.step, CallTool) and record.error:
                return Finish(f"I couldn't finish: {_lower_first(record.error)}", failed=True)
        params = work.task.params
        tool = params.get("tool")
        raw_args = params.get("args")
        args: dict[str, Any] = dict(raw_args) if isinstance(raw_args, Mapping) else {}
        if not isinstance(tool, str) or not tool:
            if len(work.agent.tools) != 1 or not args:
                return Finish(
                    "I wasn't told what to do this with, so I couldn't start.", failed=True
                )
            tool = work.agent.tools[0]
        targets = args.get("patient_ids")
        if isinstance(targets, list | tuple) and len(targets) > 1:
            return await self._fan_out(work, tool, args, [str(t) for t in targets])
        done = [r.result for r in work.history if isinstance(r.step, CallTool) and r.result]
        if not done:
            return CallTool(tool, _with_instructions(tool, args, work.instructions))
        return _finish(done[-1], work.instructions)

    def _acknowledge(self, work: Work) -> str:
        said = "; ".join(_noted(i) for i in work.new_instructions)
        started = any(isinstance(r.step, CallTool) and r.result for r in work.history)
        tool = work.task.params.get("tool")
        if started:
            then = "I'll include that in my report."
        elif tool == PRIOR_AUTH:
            then = "I'll include that in the request."
        elif tool == PHONE_CALL:
            then = "I'll bring that up on the call."
        else:
            then = "I'll take that into account."
        return f"Noted: {said}. {then}"

    async def _fan_out(
        self, work: Work, tool: str, args: Mapping[str, Any], targets: list[str]
    ) -> Step:
        """Several patients: one child task each; done alone if delegation is refused."""
        rest = {k: v for k, v in args.items() if k != "patient_ids"}
        delegations = [i for i, r in enumerate(work.history) if isinstance(r.step, Delegate)]
        if delegations and work.history[delegations[-1]].outcomes:
            items = [_Item.of(o) for o in work.history[delegations[-1]].outcomes]
            return _finish_batch(items, work.instructions)
        if not delegations:
            helper = next(
                (a for a in work.team if tool in a.tools and not a.primary),
                work.agent if tool in work.agent.tools else None,
            )
            if helper is not None:
                return await self._delegate_targets(work, helper, tool, rest, targets)
        elif work.refusal is None and not work.history[delegations[-1]].error:
            return Finish("My helpers came back with nothing, so I couldn't finish.", failed=True)
        # Refused (the depth cap), or nobody to delegate to: do the work one by one.
        if tool not in work.agent.tools:
            return Finish(
                "I can't delegate further (depth limit), and I can't do this work myself.",
                failed=True,
            )
        since = delegations[-1] + 1 if delegations else 0
        results = [
            r.result
            for r in work.history[since:]
            if isinstance(r.step, CallTool) and r.result is not None
        ]
        if len(results) < len(targets):
            next_args = {**rest, "patient_id": targets[len(results)]}
            return CallTool(tool, _with_instructions(tool, next_args, work.instructions))
        return _finish_batch([_Item.of_result(tool, r) for r in results], work.instructions)

    async def _delegate_targets(
        self,
        work: Work,
        helper: AgentDefinition,
        tool: str,
        rest: Mapping[str, Any],
        targets: Sequence[str],
    ) -> Delegate:
        patients = [await self._directory.get_patient(work.task.workspace_id, t) for t in targets]
        names = [p.name if p is not None else t for p, t in zip(patients, targets, strict=True)]
        verb = "Call" if tool == PHONE_CALL else "Records:"
        return Delegate(
            text=f"Splitting this into {len(targets)} tasks in parallel.",
            assignments=tuple(
                Assignment(
                    agent_id=helper.id,
                    title=f"{verb} {name}",
                    subject=first_name(name),
                    instructions=f"Use {tool} for {name}.",
                    tool=tool,
                    args={**rest, "patient_id": target},
                )
                for name, target in zip(names, targets, strict=True)
            ),
            rollup=True,
        )

    # -- what the person hears ---------------------------------------------------------------

    def status_text(self, tasks: Sequence[Task]) -> str:
        """The live state of *tasks*, one sentence each."""
        if not tasks:
            return "There's no background work going on right now."
        return " ".join(_status_line(task) for task in tasks)

    def cancel_text(self, tasks: Sequence[Task]) -> str:
        """What cancelling *tasks* did, from their state now."""
        if not tasks:
            return "There was nothing running to cancel."
        stopped = [t for t in tasks if t.state is TaskState.CANCELLED]
        stopping = [t for t in tasks if t.state is TaskState.CANCELLING]
        finished = [t for t in tasks if t.state.is_terminal and t.state is not TaskState.CANCELLED]
        running = [t for t in tasks if not t.state.is_terminal and t not in stopping]
        parts: list[str] = []
        if stopped:
            parts.append(f"Okay — I've stopped {_labels(stopped)}.")
            parts.extend(note for note in (_after_cancel(t.result) for t in stopped) if note)
        if stopping:
            also = " also" if stopped else ""
            parts.append(f"Okay — I'm{also} stopping {_labels(stopping)}.")
        for task in finished:
            if task.state is TaskState.COMPLETED:
                parts.append(
                    f"{_capital(_label(task))} had already finished: "
                    f"{_sentence(task.result or 'done')}"
                )
            else:
                parts.append(f"{_capital(_label(task))} had already ended.")
        if running:
            parts.append(f"I've asked {_labels(running)} to stop.")
        return " ".join(parts)

    def instruct_text(self, task: Task) -> str:
        """The reply once new instructions were queued for *task*."""
        if task.state.is_terminal:
            return f"{_capital(_label(task))} has already finished, so I couldn't pass that on."
        return f"Got it — I've passed that on to {_label(task)}."

    def tool_text(self, tool: str, result: ToolResult) -> str:
        """A reply from a quick tool's result: answers what was asked of a lookup."""
        if tool == RECORDS_LOOKUP:
            return _lookup_answer(result.data, result.text)
        return result.text

    def progress_text(self, task: Task, progress: str) -> str:
        """The person hears a lone task's progress; a batch speaks once, in its roll-up."""
        if task.batch_id is not None:
            return ""
        return progress.strip()

    def followup_text(self, outcomes: Sequence[Outcome], *, rollup: bool) -> str:
        """The unsolicited news when a task, or a whole batch, is done."""
        items = [_Item.of(o) for o in outcomes]
        if not items:
            return "The background work is done."
        if len(items) == 1 or not rollup:
            return " ".join(_single_followup(item) for item in items)
        return _rollup_text(items)


# -- sub-agent helpers ------------------------------------------------------------------------


def _noted(instruction: str) -> str:
    """An instruction as quoted inside a sentence: "mark it urgent"."""
    return _lower_first(_sentence(instruction)).rstrip(".")


def _urgent(text: str) -> bool:
    return _Text.parse(text).has(*_URGENT_WORDS)


def _with_instructions(
    tool: str, args: Mapping[str, Any], instructions: Sequence[str]
) -> dict[str, Any]:
    """The tool's args, with what the person added since (talking points, urgency)."""
    merged = dict(args)
    if not instructions or tool not in (PRIOR_AUTH, PHONE_CALL):
        return merged
    notes = [str(n) for n in merged.get("notes") or ()]
    for instruction in instructions:
        if tool == PRIOR_AUTH and _urgent(instruction):
            merged["urgent"] = True
        notes.append(_sentence(instruction))
    merged["notes"] = notes
    return merged


def _finish(result: ToolResult, instructions: Sequence[str]) -> Finish:
    text = result.text
    extra = [_noted(i) for i in instructions if _sentence(i) not in text]
    if extra:
        text += f" Also noted: {'; '.join(extra)}."
    data = dict(result.data)
    if instructions:
        data["instructions"] = list(instructions)
    return Finish(text, data)


def _finish_batch(items: Sequence[_Item], instructions: Sequence[str]) -> Finish:
    text = _rollup_text(items) if len(items) > 1 else _single_followup(items[0])
    if instructions:
        text += f" Also noted: {'; '.join(_noted(i) for i in instructions)}."
    kind = items[0].kind if items else "other"
    data = {"kind": f"{kind}_batch", "items": [dict(i.data) for i in items]}
    return Finish(text, data, failed=all(i.state is TaskState.FAILED for i in items))


# -- follow-ups ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Item:
    """One finished piece of work, however it was done (a child task or a tool call)."""

    kind: str
    label: str
    subject: str
    state: TaskState
    result: str
    data: Mapping[str, Any]

    @classmethod
    def of(cls, outcome: Outcome) -> _Item:
        task = outcome.task
        return cls(
            kind=_kind(task.title, outcome.data),
            label=_label(task),
            subject=_about(task),
            state=task.state,
            result=task.result or "",
            data=outcome.data,
        )

    @classmethod
    def of_result(cls, tool: str, result: ToolResult) -> _Item:
        kind = str(result.data.get("kind") or ("call" if tool == PHONE_CALL else "records"))
        subject = str(result.data.get("first_name") or result.data.get("name") or "")
        label = f"the call to {subject}" if kind == "call" else f"the records lookup for {subject}"
        return cls(kind, label, subject, TaskState.COMPLETED, result.text, result.data)


def _without_the(label: str) -> str:
    return label[4:] if label.startswith("the ") else label


def _call_sentence(number: int, item: _Item) -> str:
    agent = f"Agent {number}"
    if item.state is TaskState.COMPLETED:
        summary = item.data.get("summary")
        if isinstance(summary, str) and summary:
            return f"{agent} {summary}."
        return f"{agent} finished {item.label}: {_sentence(item.result or 'done')}"
    if item.state is TaskState.FAILED:
        return f"{agent} couldn't finish {item.label}: {_reason(item.result)}"
    if item.state is TaskState.CANCELLED:
        return f"{agent}'s {_without_the(item.label)} was cancelled."
    return f"{agent}'s {_without_the(item.label)} was interrupted."


def _records_rollup(items: Sequence[_Item]) -> str:
    records = [i.data for i in items if i.state is TaskState.COMPLETED and i.data.get("name")]
    parts: list[str] = []
    if len(records) >= 2:
        xref = cross_reference(records)
        parts.append(f"I looked up and cross-referenced the records for {_join(xref.patients)}.")
        asked = list(dict.fromkeys(f for r in records for f in r.get("fields") or ()))
        for field in asked:
            if field in _FIELD_NAMES:
                values = "; ".join(
                    f"{label}: {_field_value(r, field)}"
                    for label, r in zip(xref.patients, records, strict=True)
                )
                parts.append(f"{_FIELD_NAMES[field]} — {values}.")
        parts.extend(_cross_reference_findings(xref))
    elif records:
        parts.append(_lookup_answer(records[0], _record_result(items, records[0])))
    else:
        parts.append("I couldn't read any of those records.")
    for item in items:
        if item.state is TaskState.FAILED:
            parts.append(f"I couldn't read {item.subject}'s record: {_reason(item.result)}")
        elif item.state is not TaskState.COMPLETED:
            parts.append(f"The lookup for {item.subject} was {item.state.value}.")
    return " ".join(p for p in parts if p)


def _record_result(items: Sequence[_Item], record: Mapping[str, Any]) -> str:
    return next((i.result for i in items if i.data is record), "")


def _rollup_text(items: Sequence[_Item]) -> str:
    kinds = {item.kind for item in items}
    if kinds == {"call"}:
        return " ".join(_call_sentence(n, item) for n, item in enumerate(items, start=1))
    if kinds == {"records"}:
        return _records_rollup(items)
    return "Everything I started in the background is done. " + " ".join(
        _single_followup(item) for item in items
    )


def _single_followup(item: _Item) -> str:
    label = item.label
    if item.state is TaskState.FAILED:
        return f"Sorry — {label} couldn't be completed: {_reason(item.result)}"
    if item.state is TaskState.CANCELLED:
        note = _after_cancel(item.result)
        return f"{_capital(label)} was stopped before it finished, as you asked." + (
            f" {note}" if note else ""
        )
    if item.state is not TaskState.COMPLETED:
        return (
            f"{_capital(label)} was interrupted by a server restart — ask me to start it again "
            "if you still need it."
        )
    if item.kind == "prior_auth":
        decision = str(item.data.get("decision") or item.result.split(" ", 1)[0]).lower()
        decision = decision.strip(" —-:.,")
        if decision in {"approved", "denied"}:
            detail = item.result.split(" — ", 1)[1] if " — " in item.result else ""
            text = f"Quick update on the prior auth you asked about earlier — {decision}."
            if detail:
                text += f" {_sentence(detail)}"
            if decision == "denied":
                text += " I can help with an appeal or look at alternatives."
            return text
        return f"Quick update on the prior auth you asked about earlier: {_sentence(item.result)}"
    if item.kind == "call":
        summary = item.data.get("summary")
        if isinstance(summary, str) and summary:
            return f"Quick update on the call you asked about earlier — we {summary}."
    if item.kind == "records":
        answer = _lookup_answer(item.data, item.result)
        return f"Here's what I found in {item.subject}'s chart: {answer}"
    return f"Quick update on {label} you asked about earlier: {_sentence(item.result or 'done')}"


def _lookup_answer(data: Mapping[str, Any], text: str) -> str:
    """Answer the fields a lookup was asked for; the whole chart if none were."""
    fields = [f for f in data.get("fields") or () if f in _FIELD_NAMES]
    name = str(data.get("name") or "")
    if not fields or not name:
        return text
    first = str(data.get("first_name") or first_name(name))
    return " ".join(
        _field_answer(data, field, name if i == 0 else first) for i, field in enumerate(fields)
    )
