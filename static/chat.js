// One chat in its own tab (a sub-agent's, usually): `/chats/{chat_id}`.
//
// The widget does the watching (`chat-id` mode: the chat socket, client "viewer"),
// and its owner can instruct or cancel the sub-agent from there. This page shows the
// task's title and state, and "not found" for a chat this person may not see.

import { isTerminal, stateLabel } from "./widget.js";
import { getToken } from "./token.js";

const REFRESH_EVERY_MS = 10_000;
const CHAT_ID = /^[A-Za-z0-9_-]{1,100}$/;

const widget = document.getElementById("chat");
const title = document.getElementById("title");
const stateBadge = document.getElementById("state");
const agentLine = document.getElementById("agent");
const problem = document.getElementById("problem");
const notFound = document.getElementById("not-found");
let lastRefresh = 0;

function chatIdFromPath() {
  const [, first, second] = window.location.pathname.split("/");
  if (first !== "chats" || !second) return null;
  try {
    const id = decodeURIComponent(second);
    return CHAT_ID.test(id) ? id : null;
  } catch {
    return null;
  }
}

function showNotFound() {
  widget.hidden = true;
  title.textContent = "Chat";
  stateBadge.hidden = true;
  agentLine.textContent = "";
  notFound.hidden = false;
  document.title = "Not found — Switchboard";
}

function showTask(task) {
  title.textContent = task.title || "Background task";
  document.title = `${task.title || "Chat"} — Switchboard`;
  stateBadge.hidden = false;
  stateBadge.dataset.state = task.state;
  stateBadge.textContent = stateLabel(task.state);
  agentLine.textContent = task.agent?.name ? `by ${task.agent.name}` : "";
  stateBadge.setAttribute("aria-label", `State: ${stateLabel(task.state)}${isTerminal(task.state) ? " (ended)" : ""}`);
}

async function describe(chatId, token) {
  // The heading for a chat with no task (a conversation's own); best effort only: the
  // socket, not this list, decides whether the chat can be seen.
  try {
    const answer = await fetch("/v1/chats", { headers: { authorization: `Bearer ${token}` }, cache: "no-store" });
    if (!answer.ok) return;
    const chat = ((await answer.json()).chats ?? []).find((c) => c.id === chatId);
    if (chat && chat.kind !== "task" && notFound.hidden) {
      title.textContent = chat.title || "Conversation";
      agentLine.textContent = chat.agent?.name ? `with ${chat.agent.name}` : "";
    }
  } catch {
    // the heading stays generic
  }
}

widget.addEventListener("switchboard-task", (event) => {
  const task = event.detail.task;
  if (task.chat_id === widget.chatId) showTask(task);
});

widget.addEventListener("switchboard-close", (event) => {
  if (event.detail.code === 4404) showNotFound();
});

widget.addEventListener("switchboard-unauthorized", async () => {
  if (Date.now() - lastRefresh < REFRESH_EVERY_MS) return;
  lastRefresh = Date.now();
  try {
    const token = await getToken({ fresh: true });
    if (token) widget.token = token;
  } catch {
    problem.textContent = "Could not reach the server to sign in again.";
  }
});

async function main() {
  const chatId = chatIdFromPath();
  if (!chatId) {
    showNotFound();
    return;
  }
  let token;
  try {
    token = await getToken();
  } catch {
    problem.textContent = "Could not reach the server. Reload the page to try again.";
    return;
  }
  if (!token) {
    problem.textContent = "Sign-in needed: this server is not in demo mode.";
    return;
  }
  widget.setAttribute("chat-id", chatId);
  widget.token = token;
  widget.hidden = false;
  describe(chatId, token);
}

main();
