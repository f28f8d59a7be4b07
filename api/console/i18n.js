// UI strings in Portuguese and English, chosen by the browser's language (pt-* -> Portuguese).
// t(key, vars) fills {name} placeholders; a missing key falls back to English, then to the key.

const STRINGS = {
  en: {
    title: "Zapline",
    signIn: "Sign in",
    signingIn: "Signing in…",
    email: "Email",
    password: "Password",
    loginFailed: "Wrong email or password.",
    loginError: "Could not sign in: {error}",
    signOut: "Sign out",
    filters: "Show",
    filterAll: "All",
    filterMine: "Mine",
    filterUnassigned: "Unassigned",
    sound: "Sound",
    soundOn: "Notification sound on",
    soundOff: "Notification sound off",
    board: "Conversations by stage",
    stage_new: "New",
    stage_open: "In progress",
    stage_pending: "Waiting",
    stage_closed: "Resolved",
    emptyColumn: "No conversations",
    cardHint: "Enter opens the conversation. Shift with the left or right arrow moves it to another stage.",
    movedTo: "{name} moved to {stage}",
    moveFailed: "Could not move the conversation: {error}",
    unread: "{count} unread",
    assignedToMe: "Assigned to you",
    assignedToOther: "Assigned to another agent",
    unassigned: "Unassigned",
    windowLeft: "{hours} h left to reply",
    windowClosed: "24 h window closed: only templates",
    connected: "Connected",
    connecting: "Connecting…",
    reconnecting: "Connection lost. Reconnecting…",
    offline: "Offline. Waiting for the network…",
    sessionExpired: "Your session ended. Please sign in again.",
    back: "Back to the board",
    close: "Close conversation",
    stage: "Stage",
    assignToMe: "Assign to me",
    unassign: "Unassign",
    transfer: "Transfer",
    thread: "Messages",
    loadingOlder: "Loading older messages…",
    noOlder: "Start of the conversation",
    reply: "Reply",
    replyPlaceholder: "Type a reply (Enter sends, Shift+Enter new line)",
    send: "Send",
    sendFailed: "Could not send: {error}",
    typing: "{names} is typing…",
    viewing: "Also viewing: {names}",
    pending: "Sending",
    sent: "Sent",
    delivered: "Delivered",
    read: "Read",
    failed: "Failed",
    failedBecause: "Failed: {reason}",
    edited: "edited",
    deleted: "This message was deleted",
    photo: "Photo",
    video: "Video",
    audio: "Audio",
    document: "Document",
    sticker: "Sticker",
    location: "Location",
    contacts: "Contact",
    reaction: "Reaction",
    reactedTo: "Reacted {emoji} to a message",
    unsupported: "Unsupported message",
    showMedia: "Load {kind}",
    mediaUnavailable: "{kind} (not available here yet)",
    download: "Download",
    openMap: "Open map",
    you: "You",
    noMessage: "No messages yet",
  },
  pt: {
    title: "Zapline",
    signIn: "Entrar",
    signingIn: "Entrando…",
    email: "E-mail",
    password: "Senha",
    loginFailed: "E-mail ou senha incorretos.",
    loginError: "Não foi possível entrar: {error}",
    signOut: "Sair",
    filters: "Mostrar",
    filterAll: "Todas",
    filterMine: "Minhas",
    filterUnassigned: "Sem responsável",
    sound: "Som",
    soundOn: "Som de notificação ligado",
    soundOff: "Som de notificação desligado",
    board: "Conversas por etapa",
    stage_new: "Novas",
    stage_open: "Em atendimento",
    stage_pending: "Aguardando",
    stage_closed: "Resolvidas",
    emptyColumn: "Nenhuma conversa",
    cardHint: "Enter abre a conversa. Shift com a seta para a esquerda ou para a direita move para outra etapa.",
    movedTo: "{name} movida para {stage}",
    moveFailed: "Não foi possível mover a conversa: {error}",
    unread: "{count} não lidas",
    assignedToMe: "Atribuída a você",
    assignedToOther: "Atribuída a outro atendente",
    unassigned: "Sem responsável",
    windowLeft: "{hours} h para responder",
    windowClosed: "Janela de 24 h fechada: só modelos",
    connected: "Conectado",
    connecting: "Conectando…",
    reconnecting: "Conexão perdida. Reconectando…",
    offline: "Sem conexão. Aguardando a rede…",
    sessionExpired: "Sua sessão terminou. Entre novamente.",
    back: "Voltar ao quadro",
    close: "Fechar conversa",
    stage: "Etapa",
    assignToMe: "Atribuir a mim",
    unassign: "Remover responsável",
    transfer: "Transferir",
    thread: "Mensagens",
    loadingOlder: "Carregando mensagens anteriores…",
    noOlder: "Início da conversa",
    reply: "Resposta",
    replyPlaceholder: "Digite a resposta (Enter envia, Shift+Enter quebra a linha)",
    send: "Enviar",
    sendFailed: "Não foi possível enviar: {error}",
    typing: "{names} está digitando…",
    viewing: "Também vendo: {names}",
    pending: "Enviando",
    sent: "Enviada",
    delivered: "Entregue",
    read: "Lida",
    failed: "Falhou",
    failedBecause: "Falhou: {reason}",
    edited: "editada",
    deleted: "Esta mensagem foi apagada",
    photo: "Foto",
    video: "Vídeo",
    audio: "Áudio",
    document: "Documento",
    sticker: "Figurinha",
    location: "Localização",
    contacts: "Contato",
    reaction: "Reação",
    reactedTo: "Reagiu {emoji} a uma mensagem",
    unsupported: "Mensagem não suportada",
    showMedia: "Carregar {kind}",
    mediaUnavailable: "{kind} (ainda indisponível aqui)",
    download: "Baixar",
    openMap: "Abrir mapa",
    you: "Você",
    noMessage: "Nenhuma mensagem ainda",
  },
};

function pickLanguage() {
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
  for (const tag of wanted) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (base in STRINGS) return base;
  }
  return "en";
}

export const lang = pickLanguage();
const table = STRINGS[lang];

export function t(key, vars = {}) {
  const text = table[key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

/** Fill every [data-i18n] element's text and [data-i18n-*] attribute under root. */
export function translate(root) {
  document.documentElement.lang = lang === "pt" ? "pt-BR" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const attr of ["placeholder", "aria-label", "title"]) {
    for (const el of root.querySelectorAll(`[data-i18n-${attr}]`)) {
      el.setAttribute(attr, t(el.getAttribute(`data-i18n-${attr}`)));
    }
  }
}

const timeFormat = new Intl.DateTimeFormat(lang === "pt" ? "pt-BR" : "en", { hour: "2-digit", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(lang === "pt" ? "pt-BR" : "en", { day: "2-digit", month: "short" });

/** "14:05" today, "3 Dec" before. */
export function shortTime(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  const now = new Date();
  return when.toDateString() === now.toDateString() ? timeFormat.format(when) : dayFormat.format(when);
}

export function fullTime(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? "" : when.toLocaleString(lang === "pt" ? "pt-BR" : "en");
}
