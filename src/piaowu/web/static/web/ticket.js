// E-ticket page: draws the rotating QR code of each rotating ticket and redraws it every step.
//
// The server gives each rotating card its static ticket text (`data-static`) and its
// per-ticket secret (`data-secret`, base64), the page the step length (`data-step-seconds`) and
// the server's clock (`data-server-ms`). For step t = floor(unix seconds / step) the code is
//   base32(HMAC-SHA256(secret, t as 8 bytes big-endian)[:5])
// exactly as `piaowu.tickets.codec.rotating_code`, and the QR text is static + ":" + code.
// Everything happens on the phone (WebCrypto + qr.js), so the code keeps changing offline.
// Without WebCrypto (an old browser, or a page not served over HTTPS) the card says so and
// the serial stays the fallback: no broken code is shown.

import { encode, toSvg } from "./qr.js";
import { base64Bytes, hmacKey, rotatingCode } from "./ticketcode.js";

const page = document.querySelector(".tickets-page");
const cards = [...document.querySelectorAll(".ticket-card[data-secret]")];
const stepSeconds = Number(page?.dataset.stepSeconds) || 15;
// How far the phone's clock is from the server's, measured when the page arrived.
const clockOffset = page?.dataset.serverMs ? Number(page.dataset.serverMs) - Date.now() : 0;
const labelChanges = page?.dataset.labelChanges || "{s}";
const now = () => Date.now() + clockOffset;

function importKey(secret) {
  return hmacKey(base64Bytes(secret));
}

function unsupported(card) {
  card.querySelector('[data-part="waiting"]')?.remove();
  card.querySelector('[data-part="unsupported"]')?.removeAttribute("hidden");
  card.classList.add("ticket-rotating-off");
}

const state = new Map(); // card → { key, step, code, text, version, mask }

async function draw(card, step) {
  const entry = state.get(card);
  const code = await rotatingCode(entry.key, step);
  if (entry.step !== undefined && entry.step >= step) return; // a newer draw finished first
  const text = `${card.dataset.static}:${code}`;
  const qr = encode(text, { ecl: "M" });
  card.querySelector('[data-part="qr"]').innerHTML = toSvg(qr, { border: 2 });
  Object.assign(entry, { step, code, text, version: qr.version, mask: qr.mask });
  card.dataset.step = String(step);
  card.dataset.code = code;
}

function tick() {
  const seconds = now() / 1000;
  const step = Math.floor(seconds / stepSeconds);
  const left = stepSeconds - (seconds - step * stepSeconds); // seconds until the next code
  for (const card of cards) {
    const entry = state.get(card);
    if (!entry) continue;
    if (entry.step !== step && entry.pending !== step) {
      entry.pending = step;
      draw(card, step).catch(() => unsupported(card));
    }
    const ring = card.querySelector('[data-part="ring"]');
    if (ring) ring.style.strokeDashoffset = String(100 - (100 * left) / stepSeconds);
    const out = card.querySelector('[data-part="left"]');
    if (out) out.textContent = labelChanges.replace("{s}", String(Math.ceil(left)));
  }
}

async function start() {
  if (!cards.length) return;
  if (!(window.crypto && crypto.subtle && window.TextEncoder && window.DataView)) {
    cards.forEach(unsupported);
    return;
  }
  for (const card of cards) {
    try {
      state.set(card, { key: await importKey(card.dataset.secret) });
      card.querySelector('[data-part="timer"]')?.removeAttribute("hidden");
    } catch {
      unsupported(card);
    }
  }
  tick();
  window.setInterval(tick, 250);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(); });
  keepAwake();
}

// Keep the screen on while the ticket is shown (a queue at the gate); harmless if refused.
async function keepAwake() {
  if (!("wakeLock" in navigator)) return;
  const request = async () => {
    try { await navigator.wakeLock.request("screen"); } catch { /* not allowed: fine */ }
  };
  await request();
  document.addEventListener("visibilitychange", () => { if (!document.hidden) request(); });
}

// For tests and the curious: what each rotating card shows now.
window.piaowuTickets = {
  current: () => cards.map((card) => {
    const { step, code, text, version, mask } = state.get(card) || {};
    return { serial: card.dataset.serial, step, code, text, version, mask };
  }),
};

start();
