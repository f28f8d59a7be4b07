// The console's entry point: login, then the live desk (board + thread + socket).
// The body carries data-connection and data-ready for people reading the DOM (and the tests).

import { Api, loadSession, saveSession } from "./api.js";
import { Board, contactName, stageLabel } from "./board.js";
import { t, translate } from "./i18n.js";
import { Live } from "./live.js";
import * as notify from "./notify.js";
import * as store from "./store.js";
import { ThreadView } from "./thread.js";

const $ = (id) => document.getElementById(id);
let api = null;
let live = null;
let board = null;
let thread = null;

translate(document);
const saved = loadSession();
if (saved) startDesk(saved);
else showLogin();

function announce(text) {
  const region = $("announcer");
  region.textContent = "";
  setTimeout(() => (region.textContent = text), 30);
}

function showLogin(message = "") {
  $("desk-view").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message;
  $("email").focus();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = $("login-submit");
  button.disabled = true;
  button.textContent = t("signingIn");
  $("login-error").textContent = "";
  try {
    const { token, user } = await Api.login($("email").value.trim(), $("password").value);
    saveSession({ token, user });
    $("password").value = "";
    await startDesk({ token, user });
  } catch (error) {
    $("login-error").textContent = error.status === 401 ? t("loginFailed") : t("loginError", { error: error.message });
  } finally {
    button.disabled = false;
    button.textContent = t("signIn");
  }
});

function endSession(message) {
  if (live) live.close();
  saveSession(null);
  location.hash = "";
  sessionStorage.setItem("zapline.loginMessage", message || "");
  location.reload();
}

function setConnection(stateName) {
  document.body.dataset.connection = stateName;
  const banner = $("banner");
  const dot = $("conn-dot");
  dot.dataset.state = stateName;
  dot.setAttribute("aria-label", t(stateName));
  dot.title = t(stateName);
  banner.dataset.state = stateName;
  banner.textContent = t(stateName);
  clearTimeout(setConnection.timer);
  if (stateName === "connected") {
    // Say so briefly after a loss, then get out of the way.
    if (!banner.hidden) setConnection.timer = setTimeout(() => (banner.hidden = true), 2000);
  } else if (stateName === "connecting") {
    // The first connect usually takes milliseconds: only a slow one is worth a banner.
    setConnection.timer = setTimeout(() => (banner.hidden = false), 1500);
  } else {
    banner.hidden = false;
  }
}

async function startDesk(session) {
  api = new Api(session.token, () => endSession(t("sessionExpired")));
  store.state.user = session.user;
  $("login-view").hidden = true;
  $("desk-view").hidden = false;
  $("me").textContent = session.user.name || session.user.email;
  $("me").title = session.user.email;
  notify.startNotifications(session.user);
  setupToolbar(session.user);

  board = new Board($("board"), { onOpen: openConversation, onMove: moveConversation });
  const config = await retrying(() => api.config());
  live = new Live({
    url: config.socketUrl,
    path: config.socketPath || "/socket.io/",
    token: session.token,
    handlers: liveHandlers(),
    onState: setConnection,
    onResync: resync,
    onAuthError: (message) => endSession(message),
  });
  thread = new ThreadView({ api, live, onClose: closeConversation, onMove: moveConversation, onAssign: toggleAssign });
  store.onChange((what, id) => {
    if (what === "board") {
      board.schedule();
      notify.setTitleCount(store.totalUnread());
      if (id && id === store.state.openId) thread.renderHead();
    } else if (what === "thread" && id === store.state.openId) {
      thread.render();
    } else if (what === "open" && id && id === store.state.openId) {
      thread.renderHead();
    } else if (what === "presence") {
      if (!id) board.schedule(); // an agent's presence: the avatars
      if (!id || id === store.state.openId) thread.renderPresence();
    }
  });
  setConnection("connecting");
  live.connect();
  await retrying(loadBoard);
  addEventListener("hashchange", followHash);
  followHash();
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && store.state.openId) store.markRead(store.state.openId);
  });
  document.body.dataset.ready = "true";
}

/** Run `load` until it succeeds (the API may be restarting), backing off up to 10 s. */
async function retrying(load) {
  for (let delay = 1000, failed = false; ; delay = Math.min(delay * 2, 10000)) {
    try {
      const result = await load();
      if (failed) setConnection(live ? live.state : "connecting");
      return result;
    } catch (error) {
      if (error.status === 401) throw error;
      failed = true;
      setConnection(navigator.onLine === false ? "offline" : "reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

function setupToolbar(user) {
  const filterKey = `zapline.filter.${user.id}`;
  const filter = localStorage.getItem(filterKey) || "all";
  for (const radio of document.querySelectorAll('input[name="filter"]')) {
    radio.checked = radio.value === filter;
    radio.addEventListener("change", () => {
      if (!radio.checked) return;
      localStorage.setItem(filterKey, radio.value);
      store.setFilter(radio.value);
    });
  }
  store.state.filter = filter;
  const toggle = $("sound-toggle");
  const paint = () => {
    const on = notify.soundEnabled();
    toggle.setAttribute("aria-pressed", on ? "true" : "false");
    toggle.title = on ? t("soundOn") : t("soundOff");
  };
  toggle.addEventListener("click", () => {
    notify.setSoundEnabled(!notify.soundEnabled());
    paint();
  });
  addEventListener("storage", (event) => event.key && event.key.startsWith("zapline.sound.") && paint());
  paint();
  $("logout").addEventListener("click", () => endSession(""));
}

function liveHandlers() {
  // Assigned to someone else: the server decides whether this agent still sees it (an agent
  // sees their own and the unassigned ones), and answers 404 when not.
  const recheck = async (id) => {
    try {
      await api.conversation(id);
    } catch (error) {
      if (error && error.status === 404) {
        if (store.state.openId === id) closeConversation();
        store.removeConversation(id);
      }
    }
  };
  const fetchCard = async (id) => {
    try {
      const { conversation } = await api.conversation(id);
      store.upsertConversation({ ...conversation, liveAt: Date.now() });
    } catch {
      // another tenant's or deleted: nothing to show
    }
  };
  return {
    "conversation:new": ({ conversation }) => {
      if (!conversation) return;
      board.bump(conversation.id);
      store.upsertConversation({ ...conversation, liveAt: Date.now() });
    },
    "message:new": (data) => {
      const viewing = data.conversationId === store.state.openId && document.visibilityState === "visible";
      const known = store.state.conversations.has(data.conversationId);
      const message = store.applyMessageNew(data, { viewing });
      if (!known) fetchCard(data.conversationId);
      if (message && message.direction === "INBOUND" && !viewing) {
        board.bump(data.conversationId);
        notify.chime();
      }
    },
    "conversation:updated": (data) => {
      if (!store.applyConversationUpdated(data)) fetchCard(data.conversationId);
      const assignee = data.updates && data.updates.assigneeId;
      const mine = store.state.user && store.state.user.id;
      if (assignee && assignee !== mine) recheck(data.conversationId);
    },
    "message:status-update": (data) => store.applyMessageChange(data),
    "message:updated": (data) => store.applyMessageChange(data),
    "unread:update": (data) => store.applyUnread(data),
    typing: (data) => store.applyTyping(data),
    "conversation:viewers": (data) => store.applyViewers(data),
    "presence:update": (data) => store.applyPresence(data),
  };
}

async function loadBoard() {
  const started = Date.now();
  const list = await api.allConversations();
  // Keep cards that arrived live while the list was being fetched.
  const seen = new Set(list.map((c) => c.id));
  for (const card of store.state.conversations.values()) if (!seen.has(card.id) && card.liveAt >= started) list.push(card);
  store.setBoard(list);
  fillPreviews();
}

/** Cards whose payload has no lastMessage get it from the thread's newest message. */
async function fillPreviews() {
  const missing = [...store.state.conversations.values()].filter((c) => !c.lastMessage && c.lastMessageAt).slice(0, 200);
  const worker = async () => {
    for (let card = missing.shift(); card; card = missing.shift()) {
      try {
        const page = await api.messages(card.id, { limit: 1 });
        if (page.messages[0] && !store.state.conversations.get(card.id)?.lastMessage) store.setLastMessage(card.id, page.messages[0]);
      } catch {
        // a preview is not worth an error
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

let resyncing = null;
async function resync() {
  document.body.dataset.resyncs = String(Number(document.body.dataset.resyncs || 0) + 1);
  if (resyncing) return resyncing;
  resyncing = (async () => {
    try {
      await loadBoard();
      if (store.state.openId) await thread.refresh();
    } finally {
      resyncing = null;
    }
  })();
  return resyncing;
}

function followHash() {
  const match = /^#c=(.+)$/.exec(location.hash);
  const id = match ? decodeURIComponent(match[1]) : null;
  if (id && store.state.conversations.has(id)) {
    store.setOpen(id);
    thread.open(id);
    board.schedule();
  } else if (store.state.openId) {
    const was = store.state.openId;
    store.setOpen(null);
    thread.close();
    board.schedule();
    requestAnimationFrame(() => board.focusCard(was));
  }
}

function openConversation(id) {
  if (location.hash === `#c=${encodeURIComponent(id)}`) followHash();
  else location.hash = `c=${encodeURIComponent(id)}`;
}

function closeConversation() {
  history.pushState(null, "", location.pathname + location.search);
  followHash();
}

async function moveConversation(id, stage, { keyboard = false } = {}) {
  const card = store.state.conversations.get(id);
  if (!card || !stage || (card.stage || "new") === stage) return;
  const before = card.stage;
  store.upsertConversation({ id, stage });
  announce(t("movedTo", { name: contactName(card), stage: stageLabel(stage) }));
  if (keyboard) requestAnimationFrame(() => requestAnimationFrame(() => board.focusCard(id)));
  try {
    const { conversation } = await api.updateConversation(id, { stage });
    store.upsertConversation(conversation);
  } catch (error) {
    store.upsertConversation({ id, stage: before });
    announce(t("moveFailed", { error: error.message }));
  }
}

async function toggleAssign(id) {
  const card = store.state.conversations.get(id);
  if (!card) return;
  const mine = card.assigneeId === store.state.user.id;
  try {
    const { conversation } = await api.updateConversation(id, { assigneeId: mine ? null : store.state.user.id });
    store.upsertConversation(conversation);
    announce(mine ? t("unassigned") : t("assignedToMe"));
  } catch (error) {
    announce(error.message);
  }
}

const loginMessage = sessionStorage.getItem("zapline.loginMessage");
if (loginMessage) {
  sessionStorage.removeItem("zapline.loginMessage");
  if (!saved) $("login-error").textContent = loginMessage;
}
