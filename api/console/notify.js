// The notification sound (off by default) and the tab title's unread count.
//
// One tab per agent plays the sound: the tabs of one browser elect a leader through a
// localStorage record {tab, until} that the leader renews every 2 s; a tab takes over when the
// record is missing, expired, or left by a closing tab. Every tab gets every event, so without
// this an agent with three tabs would hear three chimes.

const TAB = Math.random().toString(36).slice(2);
const RENEW_MS = 2000;
const LEASE_MS = 5000;

let userId = null;
let audio = null;

function leaderKey() {
  return `zapline.soundLeader.${userId}`;
}

function soundKey() {
  return `zapline.sound.${userId}`;
}

function readLease() {
  try {
    return JSON.parse(localStorage.getItem(leaderKey()) || "null");
  } catch {
    return null;
  }
}

function renew() {
  if (!userId) return;
  const lease = readLease();
  if (!lease || lease.tab === TAB || lease.until < Date.now()) {
    localStorage.setItem(leaderKey(), JSON.stringify({ tab: TAB, until: Date.now() + LEASE_MS }));
  }
}

export function isLeader() {
  const lease = readLease();
  return !!lease && lease.tab === TAB && lease.until >= Date.now();
}

export function startNotifications(user) {
  userId = user.id;
  renew();
  setInterval(renew, RENEW_MS);
  addEventListener("pagehide", () => {
    if (isLeader()) localStorage.removeItem(leaderKey());
  });
}

export function soundEnabled() {
  return !!userId && localStorage.getItem(soundKey()) === "on";
}

export function setSoundEnabled(on) {
  if (!userId) return;
  localStorage.setItem(soundKey(), on ? "on" : "off");
  if (on) unlockAudio();
}

function unlockAudio() {
  // Browsers start an AudioContext only after a user gesture; the toggle's click is one.
  try {
    audio ||= new AudioContext();
    if (audio.state === "suspended") audio.resume();
  } catch {
    audio = null;
  }
}

/** A short two-note chime, made with WebAudio (no file to fetch). Returns true if it played. */
export function chime() {
  if (!soundEnabled() || !isLeader()) return false;
  document.documentElement.dataset.chimes = String(Number(document.documentElement.dataset.chimes || 0) + 1);
  unlockAudio();
  if (!audio) return false;
  const start = audio.currentTime;
  for (const [i, freq] of [880, 1320].entries()) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, start + i * 0.12);
    gain.gain.exponentialRampToValueAtTime(0.2, start + i * 0.12 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + i * 0.12 + 0.18);
    osc.connect(gain).connect(audio.destination);
    osc.start(start + i * 0.12);
    osc.stop(start + i * 0.12 + 0.2);
  }
  return true;
}

export function setTitleCount(count) {
  document.title = count > 0 ? `(${count}) Zapline` : "Zapline";
}
