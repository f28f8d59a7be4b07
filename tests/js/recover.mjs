// Connection state recovery with the official socket.io-client, default options: connect,
// get one message:new, lose the transport without a goodbye, let the client reconnect by
// itself, and report what arrived. Driven over stdin/stdout by tests/integration/
// test_recovery_js.py:
//
//   node recover.mjs --url http://127.0.0.1:PORT --token JWT [--transport websocket|polling]
//                    [--timeout-ms 120000]
//
// Prints JSON lines: {"step":"connected",pid} at the first connect, {"step":"first",offset}
// at the first message:new, {"step":"cut"} once told "cut" on stdin and the transport is gone;
// told "report", ONE line {"step":"report", recovered (of the last reconnect), recoveries,
// pids, connects, messages:[{wamid, offset}], resync, errors, connectErrors} and it exits. It records what
// it saw; the test decides what is right.

import { parseArgs } from "node:util";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    token: { type: "string" },
    transport: { type: "string", default: "websocket" },
    "timeout-ms": { type: "string", default: "120000" },
  },
});
const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const messages = [];
const resync = [];
const pids = [];
const ids = [];
const errors = [];
let recovered = null;
let connects = 0;
const recoveries = [];

const socket = io(opts.url, { auth: { token: opts.token }, transports: [opts.transport] });
socket.on("connect", () => {
  connects += 1;
  pids.push(socket._pid ?? null);
  ids.push(socket.id);
  if (connects === 1) say({ step: "connected", pid: socket._pid ?? null });
  else {
    recovered = socket.recovered;
    recoveries.push(socket.recovered);
    say({ step: "reconnected", n: connects - 1, recovered: socket.recovered });
  }
});
const connectErrors = [];
socket.on("connect_error", (err) => connectErrors.push(err.message));
socket.on("resync:required", (payload) => resync.push(payload));
socket.on("message:new", (payload, offset) => {
  messages.push({ wamid: payload.message.whatsappMessageId, offset: offset ?? null });
  if (messages.length === 1) say({ step: "first", offset: offset ?? null });
});

function cut() {
  const transport = socket.io.engine.transport;
  if (transport.name === "websocket") {
    transport.ws.terminate(); // no close frame, no close packet: the connection just dies
  } else {
    // Polling: the transport reports an error, as when the network goes away mid-request.
    transport.onError("cut by the test", new Error("cut"));
  }
  say({ step: "cut" });
}

const stdin = createInterface({ input: process.stdin });
stdin.on("line", (line) => {
  if (line.trim() === "cut") cut();
});

stdin.on("line", (line) => {
  if (line.trim() !== "report") return;
  // A moment for anything sent twice to show up first.
  setTimeout(() => {
    say({ step: "report", recovered, recoveries, pids, ids, connects, messages, resync, errors, connectErrors });
    socket.close();
    setTimeout(() => process.exit(0), 50);
  }, 300);
});
setTimeout(() => {
  errors.push("no report asked for in time");
  process.exit(1);
}, Number(opts["timeout-ms"]));
