"""The words the rule brain listens for: each intent's signals, synonyms, and filler.

Single words are matched against a turn's normalized words; phrases are matched as
whole words inside the normalized text (see :meth:`~agents.brains.rule.text.Text.has`),
so every phrase here is written as :func:`~agents.brains.rule.text.normalize` writes
text: lowercase, no punctuation, contractions expanded.
"""

from __future__ import annotations

from collections.abc import Mapping


def words(text: str) -> frozenset[str]:
    """A vocabulary from space-separated words."""
    return frozenset(text.split())


def phrases(text: str) -> tuple[str, ...]:
    """Phrases (normalized, as :func:`~.text.normalize` writes them) separated by commas."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}
NUMBERS |= {"eight": 8, "nine": 9, "ten": 10}

# Words that mean the same thing when matching a task: "the calls", "phoning Alice".
SYNONYMS = dict.fromkeys(words("phone phoning calling called outreach dial ring"), "call")
SYNONYMS |= dict.fromkeys(words("authorization authorisation pa preauth approval"), "auth")
SYNONYMS |= dict.fromkeys(words("chart lookup file"), "record")

# -- naming tasks -------------------------------------------------------------------------

# Words that never name a task: grammar, politeness, and the intents' own vocabulary.
FILLER = words(
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
KIND_WORDS = words("call auth prior record")
GENERIC_REFS = words("it that this them those these everything all both background request")
GENERIC_REFS |= words("requests task tasks work job jobs one ones call calls lookup lookups auth")
ALL_WORDS = words("all everything every everyone everybody both background")

# -- naming medicines ---------------------------------------------------------------------

BRANDS = words(
    "ozempic wegovy mounjaro zepbound trulicity rybelsus jardiance farxiga humira enbrel "
    "dupixent stelara eliquis xarelto entresto lantus victoza saxenda"
)
GENERICS = words(
    "semaglutide tirzepatide liraglutide adalimumab apixaban metformin lisinopril insulin "
    "atorvastatin warfarin spironolactone furosemide aspirin"
)

# -- asking for new work ------------------------------------------------------------------

OUTREACH_VERBS = words("call phone ring dial contact reach telephone calling phoning")
OUTREACH_VERBS |= words("contacting reaching ringing dialing")
OUTREACH_PHRASES = phrases("get in touch, follow up with, check in with, reach out, do outreach")
DETERMINERS = words("the a an that this those these my your his her their our its no any")
DETERMINERS |= words("each every last next one")
ONBOARDING = phrases(
    "onboarding, onboarded, onboard, intake, registration, registered, signup, sign up, "
    "paperwork, enrollment, enrolled, enroll"
)
NEGATIONS = phrases(
    "not, never, yet, incomplete, unfinished, pending, outstanding, still, missing, without, "
    "stuck, unregistered, partway"
)
COMPLETIONS = phrases("completed, complete, finished, done, already, fully")
EVERYONE = phrases(
    "everyone, everybody, all patients, every patient, all the patients, all of the patients, "
    "all our patients, each patient"
)
PRIOR_AUTH_PHRASES = phrases(
    "prior auth, prior auths, prior authorization, prior authorisation, prior approval, "
    "preauth, pre auth, pre authorization, preauthorization, pa, pas, authorization, "
    "authorisation, authorize, authorise, authorized, authorised, insurance approval, "
    "coverage approval"
)
# Words that ask for a prior auth only when a medicine is named: "get Ozempic approved".
APPROVAL = phrases("approval, approved, approve, covered, coverage")
# What makes a prior-auth sentence a question about prior auths rather than a request.
EXPLAIN_LEADS = phrases(
    "what is, what are, what does, how does, how do, how would, how can, how long, why, "
    "explain, tell me about, is a, do i need, does"
)
RECORD_WORDS = phrases(
    "record, records, chart, charts, file, files, history, look up, lookup, pull up, pull, "
    "fetch, find, check, review, read, summarize, summary, info, information, details, profile"
)
FIELD_WORDS: Mapping[str, tuple[str, ...]] = {
    "date_of_birth": phrases("date of birth, dob, birthday, birth date, birthdate, born"),
    "mrn": phrases("mrn, medical record number, record number"),
    "phone": phrases("phonenumber, number"),
    "medications": phrases(
        "medication, medications, meds, med, prescription, prescriptions, drugs, taking, rx, "
        "medicines, medicine"
    ),
    "allergies": phrases("allergy, allergies, allergic"),
    "conditions": phrases(
        "condition, conditions, diagnosis, diagnoses, diagnosed, problems, problem list"
    ),
    "provider": phrases("provider, doctor, physician, pcp, clinician, gp"),
    "insurer": phrases("insurer, insurance, payer, coverage, insured, health plan"),
}
CROSS_WORDS = phrases(
    "cross reference, crossreference, cross check, crosscheck, compare, comparison, overlap, "
    "overlaps, in common, common, across, side by side, shared, share, interactions, "
    "interaction, contrast"
)
URGENT_WORDS = phrases("urgent, asap, expedite, rush, stat, priority, emergency")

# -- asking about work already started ----------------------------------------------------

# A strong word makes a status question by itself; a weak one only when it points at a
# task ("is the prior auth done?") — "done" alone could mean anything.
STATUS_STRONG = phrases(
    "status, news, progress, eta, happening, heard back, hear back, any word, word on, "
    "word from, any luck, luck reaching, still waiting, still working, still running, "
    "where are we, where do we stand, where things stand, how far along, coming along, "
    "what happened, how did, how is it, how are they, how it going, how are things, "
    "how is the, how are the, how is everything, how is it going, update, updates, latest, "
    "come back, came back, get back, got back, gone through, go through, went through, "
    "heard anything, hear anything, how long until, when will, when do we, any idea when, "
    "managed to, get hold of, got hold of, get through to, got through to, pick up, "
    "picked up, did the insurer, did the payer, what did, how looking, is looking, "
    "how is dana, how going, been reached, reached yet"
)
STATUS_WEAK = phrases(
    "result, results, outcome, done, finished, back, approved, denied, through, over, "
    "going, complete, ready, yet, how, answer, answered, reached, decided, decision, say, "
    "said, respond, responded, approve, deny, call back, called back, check on, check in on, "
    "check the, check"
)
QUESTION_AUX = words("did does has have is are was were had")
# First words that make a sentence a request for new work, whatever status words follow.
DELEGATION_LEADS = words(
    "call phone ring dial reach contact start begin file submit look pull fetch compare cross "
    "run get kick initiate request find check review send do open"
)
CANCEL_PHRASES = phrases(
    "cancel, cancelled, stop, abort, halt, kill, scrap, call off, never mind, nevermind, "
    "forget about, forget the, forget it, do not bother, withdraw, terminate, drop the, drop it, "
    "drop that, drop one, drop both, quit, no need for the, pull the plug, stand down, "
    "shut down, hang up, pull the, scratch that, scratch the, call it off"
)
KEEP_GOING = phrases(
    "keep going, keep it going, keep them going, let it run, let them run, "
    "let it finish, let them finish, leave it running, leave them running, "
    "leave it alone, leave them alone, carry on, keep running, keep calling"
)
CANCEL_WORDS = words("cancel stop abort halt kill scrap quit withdraw")

# -- reading: typos, negation, questions ------------------------------------------------

# Ordinary English that a typo corrector must never "fix" into a name or a medicine
# ("even" is not Evan, "data" is not Dana, "hand" is not Hana, "cell" is not "call").
COMMON_WORDS = words(
    """
    about above after again against almost alone along already also although always
    another anyone anything anyway around away back because before behind being below
    best better between both bring busy came cannot care case cell change clinic close
    could data dance date days dead deal dear does done down each early easy either else
    even ever fall fast fine first five form four free from full gave give goes gone good
    great hand hang happy hard have head hear held help here high hold home hope hour hours
    into itself just keep kind knew know last late later left less life like line list
    little live alive long look lose lost made make many mark mean meet mind more most much
    must name near need never next nice none note nothing once only open other over part
    past pick plan please point quite rather read real rest ring round said same save seen
    self send sent should show side since some soon sort still stop such sure take talk
    tell than that them then there these they thing think this those though three through
    till time told tomorrow took turn under until upon very wait want week well went were
    what when where which while whole whom whose will wish with without work would year
    your yours zero hall ball tall wall fill bill sell still shall dine done bone tone zone
    band bank land sand wand hank carry cart card care cars also nurse doctor pharmacy
    monday tuesday wednesday thursday friday saturday sunday morning afternoon evening
    tonight today yesterday weekend office front desk team staff message messages email
    thanks thank sorry okay yeah nope maybe dose doses shot shots clinic portal forms
    """
)
# The brain's own words, typed badly often enough to correct towards.
INTENT_WORDS = words(
    """
    cancel cancelled stop withdraw abort every everyone everybody patient patients finished
    completed prior authorization authorisation urgent status update updates request
    requests onboarding approved denied hasnt haven't
    """
)
# Words that turn a sentence against what follows them in its clause.
NEGATORS = words("not never no neither nor without skip avoid")
# Words that put work off: a request with them starts nothing now.
HOLD_WORDS = words("wait hold postpone pause delay later tomorrow until till")
HOLD_PHRASES = phrases(
    "hold off, hold on, hang on, not yet, not now, not today, next week, on monday, "
    "after lunch, for now, before i, once i, when i, wait until, wait for, wait till"
)
# A clause made only of these words ("but not yet", "wait", "not now") governs the others.
HOLD_CLAUSE = words(
    "but not yet now today wait hold on off hang later please actually no ok okay sorry "
    "just for a bit second minute tomorrow so and also oh hmm um"
)
# Words that start a relative clause: what follows describes, it does not command.
RELATIVIZERS = words("who that which whose whom with where whether")
# The first words that make a sentence a request, whatever its question mark says.
REQUEST_LEADS = phrases(
    "can you, could you, would you, will you, can we, could we, can someone, could someone, "
    "can somebody, could somebody, would someone, please, pls, kindly, i need you to, "
    "i want you to, i would like you to, we need to, we need, i need, we should, let us, "
    "go ahead and, also, and, then, now, ok, okay, actually, just, so, right, yes, quickly, "
    "oh, hey, hi, great, thanks, alright, well, i would like, i want, can i get, could i get, "
    "need, need to, we must, you should, make sure to, make sure you, time to"
)
SUBJECTS = words("i he she they")
WH_WORDS = words("what who whom which when where why how")
