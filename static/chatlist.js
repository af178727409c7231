// The Chats view's pure logic: which filter a task's state falls under, what a search
// matches, what is unread, and how the socket's frames make the list. No DOM here, so
// Node's test runner can check it (tests/js).

/** The filters of the Chats view, in the order they are offered. */
export const FILTERS = [
  { id: "all", label: "All" },
  { id: "running", label: "Running" },
  { id: "waiting", label: "Waiting" },
  { id: "done", label: "Done" },
  { id: "failed", label: "Failed" },
  { id: "cancelled", label: "Cancelled" },
];

const GROUPS = {
  submitted: "running",
  working: "running",
  cancelling: "running",
  input_required: "waiting",
  completed: "done",
  failed: "failed",
  interrupted: "failed",
  cancelled: "cancelled",
};

/** The filter a task in *state* is listed under ("running" for a state not known yet). */
export function stateGroup(state) {
  return GROUPS[state] ?? "running";
}

/** Whether task chat *entry* is shown under *filter*. */
export function passesFilter(entry, filter) {
  return filter === "all" || stateGroup(entry.state) === filter;
}

/** Whether *entry* (or the conversation it belongs to, *context*) matches *query*. */
export function matchesQuery(entry, query, context = "") {
  const words = String(query ?? "").toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return true;
  const haystack = [entry.title, entry.agent?.name, entry.progress, context]
    .filter((part) => typeof part === "string")
    .join(" ")
    .toLowerCase();
  return words.every((word) => haystack.includes(word));
}

/** Whether *entry* has news since it was last read (*read*: chat id → last seq read). */
export function isUnread(entry, read) {
  const seen = Number(read?.[entry.id] ?? 0);
  return Number(entry.last_seq ?? 0) > seen;
}

/**
 * The list after one frame of the Chats socket: `chats` replaces it, `chat` puts one
 * entry in (the newest per id). *list* is a Map of id → entry; returns whether it
 * changed. Anything else leaves it as it was.
 */
export function applyFrame(list, frame) {
  if (frame?.type === "chats" && Array.isArray(frame.chats)) {
    list.clear();
    for (const entry of frame.chats) if (entry && typeof entry.id === "string") list.set(entry.id, entry);
    return true;
  }
  if (frame?.type === "chat" && frame.chat && typeof frame.chat.id === "string") {
    list.set(frame.chat.id, frame.chat);
    return true;
  }
  return false;
}

/** The entries newest first (by `created_at`, then id), as the server lists them. */
export function ordered(list) {
  return [...list.values()].sort((a, b) => {
    const at = String(b.created_at ?? "").localeCompare(String(a.created_at ?? ""));
    return at || String(b.id).localeCompare(String(a.id));
  });
}

/** How many task chats fall under each filter: {all, running, waiting, ...}. */
export function filterCounts(entries) {
  const counts = Object.fromEntries(FILTERS.map((f) => [f.id, 0]));
  for (const entry of entries) {
    if (entry.kind !== "task") continue;
    counts.all += 1;
    counts[stateGroup(entry.state)] += 1;
  }
  return counts;
}
