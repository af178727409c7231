// The Chats view: the chats this person may see, live over one socket (WS /v1/chats/ws,
// PROTOCOL.md additions), filtered by state, searchable, with a marker on each chat that
// has news since it was last opened; a chat opens in a panel on this page.
//
// The socket sends the whole list, then each chat that appears or changes; it comes
// back by itself with backoff (the widget's StreamConnection), and gets the whole list
// again. What was read is kept in this browser (localStorage): chat id → last seq seen.

import { StreamConnection, isTerminal, stateLabel } from "./widget.js";
import { FILTERS, applyFrame, filterCounts, isUnread, matchesQuery, ordered, passesFilter } from "./chatlist.js";
import { getToken } from "./token.js";

const READ_KEY = "switchboard.chats.read";
const REFRESH_EVERY_MS = 10_000;

const list = document.getElementById("chats");
const statusLine = document.getElementById("status");
const problem = document.getElementById("problem");
const empty = document.getElementById("empty");
const noMatch = document.getElementById("no-match");
const search = document.getElementById("search");
const filters = document.getElementById("filters");
const panel = document.getElementById("panel");
const panelTitle = document.getElementById("panel-title");
const panelState = document.getElementById("panel-state");
const panelAgent = document.getElementById("panel-agent");
const panelTab = document.getElementById("panel-tab");
const panelBody = document.getElementById("panel-body");
const panelClose = document.getElementById("panel-close");

const chats = new Map(); // chat id → the newest ChatEntry the socket sent
const nodes = new Map(); // chat id → its <li>, reused so focus and scroll survive a render
const filterInputs = new Map(); // filter id → its radio input
let filter = "all";
let openId = null;
let opener = null; // the link that opened the panel: focus goes back there on close
let token = null;
let connection = null;
let lastTokenRefresh = 0;

// -- what was read -------------------------------------------------------------------

function readMarks() {
  try {
    const marks = JSON.parse(localStorage.getItem(READ_KEY) || "{}");
    return marks && typeof marks === "object" ? marks : {};
  } catch {
    return {}; // storage disabled or garbled: everything counts as new
  }
}

function markRead(entry) {
  const marks = readMarks();
  if (Number(marks[entry.id] ?? 0) >= Number(entry.last_seq ?? 0)) return;
  marks[entry.id] = Number(entry.last_seq ?? 0);
  try {
    localStorage.setItem(READ_KEY, JSON.stringify(marks));
  } catch {
    // storage full or disabled: the marker shows again on the next visit
  }
}

// -- the DOM -------------------------------------------------------------------------

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function dateLabel(ts) {
  const date = new Date(ts);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** Make *parent*'s children exactly *children*, moving only what is out of place. */
function syncChildren(parent, children) {
  children.forEach((child, index) => {
    if (parent.children[index] !== child) parent.insertBefore(child, parent.children[index] ?? null);
  });
  while (parent.children.length > children.length) parent.lastElementChild.remove();
}

function chatName(chat) {
  const agent = chat.agent?.name ?? "agent";
  if (chat.kind === "task") return chat.title || "Background task";
  // A conversation's title is usually its agent's name: say what it is instead.
  return !chat.title || chat.title === agent ? `Conversation with ${agent}` : chat.title;
}

function chatNode(chat, unread) {
  let node = nodes.get(chat.id);
  if (!node) {
    node = make("li", chat.kind === "task" ? "task-chat" : "conversation");
    node.dataset.chatId = chat.id;
    node.dataset.kind = chat.kind;
    const link = make("a", "chat-link");
    link.href = `/chats/${encodeURIComponent(chat.id)}`;
    link.addEventListener("click", (event) => {
      // A click opens it here; a middle click or ctrl-click still opens a new tab.
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      openChat(chat.id, link);
    });
    const row = chat.kind === "task" ? node : make("div", "conversation-head");
    row.append(link);
    if (chat.kind === "task") row.append(make("span", "state"));
    row.append(make("span", "unread", "New"), make("span", "chat-meta"));
    if (chat.kind !== "task") node.append(row, make("ul", "task-chats"));
    nodes.set(chat.id, node);
  }
  const link = node.querySelector(".chat-link");
  setText(link, chatName(chat));
  const badge = node.querySelector(".unread");
  badge.hidden = !unread;
  node.dataset.unread = String(unread);
  if (chat.id === openId) link.setAttribute("aria-current", "true");
  else link.removeAttribute("aria-current");
  const agent = chat.agent?.name ?? "agent";
  if (chat.kind === "task") {
    const state = chat.state ?? "submitted";
    node.dataset.state = state;
    if (chat.task_id) node.dataset.taskId = chat.task_id;
    const stateBadge = node.querySelector(".state");
    stateBadge.dataset.state = state;
    setText(stateBadge, stateLabel(state));
    const progress = chat.progress && !isTerminal(state) ? ` · ${chat.progress}` : "";
    setText(node.querySelector(".chat-meta"), `${agent} · ${dateLabel(chat.updated_at ?? chat.created_at)}${progress}`);
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

function render() {
  const entries = ordered(chats);
  const marks = readMarks();
  const query = search.value;
  const counts = filterCounts(entries);
  for (const { id, label } of FILTERS) {
    const input = filterInputs.get(id);
    if (input) setText(input.nextElementSibling, `${label} (${counts[id]})`);
  }
  // Grouped by conversation, in the order the server listed them (newest first).
  const groups = new Map();
  for (const chat of entries) {
    if (!groups.has(chat.conversation_id)) groups.set(chat.conversation_id, { head: null, tasks: [] });
    const group = groups.get(chat.conversation_id);
    if (chat.kind === "task") group.tasks.push(chat);
    else group.head = chat;
  }
  const top = [];
  for (const [conversationId, group] of groups) {
    const context = group.head ? chatName(group.head) : "";
    const headMatches = group.head ? matchesQuery(group.head, query) : false;
    const tasks = group.tasks.filter(
      (task) => passesFilter(task, filter) && (headMatches || matchesQuery(task, query, context)),
    );
    const shown = filter === "all" ? headMatches || tasks.length > 0 : tasks.length > 0;
    if (!shown) continue;
    const head = group.head ? chatNode(group.head, isUnread(group.head, marks)) : placeholderConversation(conversationId);
    syncChildren(
      head.querySelector(".task-chats"),
      tasks.map((task) => chatNode(task, isUnread(task, marks))),
    );
    top.push(head);
  }
  syncChildren(list, top);
  for (const id of nodes.keys()) {
    if (!chats.has(id) && !id.startsWith("conversation:")) nodes.delete(id);
  }
  empty.hidden = chats.size > 0;
  noMatch.hidden = chats.size === 0 || top.length > 0;
  if (openId) showPanelHeading(chats.get(openId));
}

function buildFilters() {
  for (const { id, label } of FILTERS) {
    const input = make("input");
    input.type = "radio";
    input.name = "filter";
    input.value = id;
    input.id = `filter-${id}`;
    input.checked = id === filter;
    input.addEventListener("change", () => {
      if (!input.checked) return;
      filter = id;
      render();
    });
    const text = make("span", null, label);
    const wrap = make("label", "filter");
    wrap.htmlFor = input.id;
    wrap.append(input, text);
    filters.append(wrap);
    filterInputs.set(id, input);
  }
}

// -- one chat, in place ----------------------------------------------------------------

function showPanelHeading(chat) {
  if (!chat) return;
  setText(panelTitle, chatName(chat));
  if (chat.kind === "task") {
    const state = chat.state ?? "submitted";
    panelState.hidden = false;
    panelState.dataset.state = state;
    setText(panelState, stateLabel(state));
    panelState.setAttribute("aria-label", `State: ${stateLabel(state)}${isTerminal(state) ? " (ended)" : ""}`);
    setText(panelAgent, chat.agent?.name ? `by ${chat.agent.name}` : "");
  } else {
    panelState.hidden = true;
    setText(panelAgent, chat.agent?.name ? `with ${chat.agent.name}` : "");
  }
  // Open here is read: its news is not news to this person.
  markRead(chat);
  const node = nodes.get(chat.id);
  if (node) {
    node.dataset.unread = "false";
    node.querySelector(".unread").hidden = true;
  }
}

function openChat(chatId, link) {
  const chat = chats.get(chatId);
  if (!chat) return;
  opener = link ?? null;
  if (openId !== chatId) {
    openId = chatId;
    const widget = document.createElement("switchboard-chat");
    widget.setAttribute("chat-id", chatId);
    widget.tokenCallback = () => getToken({ fresh: true });
    panelBody.replaceChildren(widget);
    widget.token = token;
  }
  panelTab.href = `/chats/${encodeURIComponent(chatId)}`;
  panel.hidden = false;
  render();
  panelTitle.focus();
}

function closeChat() {
  openId = null;
  panelBody.replaceChildren();
  panel.hidden = true;
  render();
  if (opener?.isConnected) opener.focus();
  opener = null;
}

panelClose.addEventListener("click", closeChat);
panel.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !event.defaultPrevented) closeChat();
});

// -- the socket ----------------------------------------------------------------------

function socketUrl() {
  const url = new URL("/v1/chats/ws", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

function onStatus(state, detail) {
  statusLine.dataset.state = state === "open" ? "live" : state;
  if (state === "open") {
    setText(statusLine, "Live.");
    setText(problem, "");
  } else if (state === "connecting") {
    setText(statusLine, "Connecting…");
  } else if (state === "reconnecting") {
    setText(statusLine, "Reconnecting…");
  } else if (state === "closed") {
    if (detail.code === 4401) {
      renewAndReconnect();
      return;
    }
    setText(statusLine, "Disconnected.");
    setText(problem, "The list is no longer live. Reload the page to try again.");
  }
}

async function renewAndReconnect() {
  if (Date.now() - lastTokenRefresh < REFRESH_EVERY_MS) {
    setText(statusLine, "Signed out.");
    setText(problem, "Your session has expired. Reload the page to sign in again.");
    return;
  }
  lastTokenRefresh = Date.now();
  try {
    token = await getToken({ fresh: true });
  } catch {
    token = null;
  }
  if (!token) {
    setText(problem, "Could not reach the server to sign in again.");
    return;
  }
  connection.start();
}

function connect() {
  connection = new StreamConnection({
    url: socketUrl(),
    hello: () => ({ token, client: "chats" }),
    onEvent: () => {}, // this socket carries no stream events
    onStatus,
    onFrame: (frame) => {
      if (applyFrame(chats, frame)) render();
    },
  });
  connection.start();
}

async function main() {
  buildFilters();
  search.addEventListener("input", () => render());
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
  connect();
}

main();
