// Streamed agent text in the widget: DeltaAssembler gathers message.delta pieces per
// message id, and StreamConnection hands deltas on without touching the seq stream.
import assert from "node:assert/strict";
import { test } from "node:test";

import { DeltaAssembler, StreamConnection } from "../../static/widget.js";

test("pieces add up per message and are taken once", () => {
  const deltas = new DeltaAssembler();
  assert.equal(deltas.add({ message_id: "m1", text: "Hel" }), "Hel");
  assert.equal(deltas.add({ message_id: "m2", text: "Other" }), "Other");
  assert.equal(deltas.add({ message_id: "m1", text: "lo" }), "Hello");
  assert.equal(deltas.has("m1"), true);
  assert.equal(deltas.take("m1"), "Hello");
  assert.equal(deltas.has("m1"), false);
  assert.equal(deltas.take("m1"), undefined);
  assert.deepEqual(deltas.clear(), ["m2"]);
  assert.equal(deltas.has("m2"), false);
});

test("a delta without a message id or text is ignored", () => {
  const deltas = new DeltaAssembler();
  assert.equal(deltas.add({ text: "x" }), null);
  assert.equal(deltas.add({ message_id: "", text: "x" }), null);
  assert.equal(deltas.add({ message_id: "m1" }), null);
  assert.equal(deltas.add(null), null);
  assert.deepEqual(deltas.clear(), []);
});

test("the connection hands deltas on and keeps its seq", () => {
  const events = [];
  const pieces = [];
  const connection = new StreamConnection({
    url: "ws://unused",
    hello: () => ({}),
    fetchAfter: async () => [],
    onEvent: (event) => events.push(event),
    onDelta: (frame) => pieces.push(frame.text),
  });
  connection._receive(JSON.stringify({ type: "message.delta", message_id: "m1", chat_id: "c", text: "Hi " }));
  connection._receive(JSON.stringify({ type: "message.delta", message_id: "m1", chat_id: "c", text: "there" }));
  assert.deepEqual(pieces, ["Hi ", "there"]);
  assert.equal(connection.lastSeq, 0);
  assert.deepEqual(events, []);
  connection._receive(
    JSON.stringify({ seq: 1, type: "message", chat_id: "c", message_id: "m1", text: "Hi there" }),
  );
  assert.equal(connection.lastSeq, 1);
  assert.equal(events[0].message_id, "m1");
});

test("frames that answer no request reach onFrame (the Chats socket's chats and chat)", () => {
  const seen = [];
  const connection = new StreamConnection({ url: "ws://x", hello: () => ({}), onEvent: () => {}, onFrame: (f) => seen.push(f.type) });
  connection._receive(JSON.stringify({ type: "chats", chats: [] }));
  connection._receive(JSON.stringify({ type: "chat", chat: { id: "c" } }));
  connection._receive(JSON.stringify({ type: "pong", id: "p1" }));
  connection._receive(JSON.stringify({ type: "error", code: "bad_frame", message: "x" }));
  assert.deepEqual(seen, ["chats", "chat"]);
});
