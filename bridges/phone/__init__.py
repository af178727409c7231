"""The phone bridge: a telephony provider's call, over Twilio Media Streams, as a voice
client of the conversation protocol. So far: the Media Streams messages (:mod:`.twilio`).
"""

from __future__ import annotations
