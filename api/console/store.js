// The console's state and every change to it, in one place; no DOM here.
//
// Theory of operation: the REST API gives snapshots (the board, pages of a thread); socket
// events are applied on top of them, idempotently (a message is keyed by id; a status only moves
// forward), so a snapshot fetched after a reconnect and the events that raced it converge on the
// same state. Views subscribe with onChange(fn) and redraw what the change names.

export const STAGES = ["new", "open", "pending", "closed"];
const STATUS_RANK = { PENDING: 0, SENT: 1, DELIVERED: 2, READ: 3 };

const listeners = new Set();
// Orders cards whose activity times tie (WhatsApp timestamps are whole seconds): higher = newer.
let sequence = 0;

export const state = {
  user: null,
  conversations: new Map(), // id -> card (the REST payload plus lastMessage and unread)
  threads: new Map(), // conversation id -> {byId: Map, nextCursor, complete}
  openId: null,
  filter: "all",
  typing: new Map(), // conversation id -> Map(userId -> {name, until})
  viewers: new Map(), // conversation id -> [{userId, name}]
  presence: new Map(), // userId -> status
  serverUnread: false, // true once the server reports unread counts itself
};

export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function changed(what, id = null) {
  for (const fn of listeners) fn(what, id);
}

/** Old wire values ('inbound', 'RECEIVED', null content) read as the current contract's. */
export function normalizeMessage(raw) {
  const message = { ...raw };
  message.direction = String(raw.direction || "").toUpperCase();
  message.status = String(raw.status || "").toUpperCase();
  if (message.status === "RECEIVED") message.status = "DELIVERED";
  message.type = String(raw.type || "TEXT").toUpperCase();
  message.content = raw.content == null ? "" : String(raw.content);
  message.metadata = raw.metadata && typeof raw.metadata === "object" ? raw.metadata : {};
  return message;
}

/** The status a message should show after `next` arrives (monotonic; FAILED is terminal). */
export function advanceStatus(current, next) {
  if (!next) return current;
  next = String(next).toUpperCase();
  if (next === "RECEIVED") next = "DELIVERED";
  if (!current || current === next) return next;
  if (current === "FAILED") return current;
  if (next === "FAILED") return current === "PENDING" || current === "SENT" ? next : current;
  return (STATUS_RANK[next] ?? -1) > (STATUS_RANK[current] ?? -1) ? next : current;
}

/** Remember the newest inbound message's time: the 24 h reply window counts from it. */
function noteInbound(card, message) {
  if (card && message && message.direction === "INBOUND" && (message.timestamp || "") > (card.lastInboundAt || "")) {
    card.lastInboundAt = message.timestamp;
  }
}

function activityOf(c) {
  return c.lastMessageAt || c.updatedAt || c.createdAt || "";
}

/** Cards of one stage, newest activity first, after the current filter. */
export function cardsOf(stage) {
  const mine = state.user && state.user.id;
  return [...state.conversations.values()]
    .filter((c) => (c.stage || "new") === stage)
    .filter((c) => state.filter === "all" || (state.filter === "mine" ? c.assigneeId === mine : !c.assigneeId))
    .sort((a, b) => (activityOf(a) < activityOf(b) ? 1 : activityOf(a) > activityOf(b) ? -1 : (b.seq || 0) - (a.seq || 0)));
}

/** The stages to draw: the usual ones, then any other stage a conversation is in. */
export function stages() {
  const extra = new Set();
  for (const c of state.conversations.values()) if (c.stage && !STAGES.includes(c.stage)) extra.add(c.stage);
  return [...STAGES, ...[...extra].sort()];
}

export function totalUnread() {
  let total = 0;
  for (const c of state.conversations.values()) total += c.unread || 0;
  return total;
}

// -- unread counts kept by the browser until the server keeps them ---------------------------

function unreadKey() {
  return state.user ? `zapline.unread.${state.user.id}` : null;
}

function saveUnread() {
  const key = unreadKey();
  if (!key || state.serverUnread) return;
  const counts = {};
  for (const c of state.conversations.values()) if (c.unread) counts[c.id] = c.unread;
  localStorage.setItem(key, JSON.stringify(counts));
}

function savedUnread() {
  try {
    return JSON.parse(localStorage.getItem(unreadKey()) || "{}") || {};
  } catch {
    return {};
  }
}

// -- snapshots --------------------------------------------------------------------------------

function mergeCard(raw, previous) {
  const card = { ...(previous || {}), ...raw };
  if (typeof raw.unreadCount === "number") {
    state.serverUnread = true;
    card.unread = raw.unreadCount;
  }
  if (raw.lastMessage) card.lastMessage = normalizeMessage(raw.lastMessage);
  noteInbound(card, card.lastMessage);
  card.unread = card.unread || 0;
  return card;
}

/** Replace the board with a fresh list from the API (keeps what the list does not carry). */
export function setBoard(list) {
  const saved = savedUnread();
  const next = new Map();
  // The API lists newest first; number the snapshot so that its own order breaks ties.
  const base = sequence + list.length;
  sequence = base;
  for (const [index, raw] of list.entries()) {
    const previous = state.conversations.get(raw.id);
    const card = mergeCard(raw, previous);
    card.seq = base - index;
    if (!previous && !state.serverUnread && saved[raw.id]) card.unread = saved[raw.id];
    next.set(raw.id, card);
  }
  state.conversations = next;
  changed("board");
}

export function upsertConversation(raw) {
  if (!raw || !raw.id) return;
  const previous = state.conversations.get(raw.id);
  const card = mergeCard(raw, previous);
  if (!previous) card.seq = ++sequence;
  state.conversations.set(raw.id, card);
  changed("board", raw.id);
}

/** The server says this agent may no longer see a card (it was assigned away): drop it. */
export function removeConversation(id) {
  if (!state.conversations.delete(id)) return;
  changed("board", id);
}

export function setFilter(filter) {
  state.filter = filter;
  changed("board");
}

export function setLastMessage(conversationId, message) {
  const card = state.conversations.get(conversationId);
  if (!card) return;
  card.lastMessage = normalizeMessage(message);
  noteInbound(card, card.lastMessage);
  changed("board", conversationId);
}

/** Add a page of a thread (newest first from the API). `older` pages keep the cursor moving. */
export function addThreadPage(conversationId, page, { older = false } = {}) {
  let thread = state.threads.get(conversationId);
  if (!thread) {
    thread = { byId: new Map(), nextCursor: null, complete: false };
    state.threads.set(conversationId, thread);
  }
  const card = state.conversations.get(conversationId);
  for (const raw of page.messages) noteInbound(card, putMessage(thread, raw));
  if (older || !thread.started) {
    thread.nextCursor = page.nextCursor;
    thread.complete = !page.nextCursor;
    thread.started = true;
  }
  changed("thread", conversationId);
}

function putMessage(thread, raw) {
  const incoming = normalizeMessage(raw);
  const known = thread.byId.get(incoming.id);
  if (known) {
    const status = advanceStatus(known.status, incoming.status);
    Object.assign(known, incoming, { status });
    return known;
  }
  thread.byId.set(incoming.id, incoming);
  return incoming;
}

/** The thread's messages, oldest first. */
export function threadMessages(conversationId) {
  const thread = state.threads.get(conversationId);
  if (!thread) return [];
  return [...thread.byId.values()].sort((a, b) =>
    a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : a.id < b.id ? -1 : 1,
  );
}

export function setOpen(conversationId) {
  state.openId = conversationId;
  if (conversationId) markRead(conversationId);
  changed("open", conversationId);
}

export function markRead(conversationId) {
  const card = state.conversations.get(conversationId);
  if (card && card.unread) {
    card.unread = 0;
    saveUnread();
    changed("board", conversationId);
  }
}

// -- live events --------------------------------------------------------------------------------

/** `message:new`; returns the normalized message, or null if it was already known. */
export function applyMessageNew({ conversationId, message }, { viewing }) {
  let incoming = normalizeMessage(message);
  const thread = state.threads.get(conversationId);
  const fresh = !thread || !thread.byId.has(incoming.id);
  // A sender's own POST answer (PENDING) can arrive after the socket's SENT or FAILED for it.
  if (thread) incoming = putMessage(thread, incoming);
  const card = state.conversations.get(conversationId);
  noteInbound(card, incoming);
  if (card && fresh) card.seq = ++sequence;
  if (card) {
    const last = card.lastMessage;
    if (last && last.id === incoming.id) {
      card.lastMessage = { ...incoming, status: advanceStatus(last.status, incoming.status) };
    } else if (!last || (incoming.timestamp || "") >= (last.timestamp || "")) {
      card.lastMessage = { ...incoming };
      card.lastMessageAt = incoming.timestamp || card.lastMessageAt;
    }
    if (fresh && incoming.direction === "INBOUND" && !viewing && !state.serverUnread) {
      const seen = (card.seenIds ||= new Set());
      if (!seen.has(incoming.id)) {
        seen.add(incoming.id);
        card.unread = (card.unread || 0) + 1;
        saveUnread();
      }
    }
  }
  changed("board", conversationId);
  if (thread) changed("thread", conversationId);
  return fresh ? incoming : null;
}

/** `conversation:updated`; returns false when the card is unknown (the caller fetches it). */
export function applyConversationUpdated(data) {
  const card = state.conversations.get(data.conversationId);
  if (!card) return false;
  if (data.updates && typeof data.updates === "object") Object.assign(card, data.updates);
  if (data.lastMessage) {
    const last = normalizeMessage(data.lastMessage);
    if (!card.lastMessage || card.lastMessage.id === last.id || (last.timestamp || "") >= (card.lastMessage.timestamp || "")) {
      if (card.lastMessage && card.lastMessage.id === last.id) last.status = advanceStatus(card.lastMessage.status, last.status);
      card.lastMessage = last;
    }
    noteInbound(card, last);
  }
  if (data.lastMessageAt && (!card.lastMessageAt || data.lastMessageAt > card.lastMessageAt)) card.lastMessageAt = data.lastMessageAt;
  if (data.updatedAt) card.updatedAt = data.updatedAt;
  if (typeof (data.updates && data.updates.unreadCount) === "number") {
    state.serverUnread = true;
    card.unread = data.updates.unreadCount;
  }
  changed("board", data.conversationId);
  if (data.conversationId === state.openId) changed("open", data.conversationId);
  return true;
}

/** `message:status-update` (and `message:updated`, which may carry any field). */
export function applyMessageChange(data) {
  const { conversationId, messageId } = data;
  const fields = { ...(data.message || {}), ...(data.updates || {}) };
  if (data.status) fields.status = data.status;
  if (data.error) fields.error = data.error;
  const thread = state.threads.get(conversationId);
  const message = thread && thread.byId.get(messageId);
  if (message) {
    const status = advanceStatus(message.status, fields.status);
    Object.assign(message, fields, { status });
    if (fields.content !== undefined) message.content = fields.content == null ? "" : String(fields.content);
    changed("thread", conversationId);
  }
  const card = state.conversations.get(conversationId);
  if (card && card.lastMessage && card.lastMessage.id === messageId) {
    const status = advanceStatus(card.lastMessage.status, fields.status);
    Object.assign(card.lastMessage, fields, { status });
    changed("board", conversationId);
  }
}

/** `unread:update`: {conversationId, count|unreadCount} or {counts: {id: n}}. */
export function applyUnread(data) {
  state.serverUnread = true;
  const counts = data.counts && typeof data.counts === "object" ? data.counts : { [data.conversationId]: data.count ?? data.unreadCount ?? data.unread };
  for (const [id, count] of Object.entries(counts)) {
    const card = state.conversations.get(id);
    if (card && typeof count === "number") card.unread = id === state.openId ? 0 : count;
  }
  changed("board");
}

/** `typing`: {conversationId, userId, name?, isTyping|typing}. Entries expire after 6 s. */
export function applyTyping(data) {
  if (!data || !data.conversationId || !data.userId || (state.user && data.userId === state.user.id)) return;
  const who = state.typing.get(data.conversationId) || new Map();
  const on = data.isTyping ?? data.typing ?? true;
  // The server's typing event names the user; the viewers list (a typist views it) has the name.
  const viewer = (state.viewers.get(data.conversationId) || []).find((v) => v.userId === data.userId);
  const name = data.name || data.userName || (viewer && viewer.name) || "";
  if (on) who.set(data.userId, { name, until: Date.now() + 6000 });
  else who.delete(data.userId);
  state.typing.set(data.conversationId, who);
  changed("presence", data.conversationId);
}

export function typingNames(conversationId) {
  const who = state.typing.get(conversationId);
  if (!who) return [];
  const now = Date.now();
  for (const [id, entry] of who) if (entry.until < now) who.delete(id);
  return [...who.values()].map((entry) => entry.name || "…");
}

/** `conversation:viewers`: {conversationId, viewers: [{userId, name}] | [userId]}. */
export function applyViewers(data) {
  if (!data || !data.conversationId || !Array.isArray(data.viewers)) return;
  const mine = state.user && state.user.id;
  const list = data.viewers
    .map((v) => (typeof v === "string" ? { userId: v, name: "" } : { userId: v.userId || v.id, name: v.name || "" }))
    .filter((v) => v.userId && v.userId !== mine);
  state.viewers.set(data.conversationId, list);
  changed("presence", data.conversationId);
}

/** `presence:update`: {userId, status}. */
export function applyPresence(data) {
  if (data && data.userId) state.presence.set(data.userId, data.status || "online");
  changed("presence", null);
}
