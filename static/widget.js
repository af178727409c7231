// Switchboard chat widget: <switchboard-chat>, embeddable with one module script tag.
//
//   <script type="module" src="https://switchboard.example/static/widget.js"></script>
//   <switchboard-chat server="https://switchboard.example"></switchboard-chat>
//   document.querySelector("switchboard-chat").token = tokenFromYourBackend;
//
// Attributes: `token` (or the `token` property, which keeps it out of the DOM),
// `conversation-id` (else one is created with POST /v1/conversations), `server` (base
// URL, default this page's origin) and `chat-id` (watch one chat instead: the
// sub-agent chat tab). Events (bubbling, composed): `switchboard-conversation`
// {conversationId, chatId}, `switchboard-status` {state, code}, `switchboard-task`
// {task}, `switchboard-close` {code, reason}, `switchboard-unauthorized` {}.
//
// Sessions: a socket lives no longer than its token. Give the widget a
// `tokenCallback` (an async function returning a new token for the same person, from
// your backend) and it renews the token before it expires, without reconnecting:
//
//   widget.tokenCallback = async () => (await fetch("/my/switchboard-token")).text();
//
// Setting `token` on a live widget renews it the same way.
//
// Delivery: every stream event carries a per-chat `seq` that grows by exactly 1. The
// widget applies each seq once, in order; on reconnect it says `resume_after` = the
// last seq applied, so the server replays exactly what was missed. A gap inside one
// connection is filled over HTTP before anything after it is shown.
//
// In the conversation, a task's progress updates its card, and at most one line per
// task in the message list (updated in place); agent messages render a safe Markdown
// subset (markdown.js) built from DOM nodes, never from HTML.

import { render as renderMarkdown } from "./markdown.js";
import { cardsSummary, descendants, elapsedLabel, elapsedMs, elapsedWords, folded } from "./cards.js";

const TERMINAL_STATES = new Set(["completed", "failed", "cancelled", "interrupted"]);
const STATE_RANK = {
  submitted: 0,
  working: 1,
  input_required: 1,
  cancelling: 2,
  completed: 3,
  failed: 3,
  cancelled: 3,
  interrupted: 3,
};
const STATE_LABELS = {
  submitted: "Queued",
  working: "Working",
  input_required: "Needs input",
  cancelling: "Cancelling…",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
  interrupted: "Interrupted",
};

// PROTOCOL.md, close codes: these mean "come back with resume_after". 1005/1006 are
// what a browser reports for a dropped network; 1012/1013 are restarts and overload.
const RECONNECT_CODES = new Set([1001, 1005, 1006, 1011, 1012, 1013, 1014, 4001, 4429]);
const CLOSE_MESSAGES = {
  1000: "Disconnected.",
  1008: "The server refused this page's origin.",
  1009: "A message was too large for the server.",
  4401: "Your session has expired. Reload the page to sign in again.",
  4404: "This conversation was not found.",
  4409: "This conversation is open in another window.",
};

const RECONNECT_BASE_MS = 500;
const RECONNECT_CAP_MS = 15_000;
const RATE_LIMITED_FLOOR_MS = 3_000;
// A connection that stays up this long is healthy: the next drop starts backoff anew.
const HEALTHY_AFTER_MS = 10_000;
const PING_EVERY_MS = 25_000;
const REQUEST_TIMEOUT_MS = 15_000;
const EVENTS_PAGE = 1000;
// A token is renewed when a quarter of its life (at most a minute) is left.
const REFRESH_SHARE = 0.25;
const REFRESH_MARGIN_CAP_S = 60;
const MAX_TEXT_CHARS = 16_000;

/** Milliseconds until *token* should be renewed (0: now), or null if it has no expiry. */
export function refreshDelayMs(token, nowMs = Date.now()) {
  const { exp, iat } = tokenClaims(token || "");
  if (typeof exp !== "number") return null;
  const life = typeof iat === "number" ? Math.max(0, exp - iat) : 4 * REFRESH_MARGIN_CAP_S;
  const margin = Math.min(REFRESH_MARGIN_CAP_S, life * REFRESH_SHARE);
  return Math.max(0, (exp - margin) * 1000 - nowMs);
}

export function isTerminal(state) {
  return TERMINAL_STATES.has(state);
}

export function stateLabel(state) {
  return STATE_LABELS[state] ?? state;
}

/** The claims of a JWT, unverified: for display and expiry only, never for trust. */
export function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = new TextDecoder().decode(
      Uint8Array.from(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")), (c) =>
        c.charCodeAt(0),
      ),
    );
    const claims = JSON.parse(json);
    return claims && typeof claims === "object" ? claims : {};
  } catch {
    return {};
  }
}

/** An answer the server refused: `code` is PROTOCOL.md's error code. */
/**
 * Streamed agent text (PROTOCOL.md, additions): `message.delta` pieces gathered per
 * `message_id` until the stored `message` with that id replaces them. Only a preview:
 * the message event is the message. `add` returns the text so far; `take` forgets a
 * message and returns what had been shown of it; `clear` forgets all (a new socket:
 * deltas are never replayed, the stored messages are).
 */
export class DeltaAssembler {
  constructor() {
    this._texts = new Map();
  }

  add(frame) {
    const id = frame?.message_id;
    if (typeof id !== "string" || !id || typeof frame.text !== "string") return null;
    const text = (this._texts.get(id) ?? "") + frame.text;
    this._texts.set(id, text);
    return text;
  }

  has(messageId) {
    return this._texts.has(messageId);
  }

  take(messageId) {
    const text = this._texts.get(messageId);
    this._texts.delete(messageId);
    return text;
  }

  clear() {
    const ids = [...this._texts.keys()];
    this._texts.clear();
    return ids;
  }
}

export class RequestError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = "RequestError";
    this.code = code;
  }
}

/**
 * One chat's stream over a WebSocket that comes back by itself.
 *
 * Callbacks: `onEvent(event)` once per seq, in order; `onStatus(state, detail)` with
 * state `connecting`, `open`, `reconnecting` ({delayMs}) or `closed` ({code});
 * `onWelcome(frame)`; `onReplayed()` once the replay after a welcome is applied;
 * `onDelta(frame)` for each `message.delta` (live only, never replayed).
 * `onFrame(frame)` for any other server frame that answers no request (the Chats
 * socket's `chats` and `chat`, PROTOCOL.md additions).
 * `fetchAfter(after, limit)` returns stored events (HTTP) to fill a gap.
 */
export class StreamConnection {
  constructor({ url, hello, fetchAfter, onEvent, onStatus, onWelcome, onReplayed, onResync, onDelta, onFrame }) {
    this.url = url;
    this.hello = hello;
    this.fetchAfter = fetchAfter;
    this.onEvent = onEvent;
    this.onStatus = onStatus ?? (() => {});
    this.onWelcome = onWelcome ?? (() => {});
    this.onReplayed = onReplayed ?? (() => {});
    this.onResync = onResync ?? (() => {});
    this.onDelta = onDelta ?? (() => {});
    this.onFrame = onFrame ?? (() => {});
    this.lastSeq = 0;
    this.replayed = false;
    this._ws = null;
    this._welcomed = false;
    this._stopped = true;
    this._attempt = 0;
    this._retryTimer = null;
    this._healthyTimer = null;
    this._pingTimer = null;
    this._pending = new Map();
    this._nextId = 0;
    // Events that arrived after a gap, held until the gap is filled (at most one
    // replay page plus what arrives meanwhile: the fill is quick or the socket drops).
    this._held = [];
    this._filling = false;
    this._replayUntil = 0;
    this._onOnline = () => this.retryNow();
  }

  /** Whether requests can be sent now: the socket is open and welcomed. */
  get open() {
    return this._welcomed && this._ws?.readyState === WebSocket.OPEN;
  }

  start() {
    if (!this._stopped) return;
    this._stopped = false;
    window.addEventListener("online", this._onOnline);
    this._connect(false);
  }

  stop() {
    this._stopped = true;
    window.removeEventListener("online", this._onOnline);
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._discard(1000);
  }

  /** Skip the rest of a backoff wait (a "Retry now" button, the network is back). */
  retryNow() {
    if (this._stopped || this._retryTimer === null) return;
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._connect(true);
  }

  /** Send a frame that expects an answer; resolves with it, rejects with RequestError. */
  request(frame, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (!this.open) return Promise.reject(new RequestError("offline", "not connected"));
    const id = `c${++this._nextId}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new RequestError("timeout", "no answer from the server"));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer });
      this._ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  _connect(again) {
    this.onStatus(again ? "reconnecting" : "connecting", {});
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this._scheduleReconnect(1006);
      return;
    }
    this._ws = ws;
    this._welcomed = false;
    ws.onopen = () => {
      // The token goes in the first frame, never in the URL (PROTOCOL.md, Identity).
      ws.send(JSON.stringify({ type: "hello", ...this.hello(), resume_after: this.lastSeq }));
    };
    ws.onmessage = (message) => {
      if (ws === this._ws) this._receive(message.data);
    };
    ws.onclose = (close) => {
      if (ws === this._ws) this._closed(close.code, close.reason);
    };
    ws.onerror = () => {}; // a close event always follows, with the code to act on
  }

  _receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    if (frame.type === "welcome") {
      this._welcomed = true;
      this._replayUntil = Number(frame.last_seq) || 0;
      this.replayed = false;
      this._healthyTimer = setTimeout(() => {
        this._attempt = 0;
      }, HEALTHY_AFTER_MS);
      this._pingTimer = setInterval(() => this._ping(), PING_EVERY_MS);
      this.onStatus("open", {});
      this.onWelcome(frame);
      this._checkReplayed();
      return;
    }
    // An ack carries the seq it stored too: it answers a request, it is no stream event.
    if (typeof frame.seq === "number" && frame.type !== "ack") {
      this._ingest(frame);
      return;
    }
    if (frame.type === "message.delta") {
      this.onDelta(frame);
      return;
    }
    if (frame.id === undefined && frame.type !== "error") {
      this.onFrame(frame);
      return;
    }
    if (frame.type === "error" && frame.code === "resync" && frame.id === undefined) {
      this._resync();
      return;
    }
    const waiter = frame.id === undefined ? undefined : this._pending.get(frame.id);
    if (waiter) {
      this._pending.delete(frame.id);
      clearTimeout(waiter.timer);
      if (frame.type === "error") waiter.reject(new RequestError(frame.code, frame.message));
      else waiter.resolve(frame);
    }
    // An error without an id answers nothing we are waiting for; nothing to show.
  }

  /**
   * The server has less than we asked to resume after (PROTOCOL.md, additions: resuming
   * from the future): what we hold is not its stream. Drop it and show its stream from
   * the start; live events follow from its last_seq + 1 on this same socket.
   */
  _resync() {
    this.lastSeq = 0;
    this._held = [];
    this.onResync();
    if (this._replayUntil > 0) this._fillGap(this._replayUntil);
    else this._checkReplayed();
  }

  _ingest(event) {
    if (this._filling) {
      this._held.push(event);
      return;
    }
    if (event.seq <= this.lastSeq) return; // already shown: a replay overlap
    if (event.seq === this.lastSeq + 1) {
      this._apply(event);
      return;
    }
    this._held.push(event);
    this._fillGap();
  }

  _apply(event) {
    this.lastSeq = event.seq;
    try {
      this.onEvent(event);
    } finally {
      this._checkReplayed();
    }
  }

  _checkReplayed() {
    if (!this.replayed && this._welcomed && this.lastSeq >= this._replayUntil) {
      this.replayed = true;
      this.onReplayed();
    }
  }

  async _fillGap(upTo) {
    const ws = this._ws;
    this._filling = true;
    let ok = false;
    try {
      if (this.fetchAfter) {
        const target = upTo ?? Math.min(...this._held.map((e) => e.seq)) - 1;
        while (this.lastSeq < target) {
          const page = await this.fetchAfter(this.lastSeq, Math.min(EVENTS_PAGE, target - this.lastSeq));
          if (ws !== this._ws) return; // the socket went meanwhile; its resume covers it
          const before = this.lastSeq;
          for (const event of page) {
            if (event.seq === this.lastSeq + 1) this._apply(event);
          }
          if (this.lastSeq === before) break; // nothing new: the store cannot fill it
        }
        ok = true;
      }
    } catch {
      ok = false;
    } finally {
      this._filling = false;
    }
    const held = this._held.sort((a, b) => a.seq - b.seq);
    this._held = [];
    for (const event of held) {
      if (event.seq <= this.lastSeq) continue;
      if (!ok || event.seq !== this.lastSeq + 1) {
        // Still a hole: start over from the last seq shown, the server replays the rest.
        this._drop();
        return;
      }
      this._apply(event);
    }
  }

  _ping() {
    this.request({ type: "ping" }, 10_000).catch((error) => {
      if (error.code === "timeout") this._drop(); // a dead link the OS has not noticed
    });
  }

  /** Give up on this socket and reconnect, as if the network had dropped it. */
  _drop() {
    if (this._stopped || !this._ws) return;
    this._discard(1000);
    this._scheduleReconnect(1006);
  }

  _discard(code) {
    const ws = this._ws;
    this._ws = null;
    this._welcomed = false;
    this._held = [];
    clearTimeout(this._healthyTimer);
    clearInterval(this._pingTimer);
    for (const waiter of this._pending.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new RequestError("offline", "disconnected"));
    }
    this._pending.clear();
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) {
        try {
          ws.close(code);
        } catch {
          // already closing
        }
      }
    }
  }

  _closed(code, reason) {
    this._discard(1000);
    if (this._stopped) return;
    if (RECONNECT_CODES.has(code)) {
      this._scheduleReconnect(code);
      return;
    }
    this._stopped = true;
    window.removeEventListener("online", this._onOnline);
    this.onStatus("closed", { code, reason });
  }

  _scheduleReconnect(code) {
    this._attempt += 1;
    const ceiling = Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * 2 ** (this._attempt - 1));
    // "Equal jitter": never less than half the step, so clients spread out but still wait.
    let delayMs = ceiling / 2 + Math.random() * (ceiling / 2);
    if (code === 4429) delayMs = Math.max(delayMs, RATE_LIMITED_FLOOR_MS + Math.random() * 1000);
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      this._connect(true);
    }, delayMs);
    this.onStatus("reconnecting", { delayMs, code });
  }
}

// -- the element -------------------------------------------------------------------------

const STYLES = `
:host {
  --sb-accent: #1d4ed8;
  /* What white text sits on (bubbles, badges, the send button): 4.5:1 and up. */
  --sb-accent-fill: #1d4ed8;
  --sb-accent-text: #ffffff;
  --sb-accent-soft: #e8efff;
  --sb-bg: #ffffff;
  --sb-surface: #f3f4f6;
  --sb-border: #d1d5db;
  --sb-text: #111827;
  --sb-muted: #4b5563;
  --sb-focus: #f59e0b;
  --sb-ok: #047857;
  --sb-bad: #b91c1c;
  --sb-warn: #92400e;
  --sb-danger-text: #ffffff;
  display: block;
  height: 560px;
  min-height: 360px;
  font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--sb-text);
}
@media (prefers-color-scheme: dark) {
  :host {
    --sb-accent: #3b82f6;
    --sb-accent-fill: #2563eb;
    --sb-accent-soft: #172554;
    --sb-bg: #111827;
    --sb-surface: #1f2937;
    --sb-border: #374151;
    --sb-text: #f9fafb;
    --sb-muted: #c7ccd4;
    --sb-ok: #34d399;
    --sb-bad: #f87171;
    --sb-warn: #fbbf24;
    --sb-danger-text: #111827;
  }
}
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
.sb {
  display: flex; flex-direction: column; height: 100%;
  background: var(--sb-bg); border: 1px solid var(--sb-border); border-radius: 12px;
  overflow: hidden;
}
header {
  display: flex; align-items: center; justify-content: space-between; gap: 8px;
  padding: 10px 14px; border-bottom: 1px solid var(--sb-border); background: var(--sb-surface);
}
.heading { font-weight: 600; margin: 0; font-size: 1rem; }
.connection { display: flex; align-items: center; gap: 8px; font-size: 0.875rem; }
.status { color: var(--sb-muted); }
.status::before {
  content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%;
  margin-right: 6px; background: var(--sb-muted); vertical-align: middle;
}
.status[data-state="open"]::before { background: var(--sb-ok); }
.status[data-state="reconnecting"]::before { background: var(--sb-warn); }
.status[data-state="closed"]::before { background: var(--sb-bad); }
.status[data-state="closed"] { color: var(--sb-bad); }
/* The messages keep a usable height whatever the cards need: the cards scroll instead. */
.log { flex: 1 1 0; min-height: 160px; overflow-y: auto; padding: 12px; overscroll-behavior: contain; }
.empty { color: var(--sb-muted); text-align: center; margin: 24px 8px; }
.messages { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 8px; }
.msg {
  max-width: 85%; padding: 8px 12px; border-radius: 14px; overflow-wrap: anywhere;
  background: var(--sb-surface); align-self: flex-start;
}
.msg[data-role="user"] { align-self: flex-end; background: var(--sb-accent-fill); color: var(--sb-accent-text); }
.msg[data-role="user"] .meta { color: inherit; }
.msg[data-kind="progress"] {
  background: transparent; color: var(--sb-muted); font-size: 0.875rem; font-style: italic;
  padding: 2px 10px; border-left: 3px solid var(--sb-border); border-radius: 0;
}
.msg[data-kind="followup"] { background: var(--sb-accent-soft); border: 1px solid var(--sb-accent); }
.msg[data-kind="notice"] {
  align-self: center; max-width: 95%; background: transparent; color: var(--sb-muted);
  font-size: 0.875rem; text-align: center; border: 1px dashed var(--sb-border);
}
.msg.step {
  align-self: stretch; max-width: none; display: flex; flex-wrap: wrap; align-items: baseline; gap: 8px;
  padding: 3px 10px; border-radius: 6px; background: transparent; font-size: 0.875rem;
  border-left: 3px solid var(--sb-accent);
}
.msg.step[data-outcome="failed"] { border-left-color: var(--sb-bad); }
.msg.step .step-label {
  font-size: 0.7rem; font-weight: 700; text-transform: uppercase; letter-spacing: 0.04em; color: var(--sb-muted);
  min-width: 7.5em;
}
.msg.step .text { flex: 1 1 12em; }
.msg.step time { font-size: 0.75rem; color: var(--sb-muted); font-variant-numeric: tabular-nums; }
.msg.pending { opacity: 0.7; }
.msg.streaming .meta time { visibility: hidden; }
.msg.streaming .text > :last-child::after { content: "…"; opacity: 0.6; }
.msg.failed { outline: 2px solid var(--sb-bad); }
.meta { display: flex; gap: 8px; align-items: baseline; font-size: 0.75rem; color: var(--sb-muted); margin-bottom: 2px; }
.author { font-weight: 600; }
.badge {
  font-size: 0.7rem; font-weight: 700; text-transform: uppercase; letter-spacing: 0.04em;
  padding: 0 6px; border-radius: 999px; background: var(--sb-accent-fill); color: var(--sb-accent-text);
  font-style: normal;
}
.text { margin: 0; }
.text.plain { white-space: pre-wrap; }
.text p { margin: 0; }
.text p + p, .text p + ul, .text p + ol, .text ul + p, .text ol + p { margin-top: 0.5em; }
.text ul, .text ol { margin: 0.25em 0 0; padding-left: 1.3em; }
.text ul { list-style: disc; }
.text ol { list-style: decimal; }
.text li + li { margin-top: 0.15em; }
.text code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, monospace; background: var(--sb-bg); padding: 0 3px; border-radius: 4px; }
.msg[data-kind="progress"] .text p { display: inline; }
.delivery { font-size: 0.75rem; margin-top: 4px; display: flex; gap: 8px; align-items: center; }
.tasks {
  flex: 0 0 auto; max-height: min(40%, calc(100% - 290px)); overflow-y: auto; padding: 8px 12px;
  border-top: 1px solid var(--sb-border); background: var(--sb-surface);
}
.tasks[hidden] { display: none; }
.tasks summary {
  cursor: pointer; margin: 0 0 6px; font-size: 0.8rem; font-weight: 700; text-transform: uppercase;
  letter-spacing: 0.05em; color: var(--sb-muted);
}
.tasks:not([open]) summary { margin-bottom: 0; }
.task-list, .subtasks { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 6px; }
.subtasks { margin-top: 6px; padding-left: 14px; border-left: 2px solid var(--sb-border); }
.subtasks:empty { display: none; }
.chip { border: 1px solid var(--sb-border); border-radius: 10px; padding: 8px 10px; background: var(--sb-bg); }
.chip:focus { outline: none; }
.chip:focus-visible { outline: 3px solid var(--sb-focus); }
.chip-head { display: flex; align-items: baseline; gap: 8px; }
.chip-title { font-weight: 600; flex: 1 1 auto; min-width: 0; overflow-wrap: anywhere; }
.chip-who { margin: 2px 0 0; display: flex; flex-wrap: wrap; gap: 4px 10px; font-size: 0.8rem; color: var(--sb-muted); }
.chip-elapsed { font-variant-numeric: tabular-nums; }
.chip-elapsed:empty { display: none; }
.chip[data-folded="true"] > .chip-who, .chip[data-folded="true"] > .chip-detail { display: none; }
.chip[data-folded="true"] { padding: 4px 10px; display: flex; flex-wrap: wrap; align-items: center; gap: 4px 12px; }
.chip[data-folded="true"] > .chip-head { flex: 1 1 12em; }
.chip[data-folded="true"] > .chip-actions { margin-top: 0; }
.chip[data-folded="true"] > .subtasks { flex-basis: 100%; }
.chip-confirm {
  margin-top: 6px; padding: 8px; border-radius: 8px; border: 1px solid var(--sb-bad);
  display: flex; flex-wrap: wrap; gap: 8px; align-items: center;
}
.chip-confirm[hidden] { display: none; }
.chip-confirm-text { margin: 0; flex: 1 1 100%; font-size: 0.875rem; }
button.danger { background: var(--sb-bad); border-color: var(--sb-bad); color: var(--sb-danger-text); font-weight: 600; }
.chip-state {
  font-size: 0.75rem; font-weight: 700; padding: 1px 8px; border-radius: 999px;
  border: 1px solid currentColor; color: var(--sb-muted); white-space: nowrap;
}
.chip[data-state="working"] .chip-state, .chip[data-state="submitted"] .chip-state { color: var(--sb-accent); }
.chip[data-state="input_required"] .chip-state, .chip[data-state="cancelling"] .chip-state { color: var(--sb-warn); }
.chip[data-state="completed"] .chip-state { color: var(--sb-ok); }
.chip[data-state="failed"] .chip-state, .chip[data-state="interrupted"] .chip-state { color: var(--sb-bad); }
.chip[data-state="working"] .chip-state::before { content: "● "; animation: pulse 1.4s ease-in-out infinite; }
@keyframes pulse { 50% { opacity: 0.3; } }
@media (prefers-reduced-motion: reduce) { .chip[data-state="working"] .chip-state::before { animation: none; } }
.chip-detail {
  margin: 2px 0 0; font-size: 0.85rem; color: var(--sb-muted); white-space: pre-wrap; overflow-wrap: anywhere;
  display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 2; line-clamp: 2; overflow: hidden;
}
.chip-detail:empty { display: none; }
.chip-actions { display: flex; gap: 12px; align-items: center; justify-content: flex-end; font-size: 0.875rem; margin-top: 4px; }
.chip-actions:empty { display: none; }
.chip-open { padding: 6px 2px; }
a { color: var(--sb-accent); }
.msg[data-role="user"] a { color: inherit; }
button {
  font: inherit; border-radius: 8px; border: 1px solid var(--sb-border); background: var(--sb-bg);
  color: var(--sb-text); padding: 6px 12px; cursor: pointer; min-height: 36px;
}
button:disabled, button[aria-disabled="true"] { opacity: 0.55; cursor: not-allowed; }
button.link { border: none; background: none; color: var(--sb-accent); padding: 0 2px; min-height: 0; text-decoration: underline; }
.chip-cancel { padding: 2px 10px; min-height: 32px; }
.problem { margin: 0; padding: 6px 12px; color: var(--sb-bad); font-size: 0.875rem; border-top: 1px solid var(--sb-border); }
.problem:empty { display: none; }
.composer { display: flex; gap: 8px; padding: 10px 12px; border-top: 1px solid var(--sb-border); background: var(--sb-surface); }
.composer[hidden] { display: none; }
textarea {
  flex: 1; font: inherit; font-size: 16px; line-height: 1.4; resize: none; min-height: 44px; max-height: 30vh;
  padding: 10px 12px; border-radius: 10px; border: 1px solid var(--sb-border); background: var(--sb-bg); color: var(--sb-text);
}
.send { background: var(--sb-accent-fill); color: var(--sb-accent-text); border-color: var(--sb-accent-fill); min-height: 44px; padding: 0 18px; font-weight: 600; }
:focus-visible { outline: 3px solid var(--sb-focus); outline-offset: 2px; }
textarea:focus-visible { outline-offset: 0; }
.visually-hidden {
  position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}
@media (max-width: 480px) {
  .sb { border-radius: 0; border-left: none; border-right: none; }
  .msg { max-width: 94%; }
  .tasks { padding: 6px 8px; }
  .log { padding: 8px; }
  header { padding: 8px 10px; }
  .composer { padding: 8px; }
}
`;

let sharedSheet = null;

function adoptStyles(root) {
  // A constructed sheet is not inline style, so a strict style-src CSP allows it.
  if ("adoptedStyleSheets" in Document.prototype && "replaceSync" in CSSStyleSheet.prototype) {
    if (!sharedSheet) {
      sharedSheet = new CSSStyleSheet();
      sharedSheet.replaceSync(STYLES);
    }
    root.adoptedStyleSheets = [sharedSheet];
  } else {
    const style = document.createElement("style");
    style.textContent = STYLES;
    root.append(style);
  }
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function timeLabel(ts) {
  const date = new Date(ts);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

const STEP_LABELS = {
  "tool.called": "Tool call",
  "tool.returned": "Result",
  "tool.refused": "Not called",
  "instruction.received": "Instructions",
  "instruction.acknowledged": "Acknowledged",
  "task.started": "Sub-task",
};

function stepLabel(action, outcome) {
  if (action === "tool.returned" && outcome === "failed") return "Failed";
  return STEP_LABELS[action] ?? "Step";
}

function stepTime(ts) {
  const date = new Date(ts);
  return Number.isNaN(date.getTime())
    ? ""
    : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function serverBase(attribute) {
  try {
    return new URL(attribute || window.location.origin, window.location.href);
  } catch {
    return new URL(window.location.origin);
  }
}

let instances = 0;

// Node's test runner imports this module for StreamConnection: no DOM there.
/**
 * A button that cannot act now but keeps the focus: `aria-disabled` rather than
 * `disabled`, which would drop the keyboard user's focus to the page (a card's Cancel
 * while the task is cancelling). Its click handler checks the attribute.
 */
function blockButton(button, blocked) {
  button.setAttribute("aria-disabled", String(Boolean(blocked)));
}

const BaseElement = globalThis.HTMLElement ?? class {};

export class SwitchboardChat extends BaseElement {
  static observedAttributes = ["token", "conversation-id", "chat-id", "server"];

  constructor() {
    super();
    this._token = null;
    this._tokenCallback = null;
    this._refreshTimer = null;
    this._sub = null;
    this._connection = null;
    this._tasks = new Map(); // task id → {view, node}
    this._progressLines = new Map(); // task id → its one progress line in the conversation
    this._deltas = new DeltaAssembler();
    this._streaming = new Map(); // message id → the reply being written, until it is stored
    this._ticker = null; // updates the running cards' elapsed time
    this._outbox = []; // messages typed here, until the stream shows them stored
    this._chatTaskId = null; // chat mode: the task this chat belongs to
    this._creating = false;
    this._adopting = false;
    this._startQueued = false;
    // The last seq shown, kept across connections of the same stream: a new connection
    // (a new token, "Use here", the element moved) resumes after it, never from 0.
    this._seq = 0;
    this._uid = `sb${++instances}`;
    const root = this.attachShadow({ mode: "open" });
    adoptStyles(root);
    this._build(root);
  }

  // -- public API --------------------------------------------------------------------

  get token() {
    return this._token ?? this.getAttribute("token");
  }

  set token(value) {
    this._token = value || null;
    this._tokenChanged();
  }

  /** An async function giving a new token for the same person (see the top of this file). */
  get tokenCallback() {
    return this._tokenCallback;
  }

  set tokenCallback(value) {
    this._tokenCallback = typeof value === "function" ? value : null;
    this._scheduleRefresh();
  }

  get conversationId() {
    return this.getAttribute("conversation-id");
  }

  set conversationId(value) {
    if (value) this.setAttribute("conversation-id", value);
    else this.removeAttribute("conversation-id");
  }

  get chatId() {
    return this.getAttribute("chat-id");
  }

  set chatId(value) {
    if (value) this.setAttribute("chat-id", value);
    else this.removeAttribute("chat-id");
  }

  get server() {
    return serverBase(this.getAttribute("server")).origin;
  }

  set server(value) {
    if (value) this.setAttribute("server", value);
    else this.removeAttribute("server");
  }

  /** The highest seq shown: what a reconnect resumes after. */
  get lastSeq() {
    return this._seq;
  }

  /** Put *text* in the message box, ready to send, and focus it. */
  suggest(text) {
    this._input.value = text;
    this._autosize();
    this._input.focus();
    this._input.setSelectionRange(text.length, text.length);
  }

  // -- lifecycle ---------------------------------------------------------------------

  connectedCallback() {
    // A property set before this element was defined shadows the accessor: re-set it.
    for (const name of ["token", "tokenCallback", "conversationId", "chatId", "server"]) {
      if (Object.prototype.hasOwnProperty.call(this, name)) {
        const value = this[name];
        delete this[name];
        this[name] = value;
      }
    }
    this._queueStart();
  }

  disconnectedCallback() {
    clearInterval(this._ticker);
    this._ticker = null;
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    this._connection?.stop();
    this._connection = null;
  }

  attributeChangedCallback(name, oldValue, newValue) {
    if (oldValue === newValue || this._adopting) return;
    if (name === "token") {
      this._tokenChanged();
      return;
    }
    // Another conversation, chat or server: a different stream, shown from its start.
    this._connection?.stop();
    this._connection = null;
    this._reset();
    this._queueStart();
  }

  _tokenChanged() {
    this._sub = tokenClaims(this.token || "").sub ?? null;
    // A live socket keeps its identity and is renewed with the new token (a token for
    // someone else is refused by the server and changes nothing); the token matters
    // for the next hello too, and revives a widget that stopped for want of one.
    if (!this._connection) this._queueStart();
    else this._sendRefresh();
  }

  /** Send the current token as `refresh` on the live socket, then plan the next one. */
  async _sendRefresh() {
    const connection = this._connection;
    if (!connection?.open || !this.token) return;
    try {
      await connection.request({ type: "refresh", token: this.token });
    } catch {
      // Refused or offline: the socket closes at expiry (4401), or its hello carries it.
    }
    if (connection === this._connection) this._scheduleRefresh();
  }

  /** Before the token expires, ask the host page for a new one (tokenCallback). */
  _scheduleRefresh() {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    if (!this._tokenCallback || !this._connection?.open) return;
    const delayMs = refreshDelayMs(this.token);
    if (delayMs === null) return;
    this._refreshTimer = setTimeout(() => this._renew(), delayMs);
  }

  async _renew() {
    this._refreshTimer = null;
    let token = null;
    try {
      token = await this._tokenCallback?.();
    } catch {
      token = null; // the host could not give one: the socket ends at expiry (4401)
    }
    if (typeof token !== "string" || !token || token === this.token) return;
    this._token = token;
    this._sub = tokenClaims(token).sub ?? null;
    await this._sendRefresh();
  }

  _queueStart() {
    if (this._startQueued) return;
    this._startQueued = true;
    // After the current task: the host may set several attributes in a row.
    queueMicrotask(() => {
      this._startQueued = false;
      this._start();
    });
  }

  async _start() {
    if (!this.isConnected || this._connection || this._creating) return;
    if (!this.token) {
      this._setStatus("idle", "Waiting for sign-in…");
      return;
    }
    const chatId = this.chatId;
    this._heading.textContent = this.getAttribute("heading") || (chatId ? "Sub-agent chat" : "Chat");
    this._composer.hidden = Boolean(chatId) && !this._chatTaskId;
    this._input.placeholder = chatId ? "New instructions for this sub-agent…" : "Message…";
    let path;
    let eventsPath;
    if (chatId) {
      path = `/v1/chats/${encodeURIComponent(chatId)}/ws`;
      eventsPath = `/v1/chats/${encodeURIComponent(chatId)}/events`;
    } else {
      const conversationId = this.conversationId || (await this._createConversation());
      if (!conversationId || this._connection || !this.isConnected) return;
      if (conversationId !== this.conversationId) return; // the attribute change restarts
      path = `/v1/conversations/${encodeURIComponent(conversationId)}/ws`;
      eventsPath = `/v1/conversations/${encodeURIComponent(conversationId)}/events`;
    }
    const base = serverBase(this.getAttribute("server"));
    const wsUrl = new URL(path, base);
    wsUrl.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    const connection = new StreamConnection({
      url: wsUrl.href,
      hello: () => ({ token: this.token, client: chatId ? "viewer" : "widget" }),
      fetchAfter: async (after, limit) => {
        const url = new URL(eventsPath, base);
        url.searchParams.set("after", String(after));
        url.searchParams.set("limit", String(limit));
        const answer = await fetch(url, { headers: { authorization: `Bearer ${this.token}` }, cache: "no-store" });
        if (!answer.ok) throw new Error(`events: HTTP ${answer.status}`);
        return (await answer.json()).events ?? [];
      },
      onEvent: (event) => this._onEvent(event),
      onStatus: (state, detail) => this._onConnection(state, detail),
      onWelcome: () => this._log.setAttribute("aria-busy", "true"),
      onReplayed: () => this._onReplayed(),
      onResync: () => this._reset(),
      onDelta: (frame) => this._onDelta(frame),
    });
    connection.lastSeq = this._seq;
    this._connection = connection;
    connection.start();
  }

  async _createConversation() {
    this._creating = true;
    this._setStatus("connecting", "Connecting…");
    let attempt = 0;
    try {
      while (this.isConnected && this.token && !this.conversationId) {
        try {
          const answer = await fetch(new URL("/v1/conversations", serverBase(this.getAttribute("server"))), {
            method: "POST",
            headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
            body: "{}",
            cache: "no-store",
          });
          if (answer.status === 201) {
            const { conversation_id: conversationId, chat_id: chatId } = await answer.json();
            this._emit("switchboard-conversation", { conversationId, chatId });
            // Set without a restart: this start goes on with it.
            this._adopting = true;
            this.setAttribute("conversation-id", conversationId);
            this._adopting = false;
            return conversationId;
          }
          if (answer.status === 401) {
            this._stopWith(4401, CLOSE_MESSAGES[4401]);
            this._emit("switchboard-unauthorized", {});
            return null;
          }
          if (answer.status < 500 && answer.status !== 429) {
            this._stopWith(answer.status, "Could not start a conversation.");
            return null;
          }
        } catch {
          // the network: try again below
        }
        attempt += 1;
        const ceiling = Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * 2 ** attempt);
        this._setStatus("reconnecting", "Reconnecting…");
        await new Promise((resolve) => setTimeout(resolve, ceiling / 2 + (Math.random() * ceiling) / 2));
      }
      return this.conversationId;
    } finally {
      this._creating = false;
    }
  }

  // -- building ----------------------------------------------------------------------

  _build(root) {
    const inputId = `${this._uid}-input`;
    this._status = el("span", { class: "status", role: "status", "data-state": "idle", text: "" });
    this._retry = el("button", { type: "button", class: "link retry", text: "Retry now", hidden: true });
    this._retry.addEventListener("click", () => this._connection?.retryNow());
    this._reclaim = el("button", { type: "button", class: "link reclaim", text: "Use here", hidden: true });
    this._reclaim.addEventListener("click", () => {
      this._connection = null;
      this._queueStart();
    });
    this._heading = el("h2", { class: "heading", text: "Chat" });
    this._messages = el("ol", {
      class: "messages",
      "aria-live": "polite",
      "aria-relevant": "additions",
      "aria-label": "Messages",
    });
    this._empty = el("p", { class: "empty", text: "No messages yet. Say hello!" });
    this._log = el("div", { class: "log" }, this._empty, this._messages);
    this._taskList = el("ul", { class: "task-list" });
    this._tasksSummary = el("summary", { text: "Background work" });
    // A disclosure, so that on a small screen the tasks can be folded away.
    this._tasksBox = el("details", { class: "tasks", open: true, hidden: true }, this._tasksSummary, this._taskList);
    this._problem = el("p", { class: "problem", role: "alert" });
    this._input = el("textarea", {
      id: inputId,
      rows: 1,
      maxLength: MAX_TEXT_CHARS,
      placeholder: "Message…",
      enterKeyHint: "send",
      autocomplete: "off",
    });
    this._sendButton = el("button", { type: "submit", class: "send", text: "Send" });
    this._composer = el(
      "form",
      { class: "composer" },
      el("label", { class: "visually-hidden", htmlFor: inputId, text: "Message" }),
      this._input,
      this._sendButton,
    );
    this._composer.addEventListener("submit", (event) => {
      event.preventDefault();
      this._submit();
    });
    this._input.addEventListener("keydown", (event) => {
      // Enter sends; Shift+Enter is a new line; an IME composition keeps its Enter.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this._submit();
      }
    });
    this._input.addEventListener("input", () => this._autosize());
    root.append(
      el(
        "section",
        { class: "sb", "aria-label": "Chat" },
        el("header", {}, this._heading, el("div", { class: "connection" }, this._status, this._retry, this._reclaim)),
        this._log,
        this._tasksBox,
        this._problem,
        this._composer,
      ),
    );
  }

  _reset() {
    this._messages.replaceChildren();
    this._taskList.replaceChildren();
    this._tasksBox.hidden = true;
    this._empty.hidden = false;
    this._tasks.clear();
    this._progressLines.clear();
    this._dropStreaming();
    clearInterval(this._ticker);
    this._ticker = null;
    this._outbox = [];
    this._chatTaskId = null;
    this._seq = 0;
    this._problem.textContent = "";
  }

  _autosize() {
    this._input.style.height = "auto";
    this._input.style.height = `${this._input.scrollHeight + 2}px`;
  }

  // -- connection state --------------------------------------------------------------

  _onConnection(state, detail) {
    if (state === "open") {
      this._setStatus("open", "Connected");
      this._scheduleRefresh();
    } else if (state === "connecting") {
      this._setStatus("connecting", "Connecting…");
    } else if (state === "reconnecting") {
      this._setStatus("reconnecting", "Reconnecting…");
      this._markUnconfirmed();
      this._dropStreaming();
    } else if (state === "closed") {
      const code = detail.code;
      this._connection = null;
      clearTimeout(this._refreshTimer);
      this._refreshTimer = null;
      let text = CLOSE_MESSAGES[code] ?? `Disconnected (${code}).`;
      if (code === 4404 && this.chatId) text = "This chat was not found.";
      this._setStatus("closed", text, code);
      this._reclaim.hidden = code !== 4409;
      this._markUnconfirmed();
      this._dropStreaming();
      this._emit("switchboard-close", { code, reason: detail.reason ?? "" });
      if (code === 4401) this._emit("switchboard-unauthorized", {});
    }
    this._syncControls();
  }

  _stopWith(code, text) {
    this._setStatus("closed", text, code);
    this._emit("switchboard-close", { code, reason: "" });
  }

  _setStatus(state, text, code) {
    this._status.dataset.state = state;
    if (code !== undefined) this._status.dataset.code = String(code);
    else delete this._status.dataset.code;
    this._status.textContent = text;
    this._retry.hidden = state !== "reconnecting" || !this._connection;
    if (state !== "closed") this._reclaim.hidden = true;
    this._emit("switchboard-status", { state, code: code ?? null });
  }

  _syncControls() {
    const open = Boolean(this._connection?.open);
    for (const { view, node } of this._tasks.values()) {
      const button = node.querySelector(":scope > .chip-actions > .chip-cancel");
      if (button && button.dataset.busy !== "true") blockButton(button, !open || view.state === "cancelling");
    }
  }

  _onReplayed() {
    this._log.removeAttribute("aria-busy");
    // Messages sent before a drop that the replay did not show were never stored.
    for (const item of this._outbox) {
      if (item.state === "unconfirmed") this._markFailed(item, "Not delivered.");
    }
    this._flushOutbox();
    this._syncControls();
    this._scrollToEnd();
  }

  // -- stream events -----------------------------------------------------------------

  _onEvent(event) {
    this._seq = event.seq;
    if (event.type === "message") this._onMessage(event);
    else if (event.type === "task" && event.task) this._onTask(event.task, true);
  }

  /** A piece of a reply being written: shown at the end until its message comes. */
  _onDelta(frame) {
    if (this.chatId && frame.chat_id && frame.chat_id !== this.chatId) return;
    const text = this._deltas.add(frame);
    if (text === null) return;
    const stick = this._nearEnd();
    let node = this._streaming.get(frame.message_id);
    if (!node) {
      node = this._messageNode({ role: "agent", kind: "reply", text, ts: new Date().toISOString() });
      delete node.dataset.seq;
      node.classList.add("streaming");
      node.dataset.messageId = frame.message_id;
      // Screen readers hear the reply once, when it is stored, not piece by piece.
      node.setAttribute("aria-hidden", "true");
      this._streaming.set(frame.message_id, node);
      this._messages.append(node);
      this._empty.hidden = true;
    } else {
      node.querySelector(".text").replaceChildren(renderMarkdown(text, document));
    }
    if (stick) this._scrollToEnd();
  }

  /** Deltas whose message will not come on this socket (it closed): the replay has it. */
  _dropStreaming() {
    this._deltas.clear();
    for (const node of this._streaming.values()) node.remove();
    this._streaming.clear();
  }

  _onMessage(event) {
    if (event.message_id && this._streaming.has(event.message_id)) {
      this._deltas.take(event.message_id);
      this._streaming.get(event.message_id).remove();
      this._streaming.delete(event.message_id);
    }
    if (this._updateProgressLine(event)) return;
    const stick = this._nearEnd();
    const mine = event.role === "user" && event.author?.id && event.author.id === this._sub;
    const item = mine ? this._outboxMatch(event) : null;
    const node = this._messageNode(event);
    if (item) {
      this._outbox.splice(this._outbox.indexOf(item), 1);
      item.node.replaceWith(node);
    }
    this._place(node, event.seq);
    if (event.kind === "progress" && event.task_id && !this.chatId) {
      this._progressLines.set(event.task_id, node);
    }
    this._empty.hidden = true;
    if (stick || mine) this._scrollToEnd();
  }

  /**
   * A task's progress in the conversation: one line per task, updated in place (its
   * card shows the same, and more). True when *event* only updated an existing line.
   */
  _updateProgressLine(event) {
    if (this.chatId || event.kind !== "progress" || !event.task_id) return false;
    const line = this._progressLines.get(event.task_id);
    if (!line?.isConnected) return false;
    line.dataset.lastSeq = String(event.seq);
    line.querySelector(".text").replaceChildren(renderMarkdown(event.text ?? "", document));
    const time = line.querySelector("time");
    time.dateTime = event.ts;
    time.textContent = timeLabel(event.ts);
    return true;
  }

  _messageNode(event) {
    if (event.kind === "step") return this._stepNode(event);
    const mine = event.role === "user" && event.author?.id === this._sub;
    const author = mine ? "You" : event.author?.name || (event.role === "user" ? "Person" : "Agent");
    const badge =
      event.kind === "followup" ? "Update" : event.kind === "notice" ? "Notice" : null;
    return el(
      "li",
      {
        class: "msg",
        "data-seq": String(event.seq),
        "data-role": event.role,
        "data-kind": event.kind,
        "data-task-id": event.task_id,
      },
      el(
        "div",
        { class: "meta" },
        el("span", { class: "author", text: author }),
        badge ? el("span", { class: "badge", text: badge }) : null,
        el("time", { dateTime: event.ts, text: timeLabel(event.ts) }),
      ),
      this._textNode(event),
    );
  }

  /**
   * One step of a sub-agent's work (PROTOCOL.md, additions: a sub-agent's steps): a
   * compact line with what kind of step it was, its words, and when; a child task's
   * step links to that task's chat.
   */
  _stepNode(event) {
    const step = event.step && typeof event.step === "object" ? event.step : {};
    const action = typeof step.action === "string" ? step.action : "";
    const label = stepLabel(action, step.outcome);
    const text = el("span", { class: "text plain", text: event.text ?? "" });
    let link = null;
    if (action === "task.started" && typeof step.chat_id === "string" && step.chat_id) {
      link = el("a", {
        class: "step-open",
        href: new URL(`/chats/${encodeURIComponent(step.chat_id)}`, serverBase(this.getAttribute("server"))).href,
        text: "Open its chat",
        "aria-label": `Open the chat of ${step.title || "the sub-task"}`,
      });
    }
    return el(
      "li",
      {
        class: "msg step",
        "data-seq": String(event.seq),
        "data-role": event.role,
        "data-kind": "step",
        "data-action": action,
        "data-outcome": typeof step.outcome === "string" ? step.outcome : undefined,
        "data-task-id": event.task_id,
      },
      el("span", { class: "step-label", text: label }),
      text,
      link,
      el("time", { dateTime: event.ts, text: stepTime(event.ts) }),
    );
  }

  _textNode(event) {
    // What a person typed is shown as typed; agents' messages may carry simple structure.
    if (event.role === "user") return el("p", { class: "text plain", text: event.text ?? "" });
    return el("div", { class: "text" }, renderMarkdown(event.text ?? "", document));
  }

  /** Insert *node* in seq order: before the first later message or any pending one. */
  _place(node, seq) {
    let before = null;
    for (let child = this._messages.lastElementChild; child; child = child.previousElementSibling) {
      const other = Number(child.dataset.seq);
      if (child.dataset.seq === undefined || other > seq) before = child;
      else break;
    }
    this._messages.insertBefore(node, before);
  }

  _onTask(view, fromStream) {
    const known = this._tasks.get(view.id);
    if (known) {
      const was = known.view;
      // The first terminal state wins and never changes; a late answer never regresses.
      if (isTerminal(was.state)) return;
      if (!fromStream && (STATE_RANK[view.state] ?? 0) < (STATE_RANK[was.state] ?? 0)) return;
      if (!fromStream && view.updated_at && was.updated_at && view.updated_at < was.updated_at) return;
      known.view = view;
      this._renderChip(known);
    } else {
      const entry = { view, node: this._chipNode(view) };
      this._tasks.set(view.id, entry);
      this._renderChip(entry);
      const parent = view.parent_id ? this._tasks.get(view.parent_id) : null;
      const list = parent ? parent.node.querySelector(":scope > .subtasks") : this._taskList;
      list.append(entry.node);
      this._tasksBox.hidden = false;
    }
    if (this.chatId && view.chat_id === this.chatId) {
      this._chatTaskId = view.id;
      this._composer.hidden = false;
      this._syncComposer();
    }
    this._emit("switchboard-task", { task: view });
  }

  _chipNode(view) {
    const title = view.title || "Background task";
    const cancel = el("button", {
      type: "button",
      class: "chip-cancel",
      text: "Cancel",
      "aria-label": `Cancel: ${title}`,
    });
    cancel.addEventListener("click", () => {
      if (cancel.getAttribute("aria-disabled") !== "true") this._askCancel(view.id, cancel);
    });
    const own = this.chatId && view.chat_id === this.chatId;
    const link = own
      ? null
      : el("a", {
          class: "chip-open",
          href: new URL(`/chats/${encodeURIComponent(view.chat_id)}`, serverBase(this.getAttribute("server"))).href,
          target: "_blank",
          rel: "noopener",
          text: "Open chat",
          "aria-label": `Open the chat of ${title} in a new tab`,
        });
    const confirm = el(
      "div",
      { class: "chip-confirm", role: "group", hidden: true },
      el("p", { class: "chip-confirm-text" }),
      el("button", { type: "button", class: "chip-confirm-yes danger" }),
      el("button", { type: "button", class: "chip-confirm-no", text: "Keep running" }),
    );
    const yes = confirm.querySelector(".chip-confirm-yes");
    const no = confirm.querySelector(".chip-confirm-no");
    yes.addEventListener("click", () => {
      confirm.hidden = true;
      this._cancel(view.id, cancel);
      cancel.focus();
    });
    no.addEventListener("click", () => {
      confirm.hidden = true;
      cancel.focus();
    });
    confirm.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        no.click();
      }
    });
    return el(
      "li",
      { class: "chip", "data-task-id": view.id, "data-depth": String(view.depth ?? 1) },
      el(
        "div",
        { class: "chip-head" },
        el("span", { class: "chip-title", text: title }),
        el("span", { class: "chip-state" }),
      ),
      el(
        "p",
        { class: "chip-who" },
        el("span", { class: "chip-agent", text: view.agent?.name ?? "" }),
        el("span", { class: "chip-elapsed" }),
      ),
      el("p", { class: "chip-detail" }),
      el("div", { class: "chip-actions" }, link, cancel),
      confirm,
      el("ul", { class: "subtasks", "aria-label": `Started by ${title}` }),
    );
  }

  _renderChip({ view, node }) {
    const ended = isTerminal(view.state);
    node.dataset.state = view.state;
    node.querySelector(":scope > .chip-head > .chip-title").textContent = view.title || "Background task";
    node.querySelector(":scope > .chip-head > .chip-state").textContent = stateLabel(view.state);
    const agent = node.querySelector(":scope > .chip-who > .chip-agent");
    agent.textContent = view.agent?.name ?? "";
    const detail = ended ? view.result : view.progress;
    node.querySelector(":scope > .chip-detail").textContent = detail ?? "";
    this._renderElapsed(view, node);
    const cancel = node.querySelector(":scope > .chip-actions > .chip-cancel");
    if (!cancel) {
      // ended: no cancel button any more
    } else if (ended) {
      // A removed button takes the focus with it: keep it on this card instead.
      const hadFocus = this.shadowRoot.activeElement === cancel;
      cancel.remove();
      if (hadFocus) {
        node.tabIndex = -1;
        (node.querySelector(":scope > .chip-actions > .chip-open") ?? node).focus();
      }
      node.querySelector(":scope > .chip-confirm").hidden = true;
    } else {
      cancel.textContent = view.state === "cancelling" ? "Cancelling…" : "Cancel";
      blockButton(cancel, view.state === "cancelling" || !this._connection?.open);
    }
    if (this._chatTaskId === view.id) this._syncComposer();
    this._countTasks();
  }

  _renderElapsed(view, node) {
    const ms = elapsedMs(view, isTerminal(view.state));
    const label = node.querySelector(":scope > .chip-who > .chip-elapsed");
    const text = elapsedLabel(ms);
    if (label.textContent !== text) {
      label.textContent = text;
      label.title = isTerminal(view.state) ? `Took ${elapsedWords(ms)}` : `Running for ${elapsedWords(ms)}`;
    }
  }

  _tick() {
    let running = 0;
    for (const { view, node } of this._tasks.values()) {
      if (isTerminal(view.state)) continue;
      running += 1;
      this._renderElapsed(view, node);
    }
    if (!running) {
      clearInterval(this._ticker);
      this._ticker = null;
    }
  }

  _countTasks() {
    const views = [...this._tasks.values()].map((entry) => entry.view);
    const total = views.length;
    let running = 0;
    for (const { view, node } of this._tasks.values()) {
      const ended = isTerminal(view.state);
      if (!ended) running += 1;
      // Many cards: the ended ones fold to one line, the running ones stay whole.
      if (folded(total, ended)) node.dataset.folded = "true";
      else delete node.dataset.folded;
    }
    this._tasksSummary.textContent = `Background work · ${cardsSummary(views, isTerminal)}`;
    this._tasksBox.dataset.running = String(running);
    this._tasksBox.dataset.many = String(total > 3);
    if (running && this._ticker === null) this._ticker = setInterval(() => this._tick(), 1000);
  }

  /** Cancel at once, or, for a task with work of its own below it, after a confirmation. */
  _askCancel(taskId, button) {
    const below = descendants(
      [...this._tasks.values()].map((entry) => entry.view),
      taskId,
    ).filter((id) => !isTerminal(this._tasks.get(id)?.view.state));
    const node = this._tasks.get(taskId)?.node;
    if (!below.length || !node) {
      this._cancel(taskId, button);
      return;
    }
    const title = this._tasks.get(taskId).view.title || "this task";
    const confirm = node.querySelector(":scope > .chip-confirm");
    const noun = below.length === 1 ? "sub-task" : "sub-tasks";
    confirm.querySelector(".chip-confirm-text").textContent =
      `Cancel “${title}” and the ${below.length} ${noun} it started? This cannot be undone.`;
    confirm.setAttribute("aria-label", `Confirm: cancel ${title}`);
    confirm.querySelector(".chip-confirm-yes").textContent = `Cancel all ${below.length + 1}`;
    confirm.hidden = false;
    confirm.querySelector(".chip-confirm-yes").focus();
  }

  async _cancel(taskId, button) {
    blockButton(button, true);
    button.dataset.busy = "true";
    const frame = { type: "task.cancel" };
    // On a chat's own socket the task is implied (PROTOCOL.md: task_id may be omitted).
    if (!(this.chatId && taskId === this._chatTaskId)) frame.task_id = taskId;
    try {
      const answer = await this._connection.request(frame);
      if (answer.task) this._onTask(answer.task, false);
    } catch (error) {
      this._showProblem(this._problemText(error, "Could not cancel"));
    } finally {
      delete button.dataset.busy;
      this._syncControls();
    }
  }

  _syncComposer() {
    if (!this.chatId) return;
    const task = this._tasks.get(this._chatTaskId)?.view;
    const ended = task ? isTerminal(task.state) : true;
    this._input.disabled = ended;
    this._sendButton.disabled = ended;
    this._input.placeholder = ended ? "This task has ended." : "New instructions for this sub-agent…";
  }

  // -- sending -----------------------------------------------------------------------

  _submit() {
    const text = this._input.value.trim();
    if (!text || this._input.disabled) return;
    if (!this._connection && this._status.dataset.state === "closed") {
      this._showProblem("Not connected.");
      return;
    }
    this._input.value = "";
    this._autosize();
    const node = el(
      "li",
      { class: "msg pending", "data-role": "user", "data-kind": "reply", "data-pending": "true" },
      el("div", { class: "meta" }, el("span", { class: "author", text: "You" }), el("span", { class: "delivery-state", text: "Sending…" })),
      el("p", { class: "text", text }),
    );
    this._messages.append(node);
    this._empty.hidden = true;
    this._outbox.push({ text, node, state: "queued", seq: null });
    this._scrollToEnd();
    this._flushOutbox();
  }

  _flushOutbox() {
    const connection = this._connection;
    if (!connection?.open || !connection.replayed) return; // sent once the replay is in
    for (const item of this._outbox) {
      if (item.state !== "queued") continue;
      item.state = "sent";
      connection
        .request({ type: "say", text: item.text })
        .then((ack) => {
          if (!this._outbox.includes(item)) return; // the stream showed it already
          item.state = "acked";
          item.seq = typeof ack.seq === "number" ? ack.seq : null;
          if (item.seq !== null && item.seq <= connection.lastSeq) {
            // Stored and already applied, yet not matched: drop the stand-in.
            item.node.remove();
            this._outbox.splice(this._outbox.indexOf(item), 1);
          }
        })
        .catch((error) => {
          if (!this._outbox.includes(item)) return;
          if (error.code === "offline" || error.code === "timeout") {
            // Maybe stored, maybe not: the replay after reconnecting tells.
            item.state = "unconfirmed";
          } else {
            this._markFailed(item, this._problemText(error, "Not sent"));
          }
        });
    }
  }

  _outboxMatch(event) {
    return (
      this._outbox.find((item) => item.seq === event.seq) ??
      this._outbox.find((item) => item.seq === null && item.state !== "queued" && item.state !== "failed" && item.text === event.text) ??
      null
    );
  }

  _markUnconfirmed() {
    for (const item of this._outbox) {
      if (item.state === "sent") item.state = "unconfirmed";
    }
  }

  _markFailed(item, why) {
    item.state = "failed";
    item.node.classList.add("failed");
    const delivery = item.node.querySelector(".delivery-state");
    delivery.textContent = why;
    const retry = el("button", { type: "button", class: "link resend", text: "Retry" });
    retry.addEventListener("click", () => {
      retry.remove();
      item.node.classList.remove("failed");
      delivery.textContent = "Sending…";
      item.state = "queued";
      this._flushOutbox();
    });
    delivery.after(retry);
  }

  _problemText(error, what) {
    const reasons = {
      offline: "you are offline",
      timeout: "the server did not answer",
      rate_limited: "too many messages, wait a moment",
      not_found: "it no longer exists",
      conflict: "the task has already ended",
      too_large: "the message is too long",
    };
    return `${what}: ${reasons[error.code] ?? error.message ?? "error"}.`;
  }

  _showProblem(text) {
    this._problem.textContent = text;
    clearTimeout(this._problemTimer);
    this._problemTimer = setTimeout(() => {
      this._problem.textContent = "";
    }, 8000);
  }

  // -- scrolling and events ----------------------------------------------------------

  _nearEnd() {
    const log = this._log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }

  _scrollToEnd() {
    this._log.scrollTop = this._log.scrollHeight;
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }
}

if (globalThis.customElements && !customElements.get("switchboard-chat")) {
  customElements.define("switchboard-chat", SwitchboardChat);
}
