// The Socket.IO connection (the official client, served by Zapline from its npm package), the
// connection banner's state, and the client's own emits.
//
// States: connecting (first connect), connected, reconnecting (the client's exponential
// backoff after a lost connection), offline (the browser says there is no network). After a
// reconnect the server did not recover (socket.recovered === false: the client's pid/offset
// was unknown or too old, see the README's Recovery; a recovered one is sent every event it
// missed, in order, so nothing is refetched) or on resync:required, onResync refetches what the
// console shows, so the board is consistent with what happened while it was away.

import { io } from "/console/vendor/socket.io.esm.min.js";

export class Live {
  constructor({ url, path, token, handlers, onState, onResync, onAuthError }) {
    this.handlers = handlers;
    this.onState = onState;
    this.onResync = onResync;
    this.onAuthError = onAuthError;
    this.everConnected = false;
    this.rooms = new Set();
    this.state = "connecting";
    this.socket = io(url, {
      path,
      auth: { token },
      transports: ["websocket", "polling"],
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
      autoConnect: false,
    });
    const socket = this.socket;
    for (const [event, handler] of Object.entries(handlers)) socket.on(event, handler);
    socket.on("connect", () => {
      this.setState("connected");
      for (const id of this.rooms) socket.emit("conversation:join", id);
      if (this.everConnected && !socket.recovered) this.onResync("reconnect");
      this.everConnected = true;
    });
    socket.on("disconnect", (reason) => {
      this.setState(navigator.onLine === false ? "offline" : "reconnecting");
      // The client does not retry after the server's own disconnect; a desk should.
      if (reason === "io server disconnect") setTimeout(() => socket.connect(), 1000 + Math.random() * 1000);
    });
    socket.on("connect_error", (error) => {
      const message = String((error && error.message) || "");
      if (/^Authentication error/i.test(message)) {
        this.onAuthError(message);
        return;
      }
      if (!socket.active) setTimeout(() => socket.connect(), 2000);
      this.setState(navigator.onLine === false ? "offline" : this.everConnected ? "reconnecting" : "connecting");
    });
    socket.on("resync:required", () => this.onResync("server"));
    addEventListener("offline", () => this.setState("offline"));
    addEventListener("online", () => {
      if (socket.connected) this.setState("connected");
      else {
        this.setState("reconnecting");
        if (!socket.active) socket.connect();
      }
    });
  }

  connect() {
    this.socket.connect();
  }

  close() {
    this.socket.disconnect();
  }

  setState(next) {
    if (next === "connected" && navigator.onLine === false) next = "offline";
    if (next === this.state) return;
    this.state = next;
    this.onState(next);
  }

  join(id) {
    this.rooms.add(id);
    if (this.socket.connected) this.socket.emit("conversation:join", id);
  }

  leave(id) {
    this.rooms.delete(id);
    if (this.socket.connected) this.socket.emit("conversation:leave", id);
  }

  /** Tell the server this agent has read a conversation (ignored by servers without it). */
  read(id) {
    if (this.socket.connected) this.socket.emit("conversation:read", { conversationId: id });
  }

  /** Tell the others this agent is typing in a conversation (or stopped). */
  typing(id, on) {
    if (this.socket.connected) this.socket.emit(on ? "typing:start" : "typing:stop", { conversationId: id });
  }
}
