"""The replies to everything that asks for no work: help, hours, thanks, greetings."""

from __future__ import annotations

from agents.brains import Reply, Turn
from agents.brains.rule.sentences import lower_first
from agents.brains.rule.text import Text

CLINIC_HOURS = (
    "We're open Monday to Friday, 8 am to 6 pm, and Saturday 9 am to 1 pm; closed Sundays."
)
FALLBACK = (
    "Sorry, I didn't catch that. I can call patients, start prior authorizations, and look "
    "up or cross-reference records — and check on, update or cancel anything I've started."
)


def small_talk(text: Text, turn: Turn) -> Reply:
    """A reply to a turn no intent claimed; :data:`FALLBACK` if nothing fits."""
    words = set(text.words)
    if text.has("what can you do", "what do you do", "how can you help", "who are you") or (
        text.has("help") and len(words) <= 4
    ):
        team = [a for a in turn.team if a.id != turn.agent.id]
        helpers = "; ".join(f"{a.name} — {lower_first(a.description)}" for a in team)
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
