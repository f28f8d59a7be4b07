// The bench's Node.js baseline: Zapline's Socket.IO contract served by socket.io 4, no storage.
//
//   node server.mjs --host 127.0.0.1 --port 3341
//   env JWT_SECRET (HS256), BENCH_TENANT_MAP (a JSON file {phone_number_id: tenant_id})
//
// What a team would write instead of Zapline, from the README's wire contract:
// - Socket.IO at /socket.io/: the handshake's auth.token is an HS256 JWT with sub/tenantId
//   (and exp); a missing, bad or expired one is a CONNECT_ERROR "Authentication error: ...".
//   A good one joins rooms tenant:{tenantId} and user:{sub}.
// - POST /webhooks/whatsapp: the Cloud API body is parsed, metadata.phone_number_id picks the
//   tenant, and every inbound message becomes conversation:new (a contact's first message),
//   message:new and conversation:updated to tenant:{id}, with the README's payload shapes;
//   then 200 {"status":"ok"}.
// - GET /healthz: 200.
// What it leaves out, so it is a floor, not a like-for-like product: nothing is durable (the
// answer does not wait for a disk, a crash loses everything), no idempotency on WhatsApp ids,
// no signature check, no statuses, no REST API. Conversations live in a Map for the process's
// life. socket.io's own defaults are kept (no per-message deflate, 1 MB max payload).

import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { Server } from "socket.io";

const { values: opts } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "3341" },
  },
});

const SECRET = process.env.JWT_SECRET ?? "dev-secret";
const TENANT_OF = process.env.BENCH_TENANT_MAP
  ? JSON.parse(readFileSync(process.env.BENCH_TENANT_MAP, "utf8"))
  : {};
const MAX_BODY = 1024 * 1024;
const KINDS = new Set([
  "text", "image", "video", "audio", "document", "location", "sticker", "reaction",
  "contacts", "interactive", "button", "order", "system",
]);
const WINDOW_MS = 24 * 3600 * 1000;

// -- auth: HS256 JWT, checked with node:crypto ----------------------------------------------

function b64json(part) {
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
}

// Returns the claims of a valid token; throws an Error saying what is wrong otherwise.
function verifyJwt(token) {
  const parts = typeof token === "string" ? token.split(".") : [];
  if (parts.length !== 3) throw new Error("malformed token");
  let header, claims;
  try {
    header = b64json(parts[0]);
    claims = b64json(parts[1]);
  } catch {
    throw new Error("malformed token");
  }
  if (header.alg !== "HS256") throw new Error("unsupported algorithm");
  const expected = createHmac("sha256", SECRET).update(`${parts[0]}.${parts[1]}`).digest();
  const given = Buffer.from(parts[2], "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new Error("invalid signature");
  }
  if (typeof claims.exp === "number" && claims.exp * 1000 <= Date.now()) {
    throw new Error("token expired");
  }
  if (typeof claims.sub !== "string" || typeof claims.tenantId !== "string") {
    throw new Error("missing claims");
  }
  return claims;
}

// -- webhook -> events ----------------------------------------------------------------------

const conversations = new Map(); // `${tenantId}:${waId}` -> Conversation

function contentOf(msg, kind) {
  const part = msg[kind] ?? {};
  switch (kind) {
    case "text": return part.body ?? "";
    case "image": case "video": case "document": case "sticker":
      return part.caption ?? part.filename ?? "";
    case "location": return [part.name, part.address].filter(Boolean).join(", ");
    case "reaction": return part.emoji ?? "";
    case "button": return part.text ?? "";
    default: return "";
  }
}

function inbound(io, tenantId, accountId, msg, name) {
  const waId = String(msg.from);
  const key = `${tenantId}:${waId}`;
  const at = new Date(Number(msg.timestamp ?? 0) * 1000).toISOString();
  const kind = String(msg.type ?? "text");
  const type = KINDS.has(kind) ? kind.toUpperCase() : "UNSUPPORTED";
  const content = contentOf(msg, kind);
  const room = `tenant:${tenantId}`;
  let conversation = conversations.get(key);
  const created = conversation === undefined;
  if (created) {
    const contact = { id: randomUUID(), phoneNumber: waId, name: name ?? null };
    conversation = {
      id: randomUUID(), tenantId, contactId: contact.id, accountId, stage: "new",
      assigneeId: null, lastMessageAt: at, createdAt: at, updatedAt: at, contact,
      windowExpiresAt: null, version: 0,
    };
    conversations.set(key, conversation);
  }
  const windowExpiresAt = new Date(Number(msg.timestamp ?? 0) * 1000 + WINDOW_MS).toISOString();
  conversation.lastMessageAt = at;
  conversation.updatedAt = at;
  conversation.windowExpiresAt = windowExpiresAt;
  if (created) io.to(room).emit("conversation:new", { conversation });
  const message = {
    id: randomUUID(), conversationId: conversation.id, whatsappMessageId: msg.id ?? null,
    direction: "INBOUND", type, content, metadata: msg, status: "DELIVERED", error: null,
    timestamp: at, contact: conversation.contact, reactions: [], edited: false, deleted: false,
  };
  io.to(room).emit("message:new", { conversationId: conversation.id, message });
  const lastMessage = {
    id: message.id, direction: "INBOUND", type, content, status: "DELIVERED", timestamp: at,
  };
  io.to(room).emit("conversation:updated", {
    conversationId: conversation.id, lastMessage, lastMessageAt: at, windowExpiresAt,
  });
}

function webhook(io, payload) {
  for (const entry of payload?.entry ?? []) {
    for (const change of entry?.changes ?? []) {
      const value = change?.value ?? {};
      const pnid = String(value.metadata?.phone_number_id);
      const tenantId = TENANT_OF[pnid];
      if (tenantId === undefined) continue;
      const names = new Map((value.contacts ?? []).map((c) => [c.wa_id, c.profile?.name]));
      for (const msg of value.messages ?? []) {
        inbound(io, tenantId, `account-${pnid}`, msg, names.get(msg.from));
      }
    }
  }
}

// -- HTTP -----------------------------------------------------------------------------------

function answer(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

const http = createServer();
const io = new Server(http, { path: "/socket.io/", serveClient: false });

http.on("request", (req, res) => {
  if (req.url.startsWith("/socket.io/")) return; // socket.io answers these
  if (req.method === "GET" && req.url === "/healthz") return answer(res, 200, { status: "ok" });
  if (req.method !== "POST" || req.url !== "/webhooks/whatsapp") {
    return answer(res, 404, { error: "not found" });
  }
  const chunks = [];
  let size = 0;
  req.on("data", (chunk) => {
    size += chunk.length;
    if (size <= MAX_BODY) chunks.push(chunk);
  });
  req.on("end", () => {
    if (size > MAX_BODY) return answer(res, 413, { error: `body larger than ${MAX_BODY} bytes` });
    let payload;
    try {
      payload = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch (err) {
      return answer(res, 400, { error: `malformed JSON: ${err.message}` });
    }
    webhook(io, payload);
    answer(res, 200, { status: "ok" });
  });
});

io.use((socket, next) => {
  try {
    socket.data.claims = verifyJwt(socket.handshake.auth?.token);
    next();
  } catch (err) {
    next(new Error(`Authentication error: ${err.message}`));
  }
});

io.on("connection", (socket) => {
  const { sub, tenantId } = socket.data.claims;
  socket.join([`tenant:${tenantId}`, `user:${sub}`]);
});

http.keepAliveTimeout = 60_000;
http.listen(Number(opts.port), opts.host, () => {
  console.log(`node baseline on http://${opts.host}:${opts.port} (node ${process.version})`);
});

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    io.close();
    http.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
