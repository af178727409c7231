"""The phone bridge: a telephony provider's call, over Twilio Media Streams, as a voice
client of the conversation protocol.

- :mod:`.twilio`: the Media Streams messages, sans-I/O.
- :mod:`.call`: :class:`PhoneCall`, one call's audio through the speech engines and the
  reference bridge's :class:`~bridges.voice.VoiceBridge`.
- :mod:`.server`: :class:`PhoneBridge`, the WebSocket endpoint Twilio connects to.
- :mod:`.cli`: ``python -m bridges.phone`` (``switchboard-phone``).
"""

from __future__ import annotations

from .call import Listener, PhoneCall, TwilioSpeaker
from .server import STREAM_PATH, PhoneBridge

__all__ = ["STREAM_PATH", "Listener", "PhoneBridge", "PhoneCall", "TwilioSpeaker"]
