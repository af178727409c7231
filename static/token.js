// The pages' token: kept in web storage under "switchboard.token", never in a URL.
//
// A host that signs people in puts their token in sessionStorage or localStorage under
// that key. In demo mode the server mints one (POST /demo/token); the random person id
// it picked is kept under "switchboard.sub", so a reload, or a second tab, is the same
// person. localStorage is used because a chat opened in a new tab does not inherit the
// opener's sessionStorage.

import { tokenClaims } from "./widget.js";

export const TOKEN_KEY = "switchboard.token";
export const SUB_KEY = "switchboard.sub";
// A token this close to its expiry is not worth opening a socket with.
const EXPIRY_MARGIN_S = 60;

function stores() {
  const found = [];
  for (const name of ["sessionStorage", "localStorage"]) {
    try {
      if (window[name]) found.push(window[name]);
    } catch {
      // storage disabled (privacy settings): nothing to read there
    }
  }
  return found;
}

function usable(token) {
  const { exp } = tokenClaims(token);
  return typeof exp === "number" && exp - EXPIRY_MARGIN_S > Date.now() / 1000;
}

/** A stored token that has not expired, or null. */
export function storedToken() {
  for (const store of stores()) {
    const token = store.getItem(TOKEN_KEY);
    if (token && usable(token)) return token;
  }
  return null;
}

function forget() {
  for (const store of stores()) store.removeItem(TOKEN_KEY);
}

/** A fresh demo token from the server, or null when the server is not in demo mode. */
export async function demoToken() {
  const local = stores().at(-1);
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const sub = local?.getItem(SUB_KEY);
    const answer = await fetch("/demo/token", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(sub ? { sub } : {}),
      cache: "no-store",
    });
    if (answer.status === 404) return null;
    if (answer.status === 400 && sub) {
      local.removeItem(SUB_KEY); // not a sub this server hands out: start afresh
      continue;
    }
    if (!answer.ok) throw new Error(`demo token: HTTP ${answer.status}`);
    const { token, sub: given } = await answer.json();
    if (local) {
      local.setItem(TOKEN_KEY, token);
      local.setItem(SUB_KEY, given);
    }
    return token;
  }
  return null;
}

/** The token to use: a stored one, else (demo mode) a new one; null if there is none. */
export async function getToken({ fresh = false } = {}) {
  if (fresh) forget();
  return storedToken() ?? (await demoToken());
}

/** The principal id of *token* (display only). */
export function tokenSub(token) {
  return tokenClaims(token || "").sub ?? null;
}
