"""A minimal Django Channels chat server speaking a subset of Switchboard's wire protocol.

The peer that ``python -m bench`` (P7) measures Switchboard against: Django 5.2 with
its ORM on SQLite, Channels 4.3 consumers, channels_redis as the channel layer (its
Pub/Sub layer, or with ``PEER_CHANNEL_LAYER=core`` its original one), served by uvicorn
with the options Switchboard is served with. It runs in a venv of its own
(``requirements.txt`` beside this package), never beside Switchboard's code.

What it speaks, as docs/PROTOCOL.md says it:

- ``POST /v1/conversations`` with a person's bearer token → 201 ``{"conversation_id",
  "chat_id"}``; ``GET /readyz`` → 200 once the database answers.
- ``WS /v1/conversations/{id}/ws``: ``hello`` with the token (HS256, the ``exp``,
  ``sub``, ``ws`` and ``role`` claims required; a bad token closes 4401, a conversation
  the token's person does not own closes 4404), ``welcome`` with ``last_seq``, the stored
  events with ``seq > resume_after`` (``error`` ``resync`` past the end), then live ones;
  ``say`` → the person's ``message`` stored and sent, ``ack`` with its ``seq``, then the
  agent's ``message`` stored and sent; ``ping`` → ``pong``; for any other frame the
  error Switchboard answers it with (:mod:`chatpeer.frames`).

The agent is the bench workspace's dispatcher reduced to ``echo TOKEN``: it answers with
the same text. Every event goes to the socket through the conversation's group on the
channel layer, as a Channels app delivers to all of a conversation's sockets.

Left out: tasks and everything about them, the chat-watch socket, ``refresh``, the 10 s
hello deadline, one live connection per conversation (4409), rate limits and the audit
trail.
"""
