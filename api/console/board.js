// The Kanban: one column per stage, a card per conversation. Cards move by drag and drop and
// by keyboard (Shift+Left/Right); arrows move the focus, Enter opens. A move is applied at once
// and sent as PATCH {stage}; the server's conversation:updated then reaches everyone else.

import { fullTime, shortTime, t } from "./i18n.js";
import { cardsOf, stages, state } from "./store.js";
import { messagePreview, tickOf } from "./render.js";

const WINDOW_MS = 24 * 3600 * 1000;

export function stageLabel(stage) {
  const key = `stage_${stage}`;
  const label = t(key);
  return label === key ? stage : label;
}

export function contactName(card) {
  const contact = card.contact || {};
  return contact.name || (contact.phoneNumber ? `+${contact.phoneNumber}` : card.id);
}

export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || "?").slice(0, 2);
  return letters.toUpperCase();
}

/** Hours left in the 24 h customer-service window, -1 when closed, null when unknown. */
export function windowHoursLeft(card) {
  let until = card.windowExpiresAt ? Date.parse(card.windowExpiresAt) : NaN;
  if (Number.isNaN(until)) {
    const last = card.lastInboundAt || (card.lastMessage && card.lastMessage.direction === "INBOUND" ? card.lastMessage.timestamp : null);
    if (!last) return null;
    until = Date.parse(last) + WINDOW_MS;
  }
  if (Number.isNaN(until)) return null;
  const left = until - Date.now();
  return left <= 0 ? -1 : Math.ceil(left / 3600000);
}

export function windowText(card) {
  const hours = windowHoursLeft(card);
  if (hours === null) return "";
  return hours < 0 ? t("windowClosed") : t("windowLeft", { hours });
}

export class Board {
  constructor(root, { onOpen, onMove }) {
    this.root = root;
    this.onOpen = onOpen;
    this.onMove = onMove;
    this.template = document.getElementById("card-template");
    this.pending = false;
    this.bumped = new Set();
    root.addEventListener("keydown", (event) => this.keydown(event));
    root.addEventListener("click", (event) => {
      const card = event.target.closest(".card");
      if (card) this.onOpen(card.dataset.id);
    });
    root.addEventListener("dragstart", (event) => {
      const card = event.target.closest(".card");
      if (!card) return;
      event.dataTransfer.setData("text/plain", card.dataset.id);
      event.dataTransfer.effectAllowed = "move";
      card.classList.add("dragging");
    });
    root.addEventListener("dragend", (event) => {
      const card = event.target.closest(".card");
      if (card) card.classList.remove("dragging");
      for (const col of root.querySelectorAll(".drop-target")) col.classList.remove("drop-target");
    });
    root.addEventListener("dragover", (event) => {
      const column = event.target.closest(".column");
      if (!column) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      for (const col of root.querySelectorAll(".drop-target")) if (col !== column) col.classList.remove("drop-target");
      column.classList.add("drop-target");
    });
    root.addEventListener("drop", (event) => {
      const column = event.target.closest(".column");
      if (!column) return;
      event.preventDefault();
      column.classList.remove("drop-target");
      const id = event.dataTransfer.getData("text/plain");
      if (id && state.conversations.has(id)) this.onMove(id, column.dataset.stage);
    });
  }

  /** Mark a card to flash once at its next drawing (a new message while not viewed). */
  bump(id) {
    this.bumped.add(id);
  }

  /** Redraw at the next frame (many events in one turn cost one drawing). */
  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  render() {
    const focusedId = document.activeElement && document.activeElement.closest && document.activeElement.closest(".card")?.dataset.id;
    const columns = [];
    for (const stage of stages()) {
      const cards = cardsOf(stage);
      const column = document.createElement("section");
      column.className = "column";
      column.dataset.stage = stage;
      const heading = document.createElement("h2");
      heading.id = `col-${stage}`;
      heading.innerHTML = "";
      heading.append(stageLabel(stage), " ");
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = String(cards.length);
      heading.append(count);
      column.setAttribute("aria-labelledby", heading.id);
      const list = document.createElement("ul");
      list.className = "cards";
      for (const card of cards) list.append(this.cardElement(card));
      if (!cards.length) {
        const empty = document.createElement("li");
        empty.className = "empty muted";
        empty.textContent = t("emptyColumn");
        list.append(empty);
      }
      column.append(heading, list);
      columns.push(column);
    }
    this.root.replaceChildren(...columns);
    this.bumped.clear();
    if (focusedId) this.focusCard(focusedId);
  }

  cardElement(card) {
    const item = this.template.content.firstElementChild.cloneNode(true);
    const el = item.querySelector(".card");
    const name = contactName(card);
    el.dataset.id = card.id;
    el.dataset.stage = card.stage || "new";
    el.dataset.phone = (card.contact && card.contact.phoneNumber) || "";
    if (card.id === state.openId) el.classList.add("active");
    if (this.bumped.has(card.id)) el.classList.add("bump");
    el.querySelector(".card-name").textContent = name;
    const time = el.querySelector(".card-time");
    time.dateTime = card.lastMessageAt || "";
    time.textContent = shortTime(card.lastMessageAt);
    time.title = fullTime(card.lastMessageAt);
    const preview = el.querySelector(".card-preview");
    const last = card.lastMessage;
    if (last) {
      if (last.direction === "OUTBOUND") {
        const tick = tickOf(last);
        preview.append(tick);
        preview.append(" ");
      }
      preview.append(messagePreview(last));
    } else {
      preview.textContent = card.contact && card.contact.name ? `+${card.contact.phoneNumber}` : "";
    }
    const badge = el.querySelector(".badge");
    if (card.unread > 0) {
      badge.hidden = false;
      badge.textContent = card.unread > 99 ? "99+" : String(card.unread);
      badge.title = t("unread", { count: card.unread });
    }
    const avatar = el.querySelector(".avatar");
    if (card.assigneeId) {
      const mine = state.user && card.assigneeId === state.user.id;
      avatar.hidden = false;
      avatar.textContent = mine ? initials(state.user.name || state.user.email) : initials(card.assigneeName || "?");
      avatar.classList.toggle("mine", mine);
      avatar.classList.toggle("online", state.presence.get(card.assigneeId) === "online");
      avatar.title = mine ? t("assignedToMe") : card.assigneeName || t("assignedToOther");
    }
    // On a card the window only speaks up when it is closing (6 h or less) or closed.
    const windowHint = el.querySelector(".card-window");
    const hoursLeft = windowHoursLeft(card);
    windowHint.textContent = hoursLeft !== null && hoursLeft <= 6 ? windowText(card) : "";
    windowHint.classList.toggle("closed", windowHoursLeft(card) === -1);
    const parts = [name, stageLabel(card.stage || "new")];
    if (card.unread > 0) parts.push(t("unread", { count: card.unread }));
    if (last) parts.push(messagePreview(last));
    if (!avatar.hidden) parts.push(avatar.title);
    el.setAttribute("aria-label", parts.join(". "));
    return item;
  }

  focusCard(id) {
    const el = this.root.querySelector(`.card[data-id="${CSS.escape(id)}"]`);
    if (el) el.focus({ preventScroll: false });
  }

  keydown(event) {
    const el = event.target.closest(".card");
    if (!el) return;
    const id = el.dataset.id;
    const order = stages();
    const at = order.indexOf(el.dataset.stage);
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      this.onOpen(id);
    } else if (event.shiftKey && (event.key === "ArrowRight" || event.key === "ArrowLeft")) {
      event.preventDefault();
      const to = order[at + (event.key === "ArrowRight" ? 1 : -1)];
      if (to) this.onMove(id, to, { keyboard: true });
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const item = el.parentElement;
      const next = event.key === "ArrowDown" ? item.nextElementSibling : item.previousElementSibling;
      next?.querySelector(".card")?.focus();
    } else if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      event.preventDefault();
      let column = el.closest(".column");
      do {
        column = event.key === "ArrowRight" ? column.nextElementSibling : column.previousElementSibling;
      } while (column && !column.querySelector(".card"));
      column?.querySelector(".card")?.focus();
    }
  }
}
