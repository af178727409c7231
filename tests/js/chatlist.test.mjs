// The Chats view's pure logic (static/chatlist.js): filters, search, unread, frames.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  FILTERS,
  applyFrame,
  filterCounts,
  isUnread,
  matchesQuery,
  ordered,
  passesFilter,
  stateGroup,
} from "../../static/chatlist.js";

const task = (id, state, extra = {}) => ({
  id,
  kind: "task",
  state,
  title: `Task ${id}`,
  agent: { id: "a", name: "Prior auth" },
  created_at: `2026-01-01T00:00:0${id.length}Z`,
  last_seq: 3,
  ...extra,
});

test("every state falls under one filter, and every filter is offered", () => {
  const offered = new Set(FILTERS.map((f) => f.id));
  for (const state of ["submitted", "working", "input_required", "cancelling", "completed", "failed", "cancelled", "interrupted"]) {
    assert.ok(offered.has(stateGroup(state)), state);
  }
  assert.equal(stateGroup("working"), "running");
  assert.equal(stateGroup("input_required"), "waiting");
  assert.equal(stateGroup("completed"), "done");
  assert.equal(stateGroup("interrupted"), "failed");
  assert.equal(stateGroup("cancelled"), "cancelled");
  assert.equal(stateGroup("something new"), "running");
  assert.equal(passesFilter(task("t", "completed"), "done"), true);
  assert.equal(passesFilter(task("t", "completed"), "running"), false);
  assert.equal(passesFilter(task("t", "completed"), "all"), true);
});

test("a search matches every word, in the title, the agent, the progress or the conversation", () => {
  const entry = task("t", "working", { title: "Prior auth: Ozempic", progress: "Faxed the payer" });
  assert.equal(matchesQuery(entry, ""), true);
  assert.equal(matchesQuery(entry, "ozempic"), true);
  assert.equal(matchesQuery(entry, "OZEMPIC prior"), true);
  assert.equal(matchesQuery(entry, "faxed"), true);
  assert.equal(matchesQuery(entry, "ozempic mounjaro"), false);
  assert.equal(matchesQuery(entry, "front desk", "Conversation with Front desk"), true);
});

test("a chat is unread while it has a seq newer than the last one read", () => {
  const entry = task("t", "working", { last_seq: 5 });
  assert.equal(isUnread(entry, {}), true);
  assert.equal(isUnread(entry, { t: 4 }), true);
  assert.equal(isUnread(entry, { t: 5 }), false);
  assert.equal(isUnread({ ...entry, last_seq: 0 }, {}), false);
});

test("the list is replaced by chats, and one entry at a time by chat", () => {
  const list = new Map();
  assert.equal(applyFrame(list, { type: "chats", chats: [task("a", "working"), task("bb", "working")] }), true);
  assert.deepEqual(ordered(list).map((c) => c.id), ["bb", "a"]);
  assert.equal(applyFrame(list, { type: "chat", chat: task("a", "completed") }), true);
  assert.equal(list.get("a").state, "completed");
  assert.equal(applyFrame(list, { type: "chat", chat: task("ccc", "failed") }), true);
  assert.equal(list.size, 3);
  assert.equal(applyFrame(list, { type: "pong", id: "x" }), false);
  assert.equal(applyFrame(list, { type: "chat" }), false);
  assert.deepEqual(filterCounts(list.values()), { all: 3, running: 1, waiting: 0, done: 1, failed: 1, cancelled: 0 });
  assert.equal(applyFrame(list, { type: "chats", chats: [] }), true);
  assert.equal(list.size, 0);
});
