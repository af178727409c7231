"""The TwiML that points a phone number at the bridge, sans-I/O.

Twilio fetches it when a call comes in (the number's voice webhook, set to HTTP GET);
it answers ``<Connect><Stream>`` with the signed parameters naming the workspace and
the caller (their number, as Twilio saw it).
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape

from .signing import sign

CONTENT_TYPE = "text/xml; charset=utf-8"


def quoteattr(value: str) -> str:
    """*value* as a double-quoted XML attribute."""
    return '"' + escape(value, {'"': "&quot;"}) + '"'


def stream_parameters(
    secret: str, *, workspace: str, caller_number: str, agent_id: str | None = None
) -> dict[str, str]:
    """The signed ``customParameters`` of one incoming call. The caller is named by
    their number, as an id the protocol accepts: ``+1 555-0100`` is ``phone-15550100``."""
    parameters = {"workspace": workspace, "caller": caller_id(caller_number)}
    if agent_id:
        parameters["agent_id"] = agent_id
    return sign(secret, parameters)


def caller_id(number: str) -> str:
    """The caller's id for a phone *number*: ``phone-`` and its digits."""
    digits = "".join(c for c in number if c.isdigit())
    if not 1 <= len(digits) <= 20:
        raise ValueError("not a phone number")
    return f"phone-{digits}"


def connect_stream(stream_url: str, parameters: Mapping[str, str]) -> str:
    """``<Response><Connect><Stream url=…>`` with a ``<Parameter>`` for each of *parameters*."""
    inner = "".join(
        f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in parameters.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Connect><Stream url={quoteattr(stream_url)}>{inner}</Stream></Connect>"
        "</Response>"
    )
