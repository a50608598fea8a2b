// Gate check-in (console): the gate picker, the scanner and the session dashboard.
//
// The scanner talks only to the check-in API with the staff session (CSRF header):
//   POST /api/v1/checkin/scans      one scan → {outcome, accepted, message, ticket, first_admission}
//   GET  …/sessions/<id>/pack       the offline pack (keys, revoked tokens, admitted tokens, seats)
//   POST /api/v1/checkin/sync       offline scans, once the network is back
//   GET  …/sessions/<id>/counts     live counts
// Every scan carries a fresh nonce; a retry after a network error sends the SAME nonce, so the
// server answers the first result again instead of admitting twice. When the network is down the
// page checks codes itself from the pack, in the order of docs/checkin.md (checkin/verify.py):
// read → key by kid → Ed25519 signature (WebCrypto) → session → gate → window → revoked →
// rotating code (HMAC-SHA256) → admission, and queues the scans for the sync.

import {
  base64Bytes,
  hmac,
  hmacKey,
  rotatingCode as codeAt,
} from "../web/ticketcode.js";

const STORE = "piaowu.gate.";
const RETRY_DELAYS_MS = [0, 400, 1200];
const REQUEST_TIMEOUT_MS = 5000;
const COUNTS_EVERY_MS = 4000;
const PACK_EVERY_MS = 60000;
const CAMERA_EVERY_MS = 200;
const CAMERA_DEBOUNCE_MS = 3000;
const SYNC_BATCH = 500;
const STALE_AFTER_MS = 15000;

const format = (template, values) =>
  String(template).replace(/\{(\w+)\}/g, (_, key) => (values[key] ?? "").toString());
const sleep = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));

function readStore(key, fallback) {
  try {
    const text = window.localStorage.getItem(STORE + key);
    return text === null ? fallback : JSON.parse(text);
  } catch {
    return fallback;
  }
}

function writeStore(key, value) {
  try {
    window.localStorage.setItem(STORE + key, JSON.stringify(value));
    return true;
  } catch {
    return false; // full (quota) or disabled storage
  }
}

// Session packs can be megabytes (every seat of a stadium): they live in IndexedDB, with
// localStorage as the fallback; the queue and this device's admissions are small.
let database = null;
function packDatabase() {
  database ??= new Promise((resolve, reject) => {
    const request = window.indexedDB.open("piaowu-gate", 1);
    request.onupgradeneeded = () => request.result.createObjectStore("packs");
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return database;
}

function packRequest(mode, use) {
  return packDatabase().then((db) => new Promise((resolve, reject) => {
    const tx = db.transaction("packs", mode);
    const request = use(tx.objectStore("packs"));
    tx.oncomplete = () => resolve(request.result);
    tx.onerror = tx.onabort = () => reject(tx.error);
  }));
}

async function packGet(sessionId) {
  try {
    return (await packRequest("readonly", (store) => store.get(sessionId))) ?? null;
  } catch {
    return readStore(`pack.${sessionId}`, null);
  }
}

async function packPut(sessionId, pack) {
  try {
    await packRequest("readwrite", (store) => store.put(pack, sessionId));
    return true;
  } catch {
    return writeStore(`pack.${sessionId}`, pack);
  }
}

/** Forget every pack (they hold rotation keys): on logout. Unsynced scans stay queued. */
async function packsClear() {
  for (const key of Object.keys(window.localStorage)) {
    if (key.startsWith(`${STORE}pack.`)) window.localStorage.removeItem(key);
  }
  try { await packRequest("readwrite", (store) => store.clear()); } catch { /* no IndexedDB */ }
}

function newNonce() {
  if (window.crypto?.randomUUID) return window.crypto.randomUUID();
  const bytes = window.crypto.getRandomValues(new Uint8Array(16)); // plain-HTTP LAN fallback
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- Code reading, the same rules as tickets/codec.py --------------------------------------------

const PREFIX = "PW1";
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const BLOB_SIZE = 100;
const CLAIMS_SIZE = 36;
const ROTATING_CODE_CHARS = 8;
const MAX_TEXT = PREFIX.length + 160 + 1 + ROTATING_CODE_CHARS;

const isBase32 = (text) => text.length > 0 && /^[A-Z2-7]+$/.test(text);

function base32Decode(text) {
  let bits = 0, value = 0;
  const out = [];
  for (const char of text) {
    value = (value << 5) | BASE32.indexOf(char);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return new Uint8Array(out);
}

function checkChar(chars) {
  let total = 0;
  chars.forEach((c, i) => { total += (2 * i + 1) * CROCKFORD.indexOf(c); });
  return CROCKFORD[total % 32];
}

export function normalizeSerial(text) {
  if (typeof text !== "string" || text.length > 32) return null;
  const cleaned = text.toUpperCase().replaceAll("-", "").replaceAll(" ", "")
    .replaceAll("O", "0").replaceAll("I", "1").replaceAll("L", "1");
  if (cleaned.length !== 12 || [...cleaned].some((c) => !CROCKFORD.includes(c))) return null;
  if (checkChar([...cleaned.slice(0, 11)]) !== cleaned[11]) return null;
  return `${cleaned.slice(0, 4)}-${cleaned.slice(4, 8)}-${cleaned.slice(8)}`;
}

export function parseCode(raw) {
  if (typeof raw !== "string" || raw.length > MAX_TEXT) return null;
  const text = raw.trim().toUpperCase();
  if (!text.startsWith(PREFIX)) return null;
  const rest = text.slice(PREFIX.length);
  const colon = rest.indexOf(":");
  const body = colon < 0 ? rest : rest.slice(0, colon);
  const rotatingCode = colon < 0 ? null : rest.slice(colon + 1);
  if (rotatingCode !== null && (rotatingCode.length !== ROTATING_CODE_CHARS || !isBase32(rotatingCode))) return null;
  if (!isBase32(body) || body.length !== 160) return null;
  const blob = base32Decode(body);
  if (blob.length !== BLOB_SIZE) return null;
  const view = new DataView(blob.buffer);
  const version = view.getUint8(0), flags = view.getUint8(1);
  if (version !== 1 || (flags & ~1) !== 0) return null;
  const hex = (from, to) => Array.from(blob.slice(from, to), (b) => b.toString(16).padStart(2, "0")).join("");
  return {
    claims: {
      kid: hex(2, 6),
      token: view.getBigUint64(6),
      sessionId: view.getUint32(14),
      seatId: view.getUint32(18),
      tierId: view.getUint32(22),
      validFrom: view.getUint32(26),
      validUntil: view.getUint32(30),
      secretVersion: view.getUint16(34),
      rotating: Boolean(flags & 1),
    },
    signed: blob.slice(0, CLAIMS_SIZE),
    signature: blob.slice(CLAIMS_SIZE),
    rotatingCode,
  };
}

// --- The offline verifier ----------------------------------------------------------------------

class OfflineVerifier {
  /** `pack` as the API sends it; `local` the admissions this device made since (token → state). */
  constructor(pack, local) {
    this.pack = pack;
    this.local = local;
    this.keys = new Map();
  }

  /** Import the pack's public keys; false when this browser has no Ed25519 in WebCrypto. */
  async prepare() {
    if (!window.crypto?.subtle) return false;
    try {
      for (const key of this.pack.keys || []) {
        const raw = base64Bytes(key.public_key);
        this.keys.set(key.kid, await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]));
      }
      return true;
    } catch {
      return false;
    }
  }

  /** {outcome, claims} for a scanned text, following checkin/verify.py step by step. */
  async check(text, { gateEntrances, nowSeconds, direction, reentryAllowed }) {
    if (typeof text !== "string" || !text.trim()) return { outcome: "unreadable" };
    if (normalizeSerial(text)) return { outcome: "serial_offline" }; // the pack maps no serials
    const parsed = parseCode(text);
    if (!parsed) return { outcome: "unreadable" };
    const { claims } = parsed;
    const key = this.keys.get(claims.kid);
    if (!key) return { outcome: "forged", claims };
    let good = false;
    try {
      good = await crypto.subtle.verify({ name: "Ed25519" }, key, parsed.signature, parsed.signed);
    } catch {
      good = false;
    }
    if (!good) return { outcome: "forged", claims };
    if (claims.sessionId !== this.pack.session.id) return { outcome: "wrong_session", claims };
    if (direction === "entry") {
      if (gateEntrances.size && claims.seatId) {
        const entrance = this.pack.seats?.[String(claims.seatId)]?.entrance || "";
        if (entrance && !gateEntrances.has(entrance)) return { outcome: "wrong_gate", claims };
      }
      if (nowSeconds < claims.validFrom) return { outcome: "not_yet_open", claims };
      if (nowSeconds > claims.validUntil) return { outcome: "expired", claims };
    }
    const token = claims.token.toString();
    const current = this.pack.revoked?.[token];
    if (current !== undefined && (current === 0 || current !== claims.secretVersion)) {
      return { outcome: "revoked", claims };
    }
    if (claims.rotating && !(await this.rotatingCodeValid(parsed, nowSeconds))) {
      return { outcome: "code_expired", claims };
    }
    const state = this.local[token] || this.pack.admitted?.[token] || null;
    let outcome;
    if (direction === "exit") outcome = state && state.inside ? "exit_recorded" : "not_inside";
    else if (!state) outcome = "valid";
    else if (!state.inside && reentryAllowed) outcome = "reentry";
    else outcome = "already_used";
    return { outcome, claims, first: state };
  }

  async rotatingCodeValid(parsed, nowSeconds) {
    const { claims, rotatingCode } = parsed;
    const rotation = this.pack.rotation || {};
    const keyText = rotation.keys?.[claims.kid];
    if (!rotatingCode || !keyText) return false;
    const message = new Uint8Array(10);
    const view = new DataView(message.buffer);
    view.setBigUint64(0, claims.token);
    view.setUint16(8, claims.secretVersion);
    const perTicket = await hmacKey(await hmac(await hmacKey(base64Bytes(keyText)), message));
    const stepSeconds = rotation.step_seconds || 15, tolerance = rotation.tolerance_steps ?? 2;
    const step = Math.floor(nowSeconds / stepSeconds);
    for (let delta = -tolerance; delta <= tolerance; delta += 1) {
      if ((await codeAt(perTicket, step + delta)) === rotatingCode) return true;
    }
    return false;
  }

  /** Record what an accepted offline scan did, so the next scan of the ticket sees it. */
  apply(outcome, claims, gateName) {
    const token = claims.token.toString();
    const previous = this.local[token] || this.pack.admitted?.[token];
    const updated = Date.now();
    if (outcome === "valid") this.local[token] = { at: new Date().toISOString(), gate: gateName, inside: true, updated };
    else if (outcome === "reentry") this.local[token] = { ...previous, inside: true, updated };
    else if (outcome === "exit_recorded") this.local[token] = { ...previous, inside: false, updated };
  }

  ticketInfo(claims) {
    const seat = claims.seatId ? this.pack.seats?.[String(claims.seatId)] : null;
    const tier = this.pack.tiers?.[String(claims.tierId)] || {};
    return {
      seat: seat ? seat.label : null,
      section: seat ? seat.section : "",
      entrance: seat ? seat.entrance : "",
      tier: tier.name || "",
      audience: tier.audience || "",
      attendee_name: "",
      attendee_id_masked: "",
    };
  }
}

const ACCEPTED = new Set(["valid", "reentry", "exit_recorded"]);

// --- Sound and vibration -----------------------------------------------------------------------

let audio = null;
function unlockAudio() {
  if (audio || !window.AudioContext) return;
  try { audio = new AudioContext(); } catch { audio = null; }
}

const TONES = {
  ok: [[1046, 0.12]],
  exit: [[660, 0.08], [0, 0.05], [660, 0.08]],
  refused: [[196, 0.22], [0, 0.08], [196, 0.22], [0, 0.08], [196, 0.22]],
};
const VIBRATIONS = { ok: [80], exit: [60, 60, 60], refused: [300, 100, 300, 100, 300] };

function signal(kind) {
  try { navigator.vibrate?.(VIBRATIONS[kind]); } catch { /* not allowed without a gesture */ }
  if (!audio) return;
  let at = audio.currentTime;
  for (const [frequency, seconds] of TONES[kind]) {
    if (frequency) {
      const osc = audio.createOscillator(), gain = audio.createGain();
      osc.type = kind === "refused" ? "square" : "sine";
      osc.frequency.value = frequency;
      gain.gain.value = 0.25;
      osc.connect(gain).connect(audio.destination);
      osc.start(at);
      osc.stop(at + seconds);
    }
    at += seconds;
  }
}

// --- The scanner page --------------------------------------------------------------------------

function scannerPage(root) {
  const config = JSON.parse(document.getElementById("gate-config").textContent);
  const L = config.labels;
  const part = (name) => root.querySelector(`[data-part="${name}"]`);
  const answer = document.getElementById("answer");
  const input = document.getElementById("scan-input");
  const form = document.getElementById("scan-form");
  const sessionId = config.session.id;
  const gateEntrances = new Set(config.gate.entrances);
  const timeFormat = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
    timeZone: config.venue.timezone, hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });
  const localTime = (iso) => { try { return timeFormat.format(new Date(iso)); } catch { return iso; } };

  writeStore("last", {
    url: config.urls.scanner,
    label: `${config.gate.name} · ${config.session.title} · ${config.session.starts}`,
  });

  let netDown = !navigator.onLine;
  let scanSeq = 0;
  let verifier = null;
  let webcrypto = null; // null: unknown yet, true/false once a pack was prepared
  let syncing = false;
  let lastNote = "";

  // The answer panel.
  let staleTimer = 0;
  function show(state, { headline, reason = "", seat = "", details = [], code = "" }) {
    answer.dataset.state = state;
    answer.classList.remove("is-stale");
    part("headline").textContent = headline;
    part("reason").textContent = reason;
    part("seat").textContent = seat;
    const list = part("details");
    list.replaceChildren();
    for (const [label, value, highlight] of details) {
      if (!value) continue;
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = label;
      dd.textContent = value;
      if (highlight) dd.classList.add("is-highlight");
      list.append(dt, dd);
    }
    part("code").textContent = code;
    window.clearTimeout(staleTimer);
    if (state !== "working") staleTimer = window.setTimeout(() => answer.classList.add("is-stale"), STALE_AFTER_MS);
  }

  function ticketDetails(ticket) {
    if (!ticket) return { seat: "", details: [] };
    const audience = L.audiences[ticket.audience] || "";
    return {
      seat: ticket.seat || L.general_admission,
      details: [
        [L.section, ticket.section],
        [L.entrance, ticket.entrance],
        [L.tier, audience ? `${ticket.tier} · ${audience}` : ticket.tier, Boolean(audience)],
        [L.attendee, [ticket.attendee_name, ticket.attendee_id_masked].filter(Boolean).join(" · ")],
        [L.serial, ticket.serial],
      ],
    };
  }

  function stateOf(outcome) {
    if (outcome === "exit_recorded") return "exit";
    return ACCEPTED.has(outcome) ? "ok" : "refused";
  }

  function reasonOf(outcome, { message = "", first = null, ticket = null } = {}) {
    if (outcome === "already_used" && first?.at) {
      return format(L.already_used_at, { time: localTime(first.at), gate: first.gate || "" });
    }
    if (outcome === "wrong_gate" && ticket?.entrance) return format(L.wrong_gate_go, { entrance: ticket.entrance });
    return message || L.reasons[outcome] || "";
  }

  function render(outcome, { message, ticket, first, code, note = "" }) {
    const state = stateOf(outcome);
    const info = ticketDetails(ticket);
    const reason = state === "refused" ? reasonOf(outcome, { message, first, ticket }) : "";
    show(state, {
      headline: L.titles[outcome] || L.titles.refused,
      reason: [reason, note].filter(Boolean).join(" "),
      seat: info.seat,
      details: info.details,
      code: ticket ? "" : code, // what was read, when it named no ticket
    });
    answer.dataset.outcome = outcome;
    signal(state);
  }

  // Network.
  const headers = { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": config.csrf };

  async function request(url, options = {}) {
    const controller = new AbortController();
    const timer = window.setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      return await fetch(url, { credentials: "same-origin", cache: "no-store", ...options, signal: controller.signal });
    } finally {
      window.clearTimeout(timer);
    }
  }

  /** POST the scan; on a network error or 5xx, retry with the same body (the same nonce). */
  async function sendScan(scan) {
    const body = JSON.stringify(scan);
    for (const delay of RETRY_DELAYS_MS) {
      if (delay) await sleep(delay);
      if (!navigator.onLine) break;
      let response;
      try {
        response = await request(config.urls.scan, { method: "POST", headers, body });
      } catch {
        continue;
      }
      if (response.status >= 500) continue;
      let data = null;
      try { data = await response.json(); } catch { data = null; }
      if (response.ok && data && data.outcome) return { kind: "answer", data };
      if (response.status === 401) return { kind: "error", message: L.signed_out };
      return { kind: "error", message: data?.message || `HTTP ${response.status}` };
    }
    return { kind: "network" };
  }

  function direction() {
    return root.querySelector('input[name="direction"]:checked')?.value || "entry";
  }

  async function submitCode(raw) {
    const code = String(raw || "").trim().slice(0, 400);
    if (!code) return;
    const seq = ++scanSeq;
    const scan = {
      nonce: newNonce(), gate: config.gate.id, session: sessionId, code,
      direction: direction(), scanned_at: new Date().toISOString(),
    };
    show("working", { headline: L.checking, code });
    if (!netDown && navigator.onLine) {
      const result = await sendScan(scan);
      if (result.kind === "answer") {
        setNet(true);
        if (seq !== scanSeq) return;
        const data = result.data;
        render(data.outcome, {
          message: data.message, ticket: data.ticket, first: data.first_admission, code,
          note: data.replayed ? L.replayed : "",
        });
        if (data.accepted) {
          remember(data.outcome, code);
          pollCounts();
        }
        return;
      }
      if (result.kind === "error") {
        if (seq === scanSeq) {
          show("error", { headline: L.titles.refused, reason: format(L.error, { message: result.message }), code });
          signal("refused");
        }
        return;
      }
      setNet(false);
    }
    await offlineScan(scan, seq);
  }

  async function offlineScan(scan, seq) {
    if (!verifier) await loadVerifier();
    if (!verifier || webcrypto === false) {
      if (seq === scanSeq) {
        show("error", { headline: L.titles.refused, reason: verifier ? L.no_webcrypto : L.offline_no_pack, code: scan.code });
        signal("refused");
      }
      return;
    }
    const result = await verifier.check(scan.code, {
      gateEntrances: gateFromPack(), nowSeconds: Date.now() / 1000,
      direction: scan.direction, reentryAllowed: Boolean(verifier.pack.session.reentry_allowed),
    });
    const accepted = ACCEPTED.has(result.outcome);
    if (accepted) {
      verifier.apply(result.outcome, result.claims, config.gate.name);
      writeStore(`local.${sessionId}`, verifier.local);
    }
    // Only admissions (and exits) are queued: the server re-checks a synced scan and would
    // admit a ticket the device had turned away.
    if (accepted) {
      const queue = readStore("queue", []);
      queue.push({ ...scan, venue: config.venue.id, device_accepted: true });
      writeStore("queue", queue);
    }
    setNet(!netDown);
    if (seq !== scanSeq) return;
    render(result.outcome, {
      ticket: result.claims ? verifier.ticketInfo(result.claims) : null,
      first: result.first, code: scan.code, note: L.checked_offline,
    });
  }

  /** Keep the offline state in step with an online admission or exit of a QR code (a typed
   * serial names no token: the next pack brings it). */
  function remember(outcome, code) {
    const parsed = verifier ? parseCode(code) : null;
    if (!parsed || parsed.claims.sessionId !== verifier.pack.session.id) return;
    verifier.apply(outcome, parsed.claims, config.gate.name);
    writeStore(`local.${sessionId}`, verifier.local);
  }

  function gateFromPack() {
    const gate = (verifier?.pack.gates || []).find((g) => g.id === config.gate.id);
    return gate ? new Set(gate.entrances || []) : gateEntrances;
  }

  // The offline pack.
  async function loadVerifier() {
    const pack = await packGet(sessionId);
    if (!pack || pack.format !== "piaowu.checkin.pack/1") return;
    const candidate = new OfflineVerifier(pack, readStore(`local.${sessionId}`, {}));
    webcrypto = await candidate.prepare();
    verifier = candidate;
    showPack();
  }

  function showPack(problem = "") {
    const out = part("pack");
    if (problem) { out.textContent = problem; return; }
    if (webcrypto === false) { out.textContent = L.no_webcrypto; out.dataset.ready = "false"; return; }
    if (!verifier) { out.textContent = L.pack_missing; return; }
    const admitted = Object.keys(verifier.pack.admitted || {}).length;
    out.textContent = format(L.pack_ready, { time: localTime(verifier.pack.generated_at), tickets: admitted });
    out.dataset.ready = "true";
  }

  async function downloadPack() {
    let response;
    try {
      response = await request(config.urls.pack, { headers: { Accept: "application/json" } });
    } catch {
      setNet(false);
      return;
    }
    if (!response.ok) { showPack(L.pack_failed); return; }
    const pack = await response.json().catch(() => null);
    if (!pack || pack.format !== "piaowu.checkin.pack/1") { showPack(L.pack_failed); return; }
    if (!(await packPut(sessionId, pack))) { showPack(L.pack_too_big); return; }
    // What this device did is in the server's pack once synced (or, online, once the pack was
    // made after it): keep the rest, allowing a few seconds of clock difference.
    if (!readStore("queue", []).some((s) => s.session === sessionId)) {
      const madeAt = Date.parse(pack.generated_at) - 10000;
      const local = readStore(`local.${sessionId}`, {});
      for (const [token, state] of Object.entries(local)) if (!(state.updated > madeAt)) delete local[token];
      writeStore(`local.${sessionId}`, local);
    }
    verifier = null;
    await loadVerifier();
  }

  // Sync of offline scans.
  async function syncQueue() {
    if (syncing || netDown) return;
    const queue = readStore("queue", []);
    if (!queue.length) return;
    syncing = true;
    let synced = 0, conflicts = 0, problem = "";
    // One venue per request (the server records them under this browser's device there).
    const groups = new Map();
    for (const scan of queue) {
      const venue = scan.venue || config.venue.id;
      if (!groups.has(venue)) groups.set(venue, []);
      groups.get(venue).push(scan);
    }
    try {
      outer: for (const scans of groups.values()) {
        for (let start = 0; start < scans.length; start += SYNC_BATCH) {
          const batch = scans.slice(start, start + SYNC_BATCH).map((s) => ({
            nonce: s.nonce, gate: s.gate, session: s.session, code: s.code,
            direction: s.direction, scanned_at: s.scanned_at, device_accepted: s.device_accepted,
          }));
          let response;
          try {
            response = await request(config.urls.sync, { method: "POST", headers, body: JSON.stringify({ scans: batch }) });
          } catch {
            setNet(false);
            break outer;
          }
          const data = await response.json().catch(() => null);
          if (!response.ok || !data?.results) {
            problem = data?.message || `HTTP ${response.status}`;
            continue outer;
          }
          const done = new Set(data.results.map((r) => r.nonce));
          conflicts += data.results.filter((r) => r.conflict).length;
          synced += done.size;
          // Scans queued meanwhile stay; the synced ones leave the queue.
          writeStore("queue", readStore("queue", []).filter((s) => !done.has(s.nonce)));
        }
      }
    } finally {
      syncing = false;
    }
    if (problem) lastNote = format(L.sync_failed, { message: problem });
    else if (synced) lastNote = format(conflicts ? L.synced_conflicts : L.synced, { n: synced, c: conflicts });
    setNet(!netDown);
    if (synced) downloadPack();
  }

  function setNet(online) {
    const wasDown = netDown;
    netDown = !online;
    const queued = readStore("queue", []).length;
    const out = part("net");
    out.dataset.net = online ? "online" : "offline";
    out.dataset.queued = String(queued);
    let text = online
      ? (queued ? format(L.online_queued, { n: queued }) : L.online)
      : (queued ? format(L.offline_queued, { n: queued }) : L.offline);
    if (online && lastNote) text += ` — ${lastNote}`;
    out.textContent = text;
    part("sync-button").hidden = !(online && queued);
    document.body.classList.toggle("is-offline", !online);
    if (online && wasDown && queued) syncQueue();
  }

  // Live counts (also the probe that tells when the network is back).
  async function pollCounts() {
    if (document.hidden) return;
    let response;
    try {
      response = await request(config.urls.counts, { headers: { Accept: "application/json" } });
    } catch {
      setNet(false);
      return;
    }
    if (!response.ok) return;
    const data = await response.json().catch(() => null);
    if (!data) return;
    setNet(true);
    part("counts").textContent = format(L.counts, data);
    const list = part("per-gate");
    list.replaceChildren(...(data.gates || []).map((gate) => {
      const li = document.createElement("li");
      li.textContent = format(L.counts_gate, { gate: gate.name, admitted: gate.admitted });
      if (gate.id === config.gate.id) li.classList.add("is-this-gate");
      return li;
    }));
    if (readStore("queue", []).length) syncQueue();
  }

  // Inputs: the keyboard-wedge / typed field, always focused.
  const coarse = window.matchMedia?.("(pointer: coarse)").matches;
  const keyboardButton = part("keyboard-button");
  if (coarse) input.setAttribute("inputmode", "none"); // no soft keyboard over the answer
  else keyboardButton.hidden = true;
  keyboardButton.addEventListener("click", () => {
    input.setAttribute("inputmode", "text");
    input.focus();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = input.value;
    input.value = "";
    if (coarse) input.setAttribute("inputmode", "none");
    submitCode(value);
  });
  input.addEventListener("blur", () => {
    window.setTimeout(() => {
      const active = document.activeElement;
      if (!active || active === document.body || active.tagName === "BUTTON") input.focus({ preventScroll: true });
    }, 250);
  });
  for (const radio of root.querySelectorAll('input[name="direction"]')) {
    radio.addEventListener("change", () => {
      document.body.dataset.direction = radio.value;
      input.focus({ preventScroll: true });
    });
  }
  for (const type of ["pointerdown", "keydown"]) window.addEventListener(type, unlockAudio, { once: true });
  input.focus({ preventScroll: true });

  // Camera with BarcodeDetector.
  const cameraButton = part("camera-button");
  const cameraNote = part("camera-note");
  const video = part("video");
  let stream = null, detector = null;
  const recent = new Map(); // code → when it was last sent
  if (!("BarcodeDetector" in window) || !navigator.mediaDevices?.getUserMedia) {
    cameraButton.disabled = true;
    cameraNote.textContent = L.camera_unsupported;
    cameraNote.hidden = false;
  }
  cameraButton.addEventListener("click", async () => {
    unlockAudio();
    if (stream) { stopCamera(); return; }
    try {
      detector = new window.BarcodeDetector({ formats: ["qr_code"] });
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
      video.srcObject = stream;
      part("camera").hidden = false;
      await video.play();
      cameraButton.textContent = L.stop_camera;
      cameraNote.hidden = true;
      detectLoop();
    } catch (error) {
      stopCamera();
      cameraNote.textContent = format(L.camera_failed, { message: error?.message || String(error) });
      cameraNote.hidden = false;
    }
  });
  function stopCamera() {
    stream?.getTracks().forEach((track) => track.stop());
    stream = null;
    part("camera").hidden = true;
    cameraButton.textContent = L.start_camera;
  }
  async function detectLoop() {
    while (stream) {
      await sleep(CAMERA_EVERY_MS);
      if (!stream || video.readyState < 2) continue;
      let codes = [];
      try { codes = await detector.detect(video); } catch { codes = []; }
      const value = codes.find((c) => c.rawValue)?.rawValue;
      if (!value) continue;
      const now = Date.now();
      for (const [seen, at] of recent) if (now - at > CAMERA_DEBOUNCE_MS) recent.delete(seen);
      if (recent.has(value)) continue;
      recent.set(value, now);
      await submitCode(value); // one at a time from the camera
    }
  }

  // Offline / online.
  part("pack-button").addEventListener("click", () => downloadPack());
  part("sync-button").addEventListener("click", () => syncQueue());
  window.addEventListener("offline", () => setNet(false));
  window.addEventListener("online", () => { pollCounts(); });

  window.piaowuGate = {
    queued: () => readStore("queue", []).length,
    packReady: () => Boolean(verifier),
    offlineVerification: () => webcrypto,
    online: () => !netDown,
    submit: submitCode,
  };

  // One request at a time at start: the first one also registers this browser's device.
  setNet(navigator.onLine);
  loadVerifier()
    .then(() => pollCounts())
    .then(() => { if (!netDown && navigator.onLine) return downloadPack(); return undefined; })
    .finally(() => window.setInterval(pollCounts, COUNTS_EVERY_MS));
  window.setInterval(() => { if (!netDown && navigator.onLine) downloadPack(); }, PACK_EVERY_MS);
}

// --- The picker: offer to resume the last gate + session ----------------------------------------

function pickerPage(root) {
  const last = readStore("last", null);
  const box = root.querySelector('[data-part="resume"]');
  if (!last || typeof last.url !== "string" || !last.url.startsWith(root.dataset.scannerUrl)) return;
  const link = root.querySelector('[data-part="resume-link"]');
  link.href = last.url;
  link.textContent = last.label;
  box.hidden = false;
}

// --- The dashboard: live counts ---------------------------------------------------------------

function dashboardPage(root) {
  const url = root.dataset.countsUrl;
  const poll = async () => {
    if (document.hidden) return;
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const data = await response.json();
      for (const el of root.querySelectorAll("[data-count]")) {
        const value = data[el.dataset.count];
        if (value !== undefined) el.textContent = String(value);
      }
      root.querySelector('[data-part="conflict-stat"]')?.classList.toggle("is-alert", data.conflicts > 0);
      for (const gate of data.gates || []) {
        const cell = root.querySelector(`tr[data-gate="${CSS.escape(gate.id)}"] [data-part="gate-admitted"]`);
        if (cell) cell.textContent = String(gate.admitted);
      }
    } catch {
      /* offline: keep the last numbers */
    }
  };
  window.setInterval(poll, COUNTS_EVERY_MS);
}

for (const form of document.querySelectorAll("form[data-logout]")) {
  form.addEventListener("submit", async (event) => {
    if (form.dataset.cleared) return;
    event.preventDefault();
    await packsClear();
    form.dataset.cleared = "true";
    form.submit();
  });
}

const root = document.querySelector("[data-gate-page]");
const pages = { scanner: scannerPage, picker: pickerPage, dashboard: dashboardPage };
if (root && pages[root.dataset.gatePage]) pages[root.dataset.gatePage](root);
