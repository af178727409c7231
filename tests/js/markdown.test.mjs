// The safe Markdown subset of agent messages (static/markdown.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { inline, parse, plainText } from "../../static/markdown.js";

test("plain text is one paragraph, its lines kept as line breaks", () => {
  assert.deepEqual(parse("Hello.\nSecond line."), [
    { type: "p", lines: [[{ text: "Hello." }], [{ text: "Second line." }]] },
  ]);
});

test("a blank line starts a new paragraph; surrounding blanks vanish", () => {
  const blocks = parse("\n\nOne.\n\n\nTwo.\n");
  assert.deepEqual(blocks.map((b) => b.type), ["p", "p"]);
  assert.equal(plainText(blocks), "One.\n\nTwo.");
});

test("bulleted and numbered lists, with a paragraph before them", () => {
  const blocks = parse("Findings:\n- Shared medications: metformin\n* No allergies\n\n1. Call Alice\n2) Call Bob");
  assert.deepEqual(blocks.map((b) => b.type), ["p", "ul", "ol"]);
  assert.equal(blocks[1].items.length, 2);
  assert.deepEqual(blocks[1].items[1], [{ text: "No allergies" }]);
  assert.equal(blocks[2].start, 1);
  assert.deepEqual(blocks[2].items[1], [{ text: "Call Bob" }]);
});

test("a numbered list keeps its first number; an indented line continues an item", () => {
  const [list] = parse("3. Third\n   still third\n4. Fourth");
  assert.equal(list.start, 3);
  assert.equal(list.items.length, 2);
  assert.equal(list.items[0].map((s) => s.text).join(""), "Third still third");
});

test("bold, italic and code spans", () => {
  assert.deepEqual(inline("**Approved** by *Aetna*, ref `PA-1`."), [
    { text: "Approved", bold: true },
    { text: " by " },
    { text: "Aetna", italic: true },
    { text: ", ref " },
    { text: "PA-1", code: true },
    { text: "." },
  ]);
});

test("lone or unbalanced markers stay text", () => {
  for (const line of ["2 * 3 * 4", "a**b", "** spaced **", "snake_case_name", "5*", "`", "**"]) {
    assert.equal(inline(line).map((s) => s.text).join(""), line, line);
    assert.ok(inline(line).every((s) => !s.bold && !s.italic && !s.code), line);
  }
});

test("markup-looking text is only ever text: no tag survives as markup", () => {
  const hostile = '<img src=x onerror=alert(1)> **<b>bold</b>** [link](javascript:alert(1))';
  const blocks = parse(hostile);
  assert.equal(plainText(blocks), '<img src=x onerror=alert(1)> <b>bold</b> [link](javascript:alert(1))');
  const spans = blocks[0].lines[0];
  assert.deepEqual(
    spans.filter((s) => s.bold),
    [{ text: "<b>bold</b>", bold: true }],
  );
});

test("a huge message stays bounded in blocks and loses no text", () => {
  const text = Array.from({ length: 1000 }, (_, i) => `line ${i}\n`).join("\n");
  const blocks = parse(text);
  assert.ok(blocks.length <= 201, blocks.length);
  const words = plainText(blocks).split(/\s+/).filter(Boolean);
  assert.equal(words.length, 2000);
});

test("nullish and non-string input", () => {
  assert.deepEqual(parse(undefined), []);
  assert.deepEqual(parse(42), [{ type: "p", lines: [[{ text: "42" }]] }]);
});
