// One agent in two tabs with the official socket.io-client: unread counters and reads.
//
//   node unread.mjs --url http://127.0.0.1:PORT --token JWT [--transport websocket|polling]
//
// Connects two tabs, prints {"ready": true} and waits for a customer message (the test posts
// it) to raise the counter in both tabs; then reads everything from tab 1 with an ack and
// waits for both tabs to hear it. Prints ONE last JSON line {ok, results, errors}; what is
// right is decided by tests/integration/test_unread_js.py.

import { parseArgs } from "node:util";
import { io } from "socket.io-client";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    token: { type: "string" },
    transport: { type: "string", default: "websocket" },
    "timeout-ms": { type: "string", default: "8000" },
  },
});
const TIMEOUT = Number(opts["timeout-ms"]);

function within(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${TIMEOUT} ms waiting for ${what}`)), TIMEOUT);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function next(socket, event, test = () => true) {
  return new Promise((resolve) => {
    const listener = (payload) => {
      if (test(payload)) {
        socket.off(event, listener);
        resolve(payload);
      }
    };
    socket.on(event, listener);
  });
}

function connect() {
  const socket = io(opts.url, { auth: { token: opts.token }, transports: [opts.transport], reconnection: false, forceNew: true });
  return within(next(socket, "connect").then(() => socket), "connect");
}

async function main() {
  const results = {};
  const errors = {};
  const tabs = [await connect(), await connect()];
  const seen = [[], []];
  tabs.forEach((tab, i) => tab.on("unread:update", (payload) => seen[i].push(payload)));
  try {
    const raised = tabs.map((tab) => next(tab, "unread:update", (u) => u.unreadCount === 1));
    console.log(JSON.stringify({ ready: true }));
    results.raised = await within(Promise.all(raised), "unread:update in both tabs");
    const conversationId = results.raised[0].conversationId;
    const cleared = tabs.map((tab) => next(tab, "unread:update", (u) => u.unreadCount === 0));
    results.ack = await within(tabs[0].emitWithAck("conversation:read", { conversationId }), "the read's ack");
    results.cleared = await within(Promise.all(cleared), "the read heard in both tabs");
    results.denied = await within(tabs[1].emitWithAck("conversation:read", { conversationId: "nope" }), "a denied read");
  } catch (error) {
    errors.flow = String(error && error.message ? error.message : error);
  }
  results.seen = seen;
  tabs.forEach((tab) => tab.disconnect());
  console.log(JSON.stringify({ ok: Object.keys(errors).length === 0, results, errors }));
  process.exit(0);
}

main();
