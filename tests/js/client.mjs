// Drives a Zapline engine with the official socket.io-client and reports what it saw.
//
//   node client.mjs --url http://127.0.0.1:PORT --transport websocket|polling|upgrade \
//                   --token JWT [--bad-token X] [--timeout-ms 5000]
//
// Runs every scenario in order on one Manager (so "/" and "/custom" share an Engine.IO
// session), prints ONE JSON line {ok, transport, results, errors} on stdout and exits 0 when
// every scenario completed, 1 otherwise. It records observations only: the Python side
// (tests/interop/test_interop_js.py) decides what is right. Binary values are reported as
// {"$bytes": "<hex>"} so they survive JSON.

import { parseArgs } from "node:util";
import { Manager } from "socket.io-client";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    transport: { type: "string", default: "websocket" },
    token: { type: "string" },
    "bad-token": { type: "string", default: "not-a-jwt" },
    "timeout-ms": { type: "string", default: "5000" },
  },
});

const TIMEOUT = Number(opts["timeout-ms"]);
const MODES = {
  websocket: { transports: ["websocket"], upgrade: false },
  polling: { transports: ["polling"], upgrade: false },
  upgrade: { transports: ["polling", "websocket"], upgrade: true },
};

function encode(value) {
  if (value instanceof ArrayBuffer) return { $bytes: Buffer.from(value).toString("hex") };
  if (ArrayBuffer.isView(value)) {
    return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex") };
  }
  if (Array.isArray(value)) return value.map(encode);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, encode(v)]));
  }
  return value;
}

function within(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${TIMEOUT} ms waiting for ${what}`)), TIMEOUT);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const once = (emitter, event) => new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));
const emitWithAcks = (socket, event, ...args) =>
  new Promise((resolve) => socket.emit(event, ...args, (...ackArgs) => resolve(ackArgs)));

function newManager(mode) {
  return new Manager(opts.url, { ...MODES[mode], reconnection: false, timeout: TIMEOUT, forceNew: true });
}

async function connectRefused(mode, auth) {
  const manager = newManager(mode);
  const socket = manager.socket("/", { auth });
  try {
    const [err] = await within(once(socket, "connect_error"), "connect_error");
    return { message: err.message, data: encode(err.data ?? null), connected: socket.connected };
  } finally {
    socket.disconnect();
    manager.engine?.close();
  }
}

async function main() {
  const mode = opts.transport;
  if (!MODES[mode]) throw new Error(`unknown --transport ${mode}`);
  const results = {};
  const errors = {};
  const manager = newManager(mode);
  const socket = manager.socket("/", { auth: { token: opts.token } });
  const welcome = once(socket, "welcome");
  let openTransport = null;
  manager.once("open", () => {
    openTransport = manager.engine.transport.name;
  });
  socket.on("client-binary", (blob, ack) => {
    results.clientBinaryReceived = encode(blob);
    ack(Buffer.concat([Buffer.from("client:"), Buffer.from(blob)]));
  });
  let custom = null;

  const scenarios = {
    async connect() {
      await within(once(socket, "connect"), "connect");
      if (mode === "upgrade" && manager.engine.transport.name !== "websocket") {
        await within(once(manager.engine, "upgrade"), "the upgrade to websocket");
      }
      return { id: socket.id, connected: socket.connected, firstTransport: openTransport, transport: manager.engine.transport.name };
    },
    async welcome() {
      const [payload] = await within(welcome, "the welcome emit");
      return { payload, socketId: socket.id };
    },
    async ack() {
      const args = await within(emitWithAcks(socket, "echo", "hello", 42, { nested: [1, "two", null] }), "echo ack");
      return { args };
    },
    async binary() {
      const back = once(socket, "binary-back");
      const ack = emitWithAcks(socket, "binary", Buffer.from([1, 2, 3, 255]), { inner: Buffer.from("zap") });
      const [ackArgs, eventArgs] = await within(Promise.all([ack, back]), "binary ack and binary-back");
      return { ack: encode(ackArgs), event: encode(eventArgs) };
    },
    async clientAck() {
      const [reply] = await within(emitWithAcks(socket, "ask-client"), "ask-client ack");
      return { reply: encode(reply), received: results.clientBinaryReceived ?? null };
    },
    async badToken() {
      return await connectRefused(mode, { token: opts["bad-token"] });
    },
    async noToken() {
      return await connectRefused(mode, {});
    },
    async customNamespace() {
      custom = manager.socket("/custom", { auth: { token: opts.token } });
      await within(once(custom, "connect"), "/custom connect");
      const shouted = once(custom, "shouted");
      const ack = emitWithAcks(custom, "shout", "hey");
      const [ackArgs, [event]] = await within(Promise.all([ack, shouted]), "shout ack and shouted");
      return { id: custom.id, sameEngine: custom.io === socket.io, ack: ackArgs, event };
    },
    async serverDisconnect() {
      const gone = once(socket, "disconnect");
      socket.emit("kick-me");
      const [reason] = await within(gone, "disconnect");
      return { reason, active: socket.active, customStillConnected: custom?.connected ?? null };
    },
  };

  for (const [name, run] of Object.entries(scenarios)) {
    try {
      results[name] = await run();
    } catch (err) {
      errors[name] = String(err?.stack ?? err);
      if (name === "connect") break; // nothing else can work
    }
  }
  custom?.disconnect();
  socket.disconnect();
  manager.engine?.close();
  return { ok: Object.keys(errors).length === 0, transport: mode, results, errors };
}

main()
  .then((report) => {
    process.stdout.write(JSON.stringify(report) + "\n");
    process.exit(report.ok ? 0 : 1);
  })
  .catch((err) => {
    process.stdout.write(JSON.stringify({ ok: false, errors: { main: String(err?.stack ?? err) } }) + "\n");
    process.exit(1);
  });
