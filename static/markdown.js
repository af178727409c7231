// A safe Markdown subset for agent messages: paragraphs, line breaks, bulleted and
// numbered lists, **bold**, *italic* and `code`. Nothing else is markup: no links, no
// images, no HTML. The text is parsed into plain data (`parse`), then built with
// createElement and textContent (`render`): untrusted text never reaches innerHTML.

const BULLET = /^\s{0,3}[-*•]\s+(.*)$/;
const NUMBERED = /^\s{0,3}(\d{1,4})[.)]\s+(.*)$/;
const MAX_BLOCKS = 200;

/**
 * The blocks of *text*: `{type: "p", lines: [spans…]}`, `{type: "ul", items: [spans…]}`
 * or `{type: "ol", start, items: [spans…]}`; each span is `{text, bold?, italic?, code?}`.
 */
export function parse(text) {
  const blocks = [];
  let current = null;
  const close = () => {
    if (current) blocks.push(current);
    current = null;
  };
  for (const line of String(text ?? "").replace(/\r\n?/g, "\n").split("\n")) {
    if (blocks.length >= MAX_BLOCKS) {
      // Pathological input: the rest is one plain paragraph, still shown in full.
      if (!current || current.type !== "p") {
        close();
        current = { type: "p", lines: [] };
      }
      current.lines.push([{ text: line }]);
      continue;
    }
    if (!line.trim()) {
      close();
      continue;
    }
    const bullet = BULLET.exec(line);
    const numbered = bullet ? null : NUMBERED.exec(line);
    if (bullet) {
      if (!current || current.type !== "ul") {
        close();
        current = { type: "ul", items: [] };
      }
      current.items.push(inline(bullet[1]));
    } else if (numbered) {
      if (!current || current.type !== "ol") {
        close();
        current = { type: "ol", start: Number(numbered[1]), items: [] };
      }
      current.items.push(inline(numbered[2]));
    } else if (current && current.type !== "p" && /^\s{2,}\S/.test(line)) {
      // An indented line continues the list item above it.
      const last = current.items[current.items.length - 1];
      last.push({ text: " " }, ...inline(line.trim()));
    } else {
      if (!current || current.type !== "p") {
        close();
        current = { type: "p", lines: [] };
      }
      current.lines.push(inline(line));
    }
  }
  close();
  return blocks;
}

/** The spans of one line: `**bold**`, `*italic*` and `` `code` ``; the rest is text. */
export function inline(line) {
  const spans = [];
  let plain = "";
  const flush = () => {
    if (plain) spans.push({ text: plain });
    plain = "";
  };
  let i = 0;
  while (i < line.length) {
    const rest = line.slice(i);
    let match = null;
    if (rest.startsWith("`")) {
      const end = line.indexOf("`", i + 1);
      if (end > i + 1) match = { end: end + 1, span: { text: line.slice(i + 1, end), code: true } };
    } else if (rest.startsWith("**")) {
      const end = line.indexOf("**", i + 2);
      const inner = end > i + 2 ? line.slice(i + 2, end) : "";
      if (inner.trim() && inner === inner.trim()) {
        match = { end: end + 2, span: { text: inner, bold: true } };
      }
    } else if (rest.startsWith("*") && !/\w/.test(line[i - 1] ?? "")) {
      const end = line.indexOf("*", i + 1);
      const inner = end > i + 1 ? line.slice(i + 1, end) : "";
      // "*" as a footnote or a multiplication sign stays text.
      if (inner.trim() && inner === inner.trim() && !/\w/.test(line[end + 1] ?? "")) {
        match = { end: end + 1, span: { text: inner, italic: true } };
      }
    }
    if (match) {
      flush();
      spans.push(match.span);
      i = match.end;
    } else {
      plain += line[i];
      i += 1;
    }
  }
  flush();
  return spans;
}

/** The plain text of *blocks*, as a screen reader or a notification would say it. */
export function plainText(blocks) {
  const words = (spans) => spans.map((s) => s.text).join("");
  return blocks
    .map((block) =>
      block.type === "p" ? block.lines.map(words).join("\n") : block.items.map(words).join("\n"),
    )
    .join("\n\n");
}

function spansInto(doc, parent, spans) {
  for (const span of spans) {
    let node = doc.createTextNode(span.text);
    if (span.code) {
      const code = doc.createElement("code");
      code.append(node);
      node = code;
    }
    if (span.italic) {
      const em = doc.createElement("em");
      em.append(node);
      node = em;
    }
    if (span.bold) {
      const strong = doc.createElement("strong");
      strong.append(node);
      node = strong;
    }
    parent.append(node);
  }
}

/** *text* as DOM nodes in a fragment of *doc*: only p, br, ul, ol, li, strong, em, code. */
export function render(text, doc = globalThis.document) {
  const fragment = doc.createDocumentFragment();
  for (const block of parse(text)) {
    if (block.type === "p") {
      const p = doc.createElement("p");
      block.lines.forEach((spans, index) => {
        if (index > 0) p.append(doc.createElement("br"));
        spansInto(doc, p, spans);
      });
      fragment.append(p);
    } else {
      const list = doc.createElement(block.type);
      if (block.type === "ol" && block.start !== 1) list.setAttribute("start", String(block.start));
      for (const spans of block.items) {
        const li = doc.createElement("li");
        spansInto(doc, li, spans);
        list.append(li);
      }
      fragment.append(list);
    }
  }
  return fragment;
}
