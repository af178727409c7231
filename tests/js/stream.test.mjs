// The widget's delivery logic (StreamConnection in static/widget.js) against a scripted
// socket: each seq applied once and in order, gaps filled over HTTP, reconnects that
// resume after the last seq shown, requests matched to their answers.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static made = [];

  constructor(url) {
    this.url = url;
    this.readyState = FakeSocket.CONNECTING;
    this.sent = [];
    FakeSocket.made.push(this);
  }

  send(data) {
    this.sent.push(JSON.parse(data));
  }

  close(code = 1000) {
    this.readyState = FakeSocket.CLOSED;
    this.closedWith = code;
  }

  // -- the server's side ---------------------------------------------------------
  open() {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.();
  }

  frame(object) {
    this.onmessage?.({ data: JSON.stringify(object) });
  }

  drop(code) {
    this.readyState = FakeSocket.CLOSED;
    this.onclose?.({ code, reason: "" });
  }
}

globalThis.WebSocket = FakeSocket;
globalThis.window = new EventTarget();

const { StreamConnection, RequestError } = await import("../../static/widget.js");

const message = (seq, text = `m${seq}`) => ({ seq, type: "message", chat_id: "c", ts: "2026-01-01T00:00:00Z", role: "agent", kind: "reply", text });
const tick = () => new Promise((resolve) => setImmediate(resolve));

function connection(options = {}) {
  const seen = [];
  const statuses = [];
  let replays = 0;
  const stream = new StreamConnection({
    url: "ws://server/v1/conversations/x/ws",
    hello: () => ({ token: "t", client: "widget" }),
    onEvent: (event) => seen.push(event.seq),
    onStatus: (state, detail) => statuses.push([state, detail.code]),
    onReplayed: () => {
      replays += 1;
    },
    ...options,
  });
  return { stream, seen, statuses, replays: () => replays };
}

beforeEach(() => {
  FakeSocket.made = [];
});

test("the hello carries the token and resume_after; each seq is applied once, in order", async () => {
  const { stream, seen, replays } = connection();
  stream.lastSeq = 4;
  stream.start();
  const socket = FakeSocket.made[0];
  socket.open();
  assert.deepEqual(socket.sent[0], { type: "hello", token: "t", client: "widget", resume_after: 4 });
  assert.ok(!socket.url.includes("t="), "no token in the URL");
  socket.frame({ type: "welcome", protocol: 1, last_seq: 6 });
  assert.equal(replays(), 0);
  for (const seq of [5, 5, 6, 4, 7]) socket.frame(message(seq));
  assert.deepEqual(seen, [5, 6, 7]);
  assert.equal(replays(), 1);
  stream.stop();
});

test("a gap inside one connection is filled over HTTP before anything after it", async () => {
  const asked = [];
  const { stream, seen } = connection({
    fetchAfter: async (after, limit) => {
      asked.push([after, limit]);
      return [message(2), message(3)];
    },
  });
  stream.start();
  const socket = FakeSocket.made[0];
  socket.open();
  socket.frame({ type: "welcome", protocol: 1, last_seq: 0 });
  socket.frame(message(1));
  socket.frame(message(4)); // 2 and 3 are missing
  socket.frame(message(5)); // arrives while the gap is being filled
  assert.deepEqual(seen, [1]);
  await tick();
  assert.deepEqual(asked, [[1, 2]]);
  assert.deepEqual(seen, [1, 2, 3, 4, 5]);
  stream.stop();
});

test("a gap the store cannot fill drops the socket and resumes from the last seq shown", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  const { stream, seen, statuses } = connection({ fetchAfter: async () => [] });
  stream.start();
  const first = FakeSocket.made[0];
  first.open();
  first.frame({ type: "welcome", protocol: 1, last_seq: 0 });
  first.frame(message(1));
  first.frame(message(3));
  await tick();
  await tick();
  assert.deepEqual(seen, [1]);
  assert.equal(first.readyState, FakeSocket.CLOSED);
  assert.equal(statuses.at(-1)[0], "reconnecting");
  t.mock.timers.tick(1000); // past the first backoff step (at most 500 ms)
  const second = FakeSocket.made[1];
  assert.ok(second, "reconnected");
  second.open();
  assert.equal(second.sent[0].resume_after, 1);
  stream.stop();
});

test("reconnect codes come back with growing, capped backoff; 4409 and 4404 stop", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  const { stream, statuses } = connection();
  stream.start();
  const delays = [];
  for (let attempt = 0; attempt < 8; attempt += 1) {
    FakeSocket.made.at(-1).drop(1006);
    const [state, code] = statuses.at(-1);
    assert.equal(state, "reconnecting");
    assert.equal(code, 1006);
    delays.push(stream._retryTimer !== null);
    t.mock.timers.tick(15_000);
  }
  assert.equal(FakeSocket.made.length, 9);
  assert.ok(delays.every(Boolean));
  FakeSocket.made.at(-1).drop(4409);
  assert.deepEqual(statuses.at(-1), ["closed", 4409]);
  t.mock.timers.tick(60_000);
  assert.equal(FakeSocket.made.length, 9, "a replaced socket never reconnects by itself");
});

test("the backoff after a rate limit is at least three seconds", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  const delays = [];
  const { stream } = connection({
    onStatus: (state, detail) => {
      if (state === "reconnecting" && detail.delayMs !== undefined) delays.push(detail.delayMs);
    },
  });
  stream.start();
  FakeSocket.made[0].drop(4429);
  assert.ok(delays[0] >= 3000, delays);
  stream.stop();
});

test("requests are matched to their answers by id; errors carry the protocol's code", async () => {
  const { stream } = connection();
  await assert.rejects(stream.request({ type: "ping" }), (error) => error instanceof RequestError && error.code === "offline");
  stream.start();
  const socket = FakeSocket.made[0];
  socket.open();
  socket.frame({ type: "welcome", protocol: 1, last_seq: 0 });
  const first = stream.request({ type: "say", text: "one" });
  const second = stream.request({ type: "task.cancel", task_id: "task_x" });
  const refused = assert.rejects(second, (error) => error.code === "not_found");
  const [, sayFrame, cancelFrame] = socket.sent;
  assert.notEqual(sayFrame.id, cancelFrame.id);
  socket.frame({ type: "error", id: cancelFrame.id, code: "not_found", message: "not found" });
  socket.frame({ type: "ack", id: sayFrame.id, seq: 1 });
  assert.deepEqual(await first, { type: "ack", id: sayFrame.id, seq: 1 });
  await refused;
  // A dropped socket fails what is still waiting, as offline: maybe stored, maybe not.
  const third = stream.request({ type: "say", text: "three" });
  socket.drop(1006);
  await assert.rejects(third, (error) => error.code === "offline");
  stream.stop();
});

test("frames that are not JSON, or not objects, are ignored", () => {
  const { stream, seen } = connection();
  stream.start();
  const socket = FakeSocket.made[0];
  socket.open();
  socket.onmessage({ data: "not json" });
  socket.onmessage({ data: "[1,2]" });
  socket.onmessage({ data: "null" });
  socket.frame({ type: "welcome", protocol: 1, last_seq: 0 });
  socket.frame(message(1));
  assert.deepEqual(seen, [1]);
  stream.stop();
});

test("an ack that overtakes its own message event does not swallow the event", async () => {
  const { stream, seen } = connection();
  stream.start();
  const socket = FakeSocket.made[0];
  socket.open();
  socket.frame({ type: "welcome", protocol: 1, last_seq: 0 });
  const said = stream.request({ type: "say", text: "hi" });
  socket.frame({ type: "ack", id: socket.sent[1].id, seq: 1 });
  assert.equal((await said).seq, 1);
  socket.frame(message(1, "hi"));
  assert.deepEqual(seen, [1]);
  stream.stop();
});
