// The pure parts of the widget's task cards: elapsed time, the tree below a task, and
// which cards fold away when there are many. No DOM here, so Node's test runner can
// check them (tests/js).

/** A short duration: "8 s", "2 min 5 s", "1 h 4 min". Negative or unknown is "". */
export function elapsedLabel(ms) {
  if (!Number.isFinite(ms) || ms < 0) return "";
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return seconds % 60 ? `${minutes} min ${seconds % 60} s` : `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
}

/** The words a screen reader hears for *ms*: "2 minutes 5 seconds". */
export function elapsedWords(ms) {
  return elapsedLabel(ms)
    .replace(/(\d+) s\b/, (_, n) => `${n} second${n === "1" ? "" : "s"}`)
    .replace(/(\d+) min\b/, (_, n) => `${n} minute${n === "1" ? "" : "s"}`)
    .replace(/(\d+) h\b/, (_, n) => `${n} hour${n === "1" ? "" : "s"}`);
}

/**
 * How long *view* has run: from `created_at` until now, or until `updated_at` once it
 * has ended (a terminal task never changes again). Milliseconds, or NaN.
 */
export function elapsedMs(view, terminal, nowMs = Date.now()) {
  const start = Date.parse(view?.created_at ?? "");
  const end = terminal ? Date.parse(view?.updated_at ?? "") : nowMs;
  return end - start;
}

/** The ids of every task below *taskId* in *views* (a Map or iterable of TaskViews). */
export function descendants(views, taskId) {
  const children = new Map();
  for (const view of views instanceof Map ? views.values() : views) {
    if (!view?.parent_id) continue;
    if (!children.has(view.parent_id)) children.set(view.parent_id, []);
    children.get(view.parent_id).push(view.id);
  }
  const found = [];
  const seen = new Set([taskId]);
  const queue = [...(children.get(taskId) ?? [])];
  while (queue.length) {
    const id = queue.shift();
    if (seen.has(id)) continue; // a cycle cannot come from the server; never loop on one
    seen.add(id);
    found.push(id);
    queue.push(...(children.get(id) ?? []));
  }
  return found;
}

/** Cards beyond this many are "many": the ended ones fold to one line each. */
export const MANY_CARDS = 3;

/** Whether a card for a task in *state* is shown folded, given *total* cards. */
export function folded(total, terminal) {
  return total > MANY_CARDS && terminal;
}

/** The summary line of the cards: "3 running · 2 done". */
export function cardsSummary(views, isTerminal) {
  let running = 0;
  let ended = 0;
  for (const view of views) {
    if (isTerminal(view.state)) ended += 1;
    else running += 1;
  }
  const parts = [];
  if (running) parts.push(`${running} running`);
  if (ended) parts.push(`${ended} done`);
  return parts.join(" · ") || "none";
}
