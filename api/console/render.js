// How one message looks: its one-line preview (cards), its ticks, and its bubble (thread).
// Text is always set with textContent: nothing a customer writes is parsed as HTML.

import { fullTime, shortTime, t } from "./i18n.js";

const MEDIA = { IMAGE: "photo", VIDEO: "video", AUDIO: "audio", DOCUMENT: "document", STICKER: "sticker" };
const SVG = "http://www.w3.org/2000/svg";

/** A small clock drawn in SVG (emoji fonts are not everywhere). */
function clockIcon() {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "12");
  svg.setAttribute("height", "12");
  svg.setAttribute("aria-hidden", "true");
  const circle = document.createElementNS(SVG, "circle");
  for (const [k, v] of Object.entries({ cx: 8, cy: 8, r: 6.5, fill: "none", stroke: "currentColor", "stroke-width": 1.6 })) circle.setAttribute(k, v);
  const hands = document.createElementNS(SVG, "path");
  for (const [k, v] of Object.entries({ d: "M8 4.2V8l2.6 1.6", fill: "none", stroke: "currentColor", "stroke-width": 1.6, "stroke-linecap": "round" })) hands.setAttribute(k, v);
  svg.append(circle, hands);
  return svg;
}

/** One line that stands for the message on a card. */
export function messagePreview(message) {
  if (message.deleted || message.deletedAt) return t("deleted");
  const kind = MEDIA[message.type] || (message.type === "LOCATION" ? "location" : message.type === "CONTACTS" ? "contacts" : null);
  if (message.content) return kind ? `${t(kind)}: ${message.content}` : message.content;
  if (kind) return t(kind);
  if (message.type === "REACTION") return t("reaction");
  return t("unsupported");
}

/** Why a send failed, from the stored error (Cloud API error or status webhook errors). */
export function failureReason(error) {
  if (!error) return "";
  if (typeof error === "string") return error;
  const first = Array.isArray(error.errors) ? error.errors[0] : null;
  if (first) {
    const details = first.error_data && first.error_data.details;
    return [first.title || first.message, details, first.code ? `(${first.code})` : ""].filter(Boolean).join(" ");
  }
  return [error.message, error.code ? `(${error.code})` : ""].filter(Boolean).join(" ") || JSON.stringify(error);
}

/** The delivery mark of an outbound message: a <span> with data-status for tests and CSS. */
export function tickOf(message) {
  const span = document.createElement("span");
  span.className = "tick";
  span.dataset.status = message.status;
  const marks = { SENT: "✓", DELIVERED: "✓✓", READ: "✓✓", FAILED: "!" };
  if (message.status === "PENDING") span.append(clockIcon());
  else span.textContent = marks[message.status] || "";
  const label = message.status === "FAILED" ? t("failedBecause", { reason: failureReason(message.error) || t("failed") }) : t(String(message.status).toLowerCase());
  span.title = label;
  span.setAttribute("role", "img");
  span.setAttribute("aria-label", label);
  return span;
}

function mediaBlock(message, api) {
  const kind = t(MEDIA[message.type]);
  const wrap = document.createElement("div");
  wrap.className = "media";
  const show = (url) => {
    let el;
    if (message.type === "IMAGE" || message.type === "STICKER") {
      el = document.createElement("img");
      el.alt = message.content || kind;
      el.className = message.type === "STICKER" ? "sticker" : "photo";
    } else if (message.type === "AUDIO" || message.type === "VIDEO") {
      el = document.createElement(message.type === "AUDIO" ? "audio" : "video");
      el.controls = true;
    } else {
      el = document.createElement("a");
      el.download = (message.metadata.document && message.metadata.document.filename) || message.content || "document";
      el.textContent = `${t("download")} ${el.download}`;
      el.href = url;
      return wrap.replaceChildren(el);
    }
    el.src = url;
    wrap.replaceChildren(el);
  };
  const unavailable = () => {
    wrap.textContent = t("mediaUnavailable", { kind });
  };
  const load = async () => {
    const url = await api.mediaUrl(message.id).catch(() => null);
    if (url) show(url);
    else unavailable();
  };
  if (message.type === "IMAGE" || message.type === "STICKER") {
    unavailable();
    load();
  } else {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "ghost";
    button.textContent = t("showMedia", { kind: kind.toLowerCase() });
    button.addEventListener("click", load);
    wrap.append(button);
  }
  return wrap;
}

function locationBlock(message) {
  const loc = message.metadata.location || {};
  const p = document.createElement("p");
  p.append(`${t("location")}: ${message.content || ""} `);
  if (typeof loc.latitude === "number" && typeof loc.longitude === "number") {
    const a = document.createElement("a");
    a.href = `https://www.openstreetmap.org/?mlat=${loc.latitude}&mlon=${loc.longitude}#map=16/${loc.latitude}/${loc.longitude}`;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = t("openMap");
    p.append(a);
  }
  return p;
}

function contactsBlock(message) {
  const list = document.createElement("ul");
  list.className = "shared-contacts";
  const cards = Array.isArray(message.metadata.contacts) ? message.metadata.contacts : [];
  for (const card of cards) {
    const li = document.createElement("li");
    const name = (card.name && (card.name.formatted_name || card.name.first_name)) || "";
    const phones = (card.phones || []).map((p) => p.phone || p.wa_id).filter(Boolean);
    li.textContent = `${t("contacts")}: ${[name, ...phones].filter(Boolean).join(" · ")}`;
    list.append(li);
  }
  if (!cards.length) list.textContent = `${t("contacts")}: ${message.content || ""}`;
  return list;
}

/** The bubble of one message (reactions to it are passed in, drawn below it). */
export function bubble(message, { api, reactions = [], mine = false }) {
  const li = document.createElement("li");
  li.className = `msg ${message.direction === "OUTBOUND" ? "out" : "in"}`;
  li.dataset.id = message.id;
  li.dataset.type = message.type;
  const body = document.createElement("div");
  body.className = "bubble";
  if (message.deleted || message.deletedAt) {
    body.classList.add("deleted");
    body.textContent = t("deleted");
  } else if (MEDIA[message.type]) {
    body.append(mediaBlock(message, api));
    if (message.content && message.type !== "DOCUMENT") {
      const caption = document.createElement("p");
      caption.textContent = message.content;
      body.append(caption);
    }
  } else if (message.type === "LOCATION") {
    body.append(locationBlock(message));
  } else if (message.type === "CONTACTS") {
    body.append(contactsBlock(message));
  } else if (message.type === "REACTION") {
    body.textContent = t("reactedTo", { emoji: message.content || "" });
  } else {
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = message.content || messagePreview(message);
    body.append(text);
  }
  const meta = document.createElement("div");
  meta.className = "meta";
  if (message.edited || message.editedAt) {
    const edited = document.createElement("span");
    edited.className = "edited";
    edited.textContent = t("edited");
    meta.append(edited, " ");
  }
  const time = document.createElement("time");
  time.dateTime = message.timestamp || "";
  time.textContent = shortTime(message.timestamp);
  time.title = fullTime(message.timestamp);
  meta.append(time);
  if (message.direction === "OUTBOUND") meta.append(" ", tickOf(message));
  if (mine) li.classList.add("mine");
  body.append(meta);
  li.append(body);
  if (reactions.length) {
    const row = document.createElement("div");
    row.className = "reactions";
    row.textContent = reactions.join(" ");
    li.append(row);
  }
  return li;
}
