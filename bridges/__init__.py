"""Bridges: clients of the conversation protocol that carry calls into Switchboard.

A bridge is not part of the server. Everything here speaks only the wire contract of
``docs/PROTOCOL.md`` — HTTP to create a conversation, the conversation socket for the
call — and imports nothing of ``server/`` (``tests/bridges/test_layering.py`` checks),
so that any telephony stack could do the same from its own codebase.

- :mod:`bridges.wire`: the protocol's constants as a client sees them, and service
  tokens for callers.
- :mod:`bridges.voice`: the reference voice bridge — text at both ends, transcripts in
  and ``AGENT: …`` out — that drives the end-to-end tests (``switchboard bridge``).
"""
