// The Chats view: the chats this person may see, refreshed every 2 s while visible.
//
// Polling rather than sockets on purpose: a conversation has one live socket, which
// its widget holds, and one request every 2 s is cheaper than a socket per task chat.

import { stateLabel } from "./widget.js";
import { getToken } from "./token.js";

const POLL_MS = 2000;
const MAX_BACKOFF_MS = 15_000;

const list = document.getElementById("chats");
const statusLine = document.getElementById("status");
const problem = document.getElementById("problem");
const empty = document.getElementById("empty");
const nodes = new Map(); // chat id → its <li>, reused so focus and scroll survive a refresh

let token = null;
let timer = null;
let failures = 0;
let refreshedToken = false;
let running = false;

function dateLabel(ts) {
  const date = new Date(ts);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** Make *parent*'s children exactly *children*, moving only what is out of place. */
function syncChildren(parent, children) {
  children.forEach((child, index) => {
    if (parent.children[index] !== child) parent.insertBefore(child, parent.children[index] ?? null);
  });
  while (parent.children.length > children.length) parent.lastElementChild.remove();
}

function chatNode(chat) {
  let node = nodes.get(chat.id);
  if (!node) {
    node = make("li", chat.kind === "task" ? "task-chat" : "conversation");
    node.dataset.chatId = chat.id;
    node.dataset.kind = chat.kind;
    const link = make("a", "chat-link");
    link.href = `/chats/${encodeURIComponent(chat.id)}`;
    const row = chat.kind === "task" ? node : make("div", "conversation-head");
    row.append(link);
    if (chat.kind === "task") {
      row.append(make("span", "state"));
    }
    row.append(make("span", "chat-meta"));
    if (chat.kind !== "task") {
      node.append(row, make("ul", "task-chats"));
    }
    nodes.set(chat.id, node);
  }
  const agent = chat.agent?.name ?? "agent";
  let name = chat.title || "Background task";
  if (chat.kind !== "task") {
    // A conversation's title is usually its agent's name: say what it is instead.
    name = !chat.title || chat.title === agent ? `Conversation with ${agent}` : chat.title;
  }
  setText(node.querySelector(".chat-link"), name);
  if (chat.kind === "task") {
    const state = chat.state ?? "submitted";
    node.dataset.state = state;
    if (chat.task_id) node.dataset.taskId = chat.task_id;
    const badge = node.querySelector(".state");
    badge.dataset.state = state;
    setText(badge, stateLabel(state));
    setText(node.querySelector(".chat-meta"), `${agent} · ${dateLabel(chat.created_at)}`);
  } else {
    setText(node.querySelector(".chat-meta"), `started ${dateLabel(chat.created_at)}`);
  }
  return node;
}

function placeholderConversation(conversationId) {
  const id = `conversation:${conversationId}`;
  let node = nodes.get(id);
  if (!node) {
    node = make("li", "conversation");
    node.dataset.kind = "conversation";
    node.append(make("div", "conversation-head", "Conversation"), make("ul", "task-chats"));
    nodes.set(id, node);
  }
  return node;
}

function render(chats) {
  // Grouped by conversation, in the order the server listed them (newest first).
  const groups = new Map();
  for (const chat of chats) {
    if (!groups.has(chat.conversation_id)) groups.set(chat.conversation_id, { head: null, tasks: [] });
    const group = groups.get(chat.conversation_id);
    if (chat.kind === "task") group.tasks.push(chat);
    else group.head = chat;
  }
  const seen = new Set(chats.map((chat) => chat.id));
  const top = [];
  for (const [conversationId, group] of groups) {
    const head = group.head ? chatNode(group.head) : placeholderConversation(conversationId);
    syncChildren(head.querySelector(".task-chats"), group.tasks.map(chatNode));
    top.push(head);
  }
  syncChildren(list, top);
  for (const id of nodes.keys()) {
    if (!seen.has(id) && !id.startsWith("conversation:")) nodes.delete(id);
  }
  empty.hidden = chats.length > 0;
}

async function refresh() {
  timer = null;
  if (running) return;
  running = true;
  try {
    await poll();
  } finally {
    running = false;
  }
}

async function poll() {
  try {
    const answer = await fetch("/v1/chats", { headers: { authorization: `Bearer ${token}` }, cache: "no-store" });
    if (answer.status === 401 && !refreshedToken) {
      refreshedToken = true; // once: a second 401 is a real refusal
      token = await getToken({ fresh: true });
      if (token) return schedule(0);
    }
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    const { chats } = await answer.json();
    render(Array.isArray(chats) ? chats : []);
    failures = 0;
    refreshedToken = false;
    statusLine.dataset.state = "live";
    setText(statusLine, "Live: updated every 2 seconds.");
    setText(problem, "");
  } catch {
    failures += 1;
    statusLine.dataset.state = "retrying";
    setText(statusLine, "Reconnecting…");
    if (failures === 3) setText(problem, "The server is not answering; still trying.");
  }
  schedule(Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** Math.max(0, failures - 1)));
}

function schedule(delayMs) {
  clearTimeout(timer);
  timer = null;
  if (document.hidden) return; // resumed by visibilitychange
  timer = setTimeout(refresh, delayMs);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && timer === null && !running) schedule(0);
});

async function main() {
  try {
    token = await getToken();
  } catch {
    setText(problem, "Could not reach the server. Reload the page to try again.");
    return;
  }
  if (!token) {
    statusLine.dataset.state = "signed-out";
    setText(statusLine, "Sign-in needed: this server is not in demo mode.");
    return;
  }
  schedule(0);
}

main();
