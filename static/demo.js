// The demo page: signs the visitor in (demo token), keeps their conversation across
// reloads, and turns the suggested prompts into text in the widget's message box.

import "./widget.js";
import { getToken, tokenSub } from "./token.js";

const CONVERSATION_KEY = "switchboard.conversation";
// A 4401 right after a fresh token would loop: ask for a new one at most this often.
const REFRESH_EVERY_MS = 10_000;

const widget = document.getElementById("chat");
const problem = document.getElementById("problem");
let lastRefresh = 0;
let resumedStored = false;

function rememberedConversation(sub) {
  try {
    const saved = JSON.parse(localStorage.getItem(CONVERSATION_KEY) || "null");
    return saved && saved.sub === sub && typeof saved.id === "string" ? saved.id : null;
  } catch {
    return null;
  }
}

function rememberConversation(sub, id) {
  try {
    localStorage.setItem(CONVERSATION_KEY, JSON.stringify({ sub, id }));
  } catch {
    // storage disabled: the conversation lasts as long as the page
  }
}

function forgetConversation() {
  try {
    localStorage.removeItem(CONVERSATION_KEY);
  } catch {
    // nothing stored
  }
}

function startNewConversation() {
  forgetConversation();
  widget.removeAttribute("conversation-id");
}

widget.addEventListener("switchboard-conversation", (event) => {
  rememberConversation(tokenSub(widget.token), event.detail.conversationId);
});

widget.addEventListener("switchboard-close", (event) => {
  // The remembered conversation is gone (a reset demo database): start a new one, once.
  if (event.detail.code === 4404 && resumedStored) {
    resumedStored = false;
    startNewConversation();
  }
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

for (const button of document.querySelectorAll(".prompt")) {
  button.addEventListener("click", () => widget.suggest(button.dataset.prompt));
}

document.getElementById("new-conversation").addEventListener("click", startNewConversation);

async function signIn() {
  let token;
  try {
    token = await getToken();
  } catch {
    problem.textContent = "Could not reach the server. Reload the page to try again.";
    return;
  }
  if (!token) {
    problem.textContent =
      "This server is not running in demo mode: sign in through your own site, which stores a token under switchboard.token.";
    return;
  }
  const conversationId = rememberedConversation(tokenSub(token));
  if (conversationId) {
    resumedStored = true;
    widget.setAttribute("conversation-id", conversationId);
  }
  // Renewed before it expires, on the live socket (PROTOCOL.md, additions: refresh).
  widget.tokenCallback = () => getToken({ fresh: true });
  widget.token = token;
}

signIn();
