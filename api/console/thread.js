// The open conversation: its bubbles (redrawn by key, so a tick change touches one bubble and
// loaded media stay), older pages when scrolled to the top, the send box, assignment, stage,
// and who else is typing or viewing.

import { contactName, stageLabel, windowHoursLeft, windowText } from "./board.js";
import { t } from "./i18n.js";
import { bubble } from "./render.js";
import { addThreadPage, applyMessageNew, stages, state, threadMessages, typingNames } from "./store.js";

const PAGE = 30;

function bubbleKey(message, reactions) {
  return [message.status, message.content, message.edited || message.editedAt || "", message.deleted || message.deletedAt || "", reactions.join("")].join("|");
}

export class ThreadView {
  constructor({ api, live, onClose, onMove, onAssign }) {
    this.api = api;
    this.live = live;
    this.onClose = onClose;
    this.onMove = onMove;
    this.onAssign = onAssign;
    this.root = document.getElementById("thread");
    this.list = document.getElementById("messages");
    this.loadingOlder = false;
    this.elements = new Map(); // message id -> [key, element]
    this.id = null;
    this.typingSent = 0;
    document.getElementById("thread-close").addEventListener("click", () => this.onClose());
    document.getElementById("thread-back").addEventListener("click", () => this.onClose());
    document.getElementById("thread-stage").addEventListener("change", (event) => this.onMove(this.id, event.target.value));
    document.getElementById("thread-assign").addEventListener("click", () => this.onAssign(this.id));
    this.list.addEventListener("scroll", () => {
      if (this.list.scrollTop < 80) this.loadOlder();
    });
    const reply = document.getElementById("reply");
    reply.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        document.getElementById("composer").requestSubmit();
      }
    });
    reply.addEventListener("input", () => {
      if (this.id && Date.now() - this.typingSent > 2500) {
        this.typingSent = Date.now();
        this.live.typing(this.id, true);
      }
    });
    document.getElementById("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.id && !this.root.hidden) this.onClose();
    });
    setInterval(() => this.id && this.renderPresence(), 2000);
  }

  async open(id) {
    const switching = id !== this.id;
    if (switching) {
      if (this.id) this.live.leave(this.id);
      this.id = id;
      this.elements.clear();
      this.list.replaceChildren();
      document.getElementById("composer-error").textContent = "";
      this.live.join(id);
    }
    this.root.hidden = false;
    document.body.classList.add("thread-open");
    this.live.read(id);
    this.renderHead();
    this.render({ toBottom: true });
    if (switching || !state.threads.get(id)) await this.refresh();
    if (switching) document.getElementById("reply").focus({ preventScroll: true });
  }

  close() {
    if (this.id) this.live.leave(this.id);
    this.id = null;
    this.root.hidden = true;
    document.body.classList.remove("thread-open");
  }

  /** Fetch the newest page (on open and after a reconnect the server did not recover). */
  async refresh() {
    const id = this.id;
    if (!id) return;
    try {
      const page = await this.api.messages(id, { limit: PAGE });
      addThreadPage(id, page);
      if (id === this.id) this.render({ toBottom: true });
    } catch (error) {
      document.getElementById("composer-error").textContent = error.message;
    }
  }

  async loadOlder() {
    const thread = state.threads.get(this.id);
    if (!thread || thread.complete || this.loadingOlder || !thread.nextCursor) return;
    this.loadingOlder = true;
    this.list.setAttribute("aria-busy", "true");
    const id = this.id;
    try {
      const page = await this.api.messages(id, { before: thread.nextCursor, limit: PAGE });
      const before = this.list.scrollHeight - this.list.scrollTop;
      addThreadPage(id, page, { older: true });
      if (id === this.id) {
        this.render();
        this.list.scrollTop = this.list.scrollHeight - before;
      }
    } finally {
      this.loadingOlder = false;
      this.list.removeAttribute("aria-busy");
    }
  }

  async send() {
    const reply = document.getElementById("reply");
    const errorLine = document.getElementById("composer-error");
    const text = reply.value.trim();
    if (!text || !this.id) return;
    const id = this.id;
    errorLine.textContent = "";
    const button = document.getElementById("send");
    button.disabled = true;
    try {
      const { message } = await this.api.sendText(id, text);
      reply.value = "";
      this.live.typing(id, false);
      this.typingSent = 0;
      applyMessageNew({ conversationId: id, message }, { viewing: true });
      this.render({ toBottom: true });
    } catch (error) {
      errorLine.textContent = t("sendFailed", { error: error.message });
    } finally {
      button.disabled = false;
      reply.focus();
    }
  }

  renderHead() {
    const card = state.conversations.get(this.id);
    if (!card) return;
    document.getElementById("thread-name").textContent = contactName(card);
    const phone = card.contact && card.contact.phoneNumber ? `+${card.contact.phoneNumber}` : "";
    document.getElementById("thread-sub").textContent = card.contact && card.contact.name ? phone : "";
    const select = document.getElementById("thread-stage");
    const current = card.stage || "new";
    select.replaceChildren(...stages().map((stage) => new Option(stageLabel(stage), stage, false, stage === current)));
    select.value = current;
    const assign = document.getElementById("thread-assign");
    const mine = state.user && card.assigneeId === state.user.id;
    assign.textContent = mine ? t("unassign") : t("assignToMe");
    assign.dataset.mine = mine ? "true" : "false";
    const hint = document.getElementById("thread-window");
    hint.textContent = windowText(card);
    hint.classList.toggle("closed", windowHoursLeft(card) === -1);
    this.renderPresence();
  }

  renderPresence() {
    const typing = typingNames(this.id);
    document.getElementById("typing").textContent = typing.length ? t("typing", { names: typing.join(", ") }) : "";
    const viewers = state.viewers.get(this.id) || [];
    const line = document.getElementById("thread-viewers");
    line.hidden = !viewers.length;
    line.textContent = viewers.length ? t("viewing", { names: viewers.map((v) => v.name || v.userId.slice(0, 6)).join(", ") }) : "";
  }

  render({ toBottom = false } = {}) {
    if (!this.id) return;
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 80;
    const messages = threadMessages(this.id);
    // Reactions are drawn on the message they react to, when that message is loaded.
    const byWamid = new Map(messages.filter((m) => m.whatsappMessageId).map((m) => [m.whatsappMessageId, m]));
    const reactions = new Map();
    const shown = [];
    for (const message of messages) {
      const target = message.type === "REACTION" && message.metadata.reaction && byWamid.get(message.metadata.reaction.message_id);
      if (target) {
        if (message.content) reactions.set(target.id, [...(reactions.get(target.id) || []), message.content]);
      } else {
        shown.push(message);
      }
    }
    const thread = state.threads.get(this.id);
    const nodes = [];
    const head = document.createElement("li");
    head.className = "thread-start muted";
    head.textContent = thread && thread.complete ? (shown.length ? t("noOlder") : t("noMessage")) : t("loadingOlder");
    nodes.push(head);
    const keep = new Map();
    for (const message of shown) {
      const mine = reactions.get(message.id) || [];
      const key = bubbleKey(message, mine);
      const known = this.elements.get(message.id);
      const el = known && known[0] === key ? known[1] : bubble(message, { api: this.api, reactions: mine, mine: message.metadata && state.user && message.metadata.sentBy === state.user.id });
      keep.set(message.id, [key, el]);
      nodes.push(el);
    }
    this.elements = keep;
    this.list.replaceChildren(...nodes);
    if (toBottom || atBottom) this.list.scrollTop = this.list.scrollHeight;
    // A first page too short to scroll would never fire the scroll that loads the next one.
    if (thread && thread.started && !thread.complete && this.list.scrollHeight <= this.list.clientHeight + 8) {
      queueMicrotask(() => this.loadOlder());
    }
  }
}
