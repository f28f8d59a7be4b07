// Two agents of one tenant on the desk with the official socket.io-client: who is viewing,
// typing, presence and assignment, as the live desk's browsers see them. B connects first.
//
//   node desk.mjs --url http://127.0.0.1:PORT --conversation ID --token-a JWT --token-b JWT \
//                 --user-a ID --user-b ID [--transport websocket|polling] [--timeout-ms 5000]
//
// Prints ONE JSON line {ok, results, errors} and exits 0 when every step completed. It records
// what it saw; tests/integration/test_live_desk_js.py decides what is right.

import { parseArgs } from "node:util";
import { io } from "socket.io-client";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    conversation: { type: "string" },
    "token-a": { type: "string" },
    "token-b": { type: "string" },
    "user-a": { type: "string" },
    "user-b": { type: "string" },
    transport: { type: "string", default: "websocket" },
    "timeout-ms": { type: "string", default: "5000" },
  },
});
const TIMEOUT = Number(opts["timeout-ms"]);
const conversationId = opts.conversation;

function within(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${TIMEOUT} ms waiting for ${what}`)), TIMEOUT);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Resolves with the first `event` payload that satisfies `test`.
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

function connect(token) {
  const socket = io(opts.url, { auth: { token }, transports: [opts.transport], reconnection: false, forceNew: true });
  return within(next(socket, "connect").then(() => socket), "connect");
}

async function main() {
  const results = {};
  const errors = {};
  const sockets = [];
  const step = async (name, fn) => {
    try {
      results[name] = await fn();
    } catch (error) {
      errors[name] = String(error && error.message ? error.message : error);
    }
  };
  const b = await connect(opts["token-b"]);
  sockets.push(b);
  const aOnline = next(b, "presence:update", (p) => p.userId === opts["user-a"] && p.status === "online");
  const a = await connect(opts["token-a"]);
  sockets.push(a);
  const aTyping = [];
  a.on("typing", (payload) => aTyping.push(payload));

  await step("presence", () => within(aOnline, "A online, seen by B"));
  await step("viewers", async () => {
    const both = next(b, "conversation:viewers", (v) => v.viewers.length === 2);
    const joinA = await within(a.emitWithAck("conversation:join", conversationId), "A's join ack");
    const joinB = await within(b.emitWithAck("conversation:join", conversationId), "B's join ack");
    return { joinA, joinB, event: await within(both, "two viewers") };
  });
  await step("typing", async () => {
    const seen = next(b, "typing", (t) => t.isTyping);
    const ack = await within(a.emitWithAck("typing:start", { conversationId }), "typing ack");
    const event = await within(seen, "typing seen by B");
    const stopped = next(b, "typing", (t) => !t.isTyping);
    await a.emitWithAck("typing:stop", { conversationId });
    return { ack, event, stop: await within(stopped, "typing stop seen by B") };
  });
  await step("assign", async () => {
    // A gives the conversation to B: B is told, and A (an agent) may no longer see it, so it
    // stops viewing it.
    const assigned = next(b, "conversation:assigned");
    const one = next(b, "conversation:viewers", (v) => v.viewers.length === 1);
    const ack = await within(
      a.emitWithAck("conversation:assign", { conversationId, assigneeId: opts["user-b"] }),
      "assign ack",
    );
    return {
      ack,
      event: await within(assigned, "conversation:assigned to B"),
      viewers: await within(one, "A no longer viewing"),
    };
  });
  results.ownTyping = aTyping;
  for (const socket of sockets) socket.disconnect();
  const ok = Object.keys(errors).length === 0;
  process.stdout.write(JSON.stringify({ ok, results, errors }) + "\n");
  process.exit(ok ? 0 : 1);
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ ok: false, results: {}, errors: { main: String(error) } }) + "\n");
  process.exit(1);
});
