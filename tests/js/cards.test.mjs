// The task cards' pure logic (static/cards.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { cardsSummary, descendants, elapsedLabel, elapsedMs, elapsedWords, folded } from "../../static/cards.js";

test("elapsed labels", () => {
  assert.equal(elapsedLabel(0), "0 s");
  assert.equal(elapsedLabel(59_999), "59 s");
  assert.equal(elapsedLabel(60_000), "1 min");
  assert.equal(elapsedLabel(125_000), "2 min 5 s");
  assert.equal(elapsedLabel(3_600_000), "1 h");
  assert.equal(elapsedLabel(3_840_000), "1 h 4 min");
  assert.equal(elapsedLabel(-1), "");
  assert.equal(elapsedLabel(Number.NaN), "");
  assert.equal(elapsedWords(61_000), "1 minute 1 second");
  assert.equal(elapsedWords(7_200_000), "2 hours");
});

test("a running task's time runs on; an ended one's stops at its last update", () => {
  const view = { created_at: "2026-01-01T10:00:00.000Z", updated_at: "2026-01-01T10:00:42.000Z" };
  const now = Date.parse("2026-01-01T10:05:00.000Z");
  assert.equal(elapsedMs(view, false, now), 300_000);
  assert.equal(elapsedMs(view, true, now), 42_000);
  assert.ok(Number.isNaN(elapsedMs({}, false, now)));
});

test("descendants: the whole tree below a task, and nothing else", () => {
  const views = new Map(
    [
      { id: "a", parent_id: null },
      { id: "b", parent_id: "a" },
      { id: "c", parent_id: "b" },
      { id: "d", parent_id: "a" },
      { id: "e", parent_id: null },
      { id: "f", parent_id: "e" },
    ].map((v) => [v.id, v]),
  );
  assert.deepEqual(descendants(views, "a").sort(), ["b", "c", "d"]);
  assert.deepEqual(descendants(views, "c"), []);
  assert.deepEqual(descendants([...views.values()], "e"), ["f"]);
  // A cycle (never sent by a server) does not loop.
  assert.deepEqual(descendants([{ id: "x", parent_id: "y" }, { id: "y", parent_id: "x" }], "x"), ["y"]);
});

test("many cards: ended ones fold, running ones never", () => {
  assert.equal(folded(3, true), false);
  assert.equal(folded(4, true), true);
  assert.equal(folded(40, false), false);
});

test("the summary line", () => {
  const ended = (s) => s === "completed";
  assert.equal(cardsSummary([{ state: "working" }, { state: "completed" }, { state: "working" }], ended), "2 running · 1 done");
  assert.equal(cardsSummary([{ state: "completed" }], ended), "1 done");
  assert.equal(cardsSummary([], ended), "none");
});
