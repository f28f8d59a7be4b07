// Connection state recovery with the official socket.io-client, transport cut without a close.
//
//   node recovery.mjs --url http://127.0.0.1:PORT --transport websocket|polling \
//                     [--expect 6] [--timeout-ms 10000]
//
// Talks to the Python test over stdout, one JSON line per step:
//   {"step":"connected"}     first CONNECT done: the test emits one "tick"
//   {"step":"disconnected"}  the first tick arrived, the transport was cut without telling the
//                            server, the client noticed: the test emits the ticks it misses
//   {"step":"done", ...}     reconnected by itself and `--expect` ticks arrived (or the
//                            timeout): what it saw, for the test to judge
// The client is unchanged: recovery is what socket.io-client 4.x does on its own (it sends
// {pid, offset} with its auth and sets `socket.recovered`).

import { parseArgs } from "node:util";
import { io } from "socket.io-client";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    transport: { type: "string", default: "websocket" },
    expect: { type: "string", default: "6" },
    "timeout-ms": { type: "string", default: "10000" },
  },
});

const EXPECT = Number(opts.expect);
const say = (step, extra = {}) => process.stdout.write(JSON.stringify({ step, ...extra }) + "\n");

const socket = io(opts.url, {
  transports: [opts.transport],
  upgrade: false,
  // Fixed delay: the test emits what the client misses well within it.
  reconnectionDelay: 1500,
  reconnectionDelayMax: 1500,
  randomizationFactor: 0,
});

const ticks = []; // [payload, ...extra arguments], in arrival order
const connects = [];
const disconnects = [];
let cut = false;

function cutTransport() {
  const transport = socket.io.engine.transport;
  if (transport.name === "websocket") {
    transport.ws.terminate(); // TCP gone, no close frame, no close packet
  } else {
    // Polling: as on a network cut, the server is told nothing (no close packet on the way
    // out) and the pending poll's answer never arrives (its request is detached, not
    // aborted: xmlhttprequest-ssl 2.x crashes on a late socket error after abort()); the
    // engine then closes with "transport error", as on a failed poll.
    transport.doClose = () => {};
    transport.pollXhr._cleanup(false);
    transport.onError("xhr poll error", new Error("network cut"));
  }
}

function finish(reason) {
  say("done", {
    reason,
    recovered: socket.recovered,
    connects,
    disconnects,
    ticks,
    lastOffset: socket._lastOffset ?? null,
  });
  socket.disconnect();
  setTimeout(() => process.exit(0), 100);
}

socket.on("connect", () => {
  connects.push({ transport: socket.io.engine.transport.name, recovered: socket.recovered });
  if (connects.length === 1) say("connected", { id: socket.id });
});
socket.on("disconnect", (reason) => {
  disconnects.push(reason);
  if (disconnects.length === 1) say("disconnected", { reason });
});
socket.on("tick", (...args) => {
  ticks.push(args);
  if (!cut) {
    cut = true;
    setTimeout(cutTransport, 0); // after this event is fully handled (its offset recorded)
  }
  if (ticks.length === EXPECT) setTimeout(() => finish("all arrived"), 300); // any duplicate?
});
setTimeout(() => finish("timeout"), Number(opts["timeout-ms"]));
