// The REST API on the console's own origin, with the session's bearer token.
// A 401 ends the session (the token expired or the secret changed): onUnauthorized is called.

const SESSION_KEY = "zapline.session";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function loadSession() {
  try {
    const session = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    if (session && typeof session.token === "string" && session.user && session.user.id) return session;
  } catch {
    // a damaged entry is the same as none
  }
  return null;
}

export function saveSession(session) {
  if (session) localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  else localStorage.removeItem(SESSION_KEY);
}

export class Api {
  constructor(token, onUnauthorized) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  async request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      if (response.status === 401 && this.token && this.onUnauthorized) this.onUnauthorized();
      throw new ApiError(response.status, (data && data.error) || `HTTP ${response.status}`);
    }
    return data;
  }

  static async login(email, password) {
    return new Api(null).request("POST", "/api/auth/login", { email, password });
  }

  config() {
    return this.request("GET", "/api/config");
  }

  /** Every conversation of the tenant (follows nextCursor, up to `max`). */
  async allConversations(max = 1000) {
    const all = [];
    let cursor = null;
    do {
      const query = new URLSearchParams({ limit: "200" });
      if (cursor) query.set("cursor", cursor);
      const page = await this.request("GET", `/api/conversations?${query}`);
      all.push(...page.conversations);
      cursor = page.nextCursor;
    } while (cursor && all.length < max);
    return all;
  }

  conversation(id) {
    return this.request("GET", `/api/conversations/${encodeURIComponent(id)}`);
  }

  /** One page of messages, newest first: {messages, nextCursor}. */
  messages(id, { before = null, limit = 30 } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (before) query.set("before", before);
    return this.request("GET", `/api/conversations/${encodeURIComponent(id)}/messages?${query}`);
  }

  updateConversation(id, changes) {
    return this.request("PATCH", `/api/conversations/${encodeURIComponent(id)}`, changes);
  }

  sendText(id, content) {
    return this.request("POST", `/api/conversations/${encodeURIComponent(id)}/messages`, { type: "TEXT", content });
  }

  /** A message's media as an object URL, or null when the server has none for it (cached). */
  mediaUrl(messageId) {
    this.media ||= new Map();
    if (!this.media.has(messageId)) {
      const load = fetch(`/api/messages/${encodeURIComponent(messageId)}/media`, {
        headers: { Authorization: `Bearer ${this.token}` },
      }).then(async (response) => (response.ok ? URL.createObjectURL(await response.blob()) : null));
      this.media.set(messageId, load.catch(() => null));
    }
    return this.media.get(messageId);
  }
}
