"""A reference telephony bridge: one phone call carried over one conversation socket.

A real bridge sits between a telephony provider (Twilio Media Streams, Pipecat,
LiveKit) and Switchboard, and maps the call's events onto the ``voice`` frames of
PROTOCOL.md: the caller's voice activity becomes ``speech`` ``started``/``stopped``,
each final transcript becomes ``say``, and every agent message with ``speak: true`` is
spoken; when the caller starts speaking, whatever is still playing is cut (barge-in).
This one has text at both ends — transcripts come from a script or from stdin, and
"speaking" prints ``AGENT: …`` — so it runs anywhere and drives the end-to-end tests.
``docs/VOICE.md`` maps real providers' events onto the same calls.

::

    python -m bridges.voice --server http://127.0.0.1:8000 --caller caller-1 \\
        --script docs/voice/prior-auth-call.txt

Layers, as in ``websockets``: :mod:`.script` (:func:`parse_script`) and :mod:`.call`
(:class:`CallState`) are sans-I/O — text and frames in, steps, events and frames out —
and unit-tested without sockets; :mod:`.bridge` (:class:`VoiceBridge`) is the thin I/O
loop around them; :mod:`.playback` holds :class:`Speaker`, the pluggable text-to-speech
edge; :mod:`.dialing` mints the caller's token and creates the conversation;
:mod:`.cli` is the command line. :mod:`.exceptions` draws the error hierarchy.
"""

from __future__ import annotations

from bridges.wire import RESUMABLE

from .bridge import (
    ANSWER_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    RECONNECT_DELAYS,
    VoiceBridge,
)
from .call import (
    AgentMessage,
    Answered,
    CallState,
    Disconnected,
    Entry,
    Event,
    Failed,
    PlaybackStopped,
    Received,
    Sent,
    Sentences,
    TaskChanged,
    Welcomed,
)
from .cli import EXIT_CALL_FAILED, EXIT_OK, EXIT_USAGE, add_arguments, main, run
from .dialing import BRIDGE_ID, conversation_ws_url, create_conversation, mint_token
from .exceptions import BridgeError, CallEnded, Refused, ScriptError, WaitTimeout
from .playback import PLAYBACK_QUEUE_SIZE, Playback, PrintingSpeaker, Speaker
from .script import Hangup, Say, Speech, Step, Wait, WaitFor, parse_script, parse_step

__all__ = [
    "ANSWER_TIMEOUT",
    "BRIDGE_ID",
    "DEFAULT_WAIT_TIMEOUT",
    "EXIT_CALL_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PLAYBACK_QUEUE_SIZE",
    "RECONNECT_DELAYS",
    "RESUMABLE",
    "AgentMessage",
    "Answered",
    "BridgeError",
    "CallEnded",
    "CallState",
    "Disconnected",
    "Entry",
    "Event",
    "Failed",
    "Hangup",
    "Playback",
    "PlaybackStopped",
    "PrintingSpeaker",
    "Received",
    "Refused",
    "Say",
    "ScriptError",
    "Sent",
    "Sentences",
    "Speaker",
    "Speech",
    "Step",
    "TaskChanged",
    "VoiceBridge",
    "Wait",
    "WaitFor",
    "WaitTimeout",
    "Welcomed",
    "add_arguments",
    "conversation_ws_url",
    "create_conversation",
    "main",
    "mint_token",
    "parse_script",
    "parse_step",
    "run",
]
