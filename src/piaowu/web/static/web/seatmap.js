// Read-only seat map viewer: draws a session's seat map on a canvas, coloured by price tier,
// with pan (drag), zoom (wheel, pinch, buttons) and tap-to-inspect. Fast for 40,000+ seats:
// seats live in typed arrays and are drawn in one pass per colour.
// Live: after the layout, it loads the seat states (GET …/seats) and follows changes over
// server-sent events (GET …/live): held and sold seats turn grey, released ones get their
// tier colour back. EventSource reconnects by itself; each (re)connection reloads the states.
// All wording comes from data-* attributes rendered server-side in the user's language.
// Selection: when the page has a hold panel (#hold-panel, sessions on sale), tapping an
// available seat toggles it; the panel lists the chosen seats, holds them through the API
// (POST /api/v1/sessions/<id>/holds), shows the hold with a countdown and releases it. Seats
// someone else takes (live stream) drop out of the selection. Once held, "Check out" leads to
// the checkout page of the hold (/checkout/<hold id>/). For general admission / daily
// sessions the same panel holds a quantity of a tier. `window.piaowuSeatmap` exposes
// `seatCenter(code)` (viewport pixels) and `selection()` for tests.

const SEAT = 10; // seat-map units per seat (catalog.seatmaps.SEAT_SIZE)
const BLOCKED = "#4b5563";
const NO_TIER = "#6b7280";
const TAKEN = "#374151"; // held or sold: greyed, just lighter than the background

function format(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, key) => values[key] ?? "");
}

// `data` is GET /api/v1/sessions/<id>/seatmap: the pinned layout, the tiers, and
// tier_by_section[section][seat type] = the tier code a seat sells at (decided server-side).
function flatten(data, english) {
  const { layout, tiers } = data;
  const tierIndex = new Map(tiers.map((t, i) => [t.code, i]));
  const tierOf = (section, type) => {
    const code = (data.tier_by_section[section] || {})[type];
    return tierIndex.has(code) ? tierIndex.get(code) : -1;
  };
  let count = 0;
  for (const section of layout.sections) for (const row of section.rows) count += row.s.length;
  const xs = new Float32Array(count);
  const ys = new Float32Array(count);
  const colour = new Int16Array(count); // index into palette
  const meta = new Array(count);
  const index = new Map(); // seat code "<section>-<row>-<number>" → seat index
  const palette = [...tiers.map((t) => t.color), BLOCKED, NO_TIER, TAKEN];
  const sections = [];
  let i = 0;
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (const section of layout.sections) {
    const name = (english && section.name_en) || section.name;
    let sx0 = Infinity, sy0 = Infinity, sx1 = -Infinity;
    for (const row of section.rows) {
      for (const seat of row.s) {
        const [number, x, y, typeIndex = 0, flags = ""] = seat;
        const type = layout.seat_types[typeIndex];
        const tier = tierOf(section.code, type);
        xs[i] = x;
        ys[i] = y;
        colour[i] = flags.includes("b") ? tiers.length : tier >= 0 ? tier : tiers.length + 1;
        meta[i] = { section: name, row: row.r, number, tier, blocked: flags.includes("b"), state: "" };
        index.set(`${section.code}-${row.r}-${number}`, i);
        minX = Math.min(minX, x); maxX = Math.max(maxX, x);
        minY = Math.min(minY, y); maxY = Math.max(maxY, y);
        sx0 = Math.min(sx0, x); sy0 = Math.min(sy0, y); sx1 = Math.max(sx1, x);
        i += 1;
      }
    }
    if (sx0 !== Infinity) sections.push({ name, x: (sx0 + sx1) / 2, y: sy0 });
  }
  if (!count) { minX = minY = 0; maxX = maxY = 100; }
  const base = Int16Array.from(colour); // each seat's colour when available
  const colours = { blocked: tiers.length, taken: tiers.length + 2 };
  return { count, xs, ys, colour, base, colours, meta, index, palette, sections, bounds: { minX, minY, maxX, maxY } };
}

// --- Money, formatted like the site's `money` template filter -----------------------------------

let moneyFormats = null;
function moneyFormat(currency) {
  if (!moneyFormats) {
    const el = document.getElementById("money-formats");
    try { moneyFormats = el ? JSON.parse(el.textContent) : {}; } catch { moneyFormats = {}; }
  }
  const [symbol, places] = moneyFormats[currency] || ["", 2];
  return { symbol, places };
}

// "180.00" → 18000 (minor units), so sums are exact.
function toMinor(amount, currency) {
  const { places } = moneyFormat(currency);
  const [whole, fraction = ""] = String(amount).split(".");
  const sign = whole.startsWith("-") ? -1 : 1;
  const digits = (fraction + "0".repeat(places)).slice(0, places);
  return sign * (Math.abs(parseInt(whole, 10)) * 10 ** places + (parseInt(digits || "0", 10) || 0));
}

function formatMoney(minor, currency) {
  const { symbol, places } = moneyFormat(currency);
  let text = (minor / 10 ** places).toLocaleString("en-US", { minimumFractionDigits: places, maximumFractionDigits: places });
  if (text.includes(".") && /^0+$/.test(text.split(".")[1])) text = text.split(".")[0];
  return symbol ? `${symbol}${text}` : `${text} ${currency}`;
}

// --- The selection / hold panel ------------------------------------------------------------

class HoldPanel {
  constructor(root) {
    this.root = root;
    this.labels = root.dataset;
    this.mode = root.dataset.mode; // "seats" or "quantity"
    this.limit = parseInt(root.dataset.limit, 10) || 6;
    this.part = (name) => root.querySelector(`[data-part="${name}"]`);
    this.map = null; // set by the seat map: { describe(i), tierOf(i), code(i), redraw() }
    this.selected = new Map(); // seat code → seat index
    this.pending = new Set(); // codes of an in-flight hold request
    this.hold = null;
    this.timer = 0;
    this.storageKey = `piaowu-hold-${root.dataset.session}`;
    root.addEventListener("click", (e) => this.onClick(e));
    this.restore();
  }

  say(text) { this.part("message").textContent = text || ""; }

  holdUrl(id) { return this.labels.holdUrl.replace("HOLD_ID", encodeURIComponent(id)); }

  async request(method, url, body) {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": this.labels.csrf, Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 204) return { ok: true, data: null };
    let data = null;
    try { data = await response.json(); } catch { data = null; }
    return { ok: response.ok, status: response.status, data };
  }

  // --- Selection (reserved seating) ---
  toggle(i) {
    if (this.hold || this.mode !== "seats" || !this.map) return false;
    const code = this.map.code(i);
    if (this.selected.has(code)) {
      this.selected.delete(code);
    } else {
      if (!this.map.available(i)) { this.say(this.labels.labelNotAvailable); return false; }
      if (this.selected.size >= this.limit) { this.say(format(this.labels.labelLimit, { n: this.limit })); return false; }
      const tier = this.map.tierOf(i);
      const sameTier = [...this.selected.values()].filter((j) => this.map.tierOf(j) === tier).length;
      if (tier && tier.max_per_order && sameTier >= tier.max_per_order) {
        this.say(format(this.labels.labelLimitTier, { n: tier.max_per_order, tier: tier.name }));
        return false;
      }
      this.selected.set(code, i);
    }
    this.say("");
    this.render();
    return true;
  }

  // Seats that stopped being available (live stream) leave the selection.
  dropTaken(codes) {
    const gone = codes.filter((code) => this.selected.has(code) && !this.pending.has(code));
    if (!gone.length) return;
    for (const code of gone) this.selected.delete(code);
    this.say(format(this.labels.labelTakenLive, { seats: gone.join(", ") }));
    this.render();
  }

  isMine(i) {
    if (!this.map) return false;
    const code = this.map.code(i);
    return this.selected.has(code) || (this.hold && this.hold.items.some((item) => item.seat === code));
  }

  render() {
    if (this.mode !== "seats") return;
    const list = this.part("items");
    list.replaceChildren();
    let total = 0, currency = "";
    for (const [code, i] of this.selected) {
      const tier = this.map.tierOf(i);
      const li = document.createElement("li");
      li.className = "hold-item";
      li.dataset.seat = code;
      const name = document.createElement("span");
      name.className = "hold-item-name";
      name.textContent = this.map.where(i);
      const price = document.createElement("span");
      price.className = "hold-item-price";
      if (tier) {
        const minor = toMinor(tier.price.amount, tier.price.currency);
        total += minor;
        currency = tier.price.currency;
        price.textContent = `${tier.name} ${formatMoney(minor, currency)}`;
      }
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "hold-item-remove";
      remove.dataset.action = "remove";
      remove.dataset.seat = code;
      remove.setAttribute("aria-label", format(this.labels.labelRemove, { seat: this.map.where(i) }));
      remove.textContent = "×";
      li.append(name, price, remove);
      list.append(li);
    }
    const some = this.selected.size > 0;
    this.part("empty").hidden = some;
    this.part("total-row").hidden = !some;
    this.part("total").textContent = some && currency ? formatMoney(total, currency) : "";
    this.root.querySelector('[data-action="hold"]').disabled = !some;
    this.root.classList.toggle("hold-panel-open", some);
    this.map?.redraw();
  }

  // --- Holding ---
  async create(body, codes = []) {
    this.say(this.labels.labelHolding);
    for (const button of this.root.querySelectorAll(".hold-choose button")) button.disabled = true;
    for (const code of codes) this.pending.add(code);
    try {
      const { ok, data } = await this.request("POST", this.labels.holdsUrl, body);
      if (ok && data) {
        this.selected.clear();
        this.show(data);
        this.say("");
        return;
      }
      if (data && data.code === "seat_taken") {
        for (const code of (data.details && data.details.seats) || []) this.selected.delete(code);
      }
      this.say((data && data.message) || this.labels.labelFailed);
    } catch {
      this.say(this.labels.labelFailed);
    } finally {
      this.pending.clear();
      for (const button of this.root.querySelectorAll(".hold-choose button")) button.disabled = false;
      this.render();
    }
  }

  show(hold) {
    this.hold = hold;
    try { sessionStorage.setItem(this.storageKey, hold.id); } catch { /* private mode */ }
    const list = this.part("held-items");
    list.replaceChildren();
    for (const item of hold.items) {
      const li = document.createElement("li");
      li.className = "hold-item";
      if (item.seat) li.dataset.seat = item.seat;
      const name = document.createElement("span");
      name.className = "hold-item-name";
      const i = item.seat && this.map ? this.map.index(item.seat) : undefined;
      name.textContent = item.seat
        ? (i !== undefined ? this.map.where(i) : item.seat)
        : format(this.labels.labelQuantityItem, { tier: item.tier_name, n: item.quantity });
      const price = document.createElement("span");
      price.className = "hold-item-price";
      const unit = toMinor(item.unit_price.amount, item.unit_price.currency);
      price.textContent = `${item.seat ? `${item.tier_name} ` : ""}${formatMoney(unit * item.quantity, item.unit_price.currency)}`;
      li.append(name, price);
      list.append(li);
    }
    this.part("held-total").textContent = formatMoney(toMinor(hold.total.amount, hold.total.currency), hold.total.currency);
    const checkout = this.part("checkout");
    if (checkout && this.labels.checkoutUrl) checkout.href = this.labels.checkoutUrl.replace("HOLD_ID", encodeURIComponent(hold.id));
    const until = new Date(hold.expires_at);
    const time = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
      hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: this.labels.timezone || undefined,
    }).format(until);
    this.part("until").textContent = format(this.labels.labelHeld, { time });
    this.part("choose").hidden = true;
    this.part("result").hidden = false;
    this.root.classList.add("hold-panel-open");
    this.root.dataset.hold = hold.id;
    clearInterval(this.timer);
    const tick = () => {
      const left = Math.max(0, Math.round((until.getTime() - Date.now()) / 1000));
      const m = Math.floor(left / 60), sec = String(left % 60).padStart(2, "0");
      this.part("countdown").textContent = format(this.labels.labelLeft, { time: `${m}:${sec}` });
      if (left <= 0) this.clear(this.labels.labelExpired);
    };
    tick();
    this.timer = setInterval(tick, 1000);
    this.map?.redraw();
  }

  clear(message) {
    clearInterval(this.timer);
    this.hold = null;
    try { sessionStorage.removeItem(this.storageKey); } catch { /* private mode */ }
    delete this.root.dataset.hold;
    this.part("choose").hidden = false;
    this.part("result").hidden = true;
    this.root.classList.remove("hold-panel-open");
    this.say(message);
    this.render();
  }

  async release() {
    if (!this.hold) return;
    try {
      const { ok, status, data } = await this.request("DELETE", this.holdUrl(this.hold.id));
      if (ok || status === 404) this.clear(this.labels.labelReleased);
      else this.say((data && data.message) || this.labels.labelFailed);
    } catch {
      this.say(this.labels.labelFailed);
    }
  }

  // A hold made before a reload is shown again while it lasts.
  async restore() {
    let id = null;
    try { id = sessionStorage.getItem(this.storageKey); } catch { id = null; }
    if (!id) return;
    try {
      const response = await fetch(this.holdUrl(id), { credentials: "same-origin", headers: { Accept: "application/json" } });
      const data = response.ok ? await response.json() : null;
      if (data && data.status === "active") this.show(data);
      else sessionStorage.removeItem(this.storageKey);
    } catch { /* keep the page usable */ }
  }

  onClick(e) {
    const button = e.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    const action = button.dataset.action;
    if (action === "remove") {
      const i = this.selected.get(button.dataset.seat);
      if (i !== undefined) this.toggle(i);
    } else if (action === "hold") {
      const codes = [...this.selected.keys()];
      if (codes.length) this.create({ seats: codes }, codes);
    } else if (action === "best") {
      const quantity = parseInt(this.part("best-quantity").value, 10);
      const tier = this.part("best-tier").value || null;
      this.selected.clear();
      this.render();
      this.create({ best_available: { quantity, tier } });
    } else if (action === "hold-tier") {
      const tier = button.dataset.tier;
      const select = this.root.querySelector(`[data-quantity-for="${CSS.escape(tier)}"]`);
      this.create({ tier, quantity: parseInt(select.value, 10) });
    } else if (action === "release") {
      this.release();
    }
  }
}

function setUp(root, panel) {
  const canvas = root.querySelector("canvas");
  const info = root.querySelector(".seatmap-info");
  const labels = root.dataset;
  const english = (document.documentElement.lang || "").startsWith("en");
  const ctx = canvas.getContext("2d");
  let map = null;
  let tiers = [];
  let stage = "";
  let view = { scale: 1, x: 0, y: 0 };
  let selected = -1;
  let fitted = false;

  // World extent including the stage bar drawn above the first rows.
  const extent = () => {
    const b = map.bounds;
    return { x0: b.minX - SEAT * 2, y0: b.minY - SEAT * 3, x1: b.maxX + SEAT * 2, y1: b.maxY + SEAT * 2 };
  };

  const STAGE_ROOM = 44; // pixels kept above the seats for the stage bar

  function fit() {
    const e = extent();
    const w = canvas.clientWidth, h = canvas.clientHeight - STAGE_ROOM;
    const scale = Math.min(w / (e.x1 - e.x0), h / (e.y1 - e.y0));
    view = {
      scale,
      x: (w - (e.x1 - e.x0) * scale) / 2 - e.x0 * scale,
      y: STAGE_ROOM + (h - (e.y1 - e.y0) * scale) / 2 - e.y0 * scale,
    };
    fitted = true;
  }

  function resize() {
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(canvas.clientWidth * dpr);
    canvas.height = Math.round(canvas.clientHeight * dpr);
    if (map && !fitted) fit();
    draw();
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#1f2937";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!map) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const { scale, x: ox, y: oy } = view;
    const b = map.bounds;
    // Stage: a bar just above the first rows and their section names, at any zoom.
    const stageH = Math.max(SEAT * 2.5 * scale, 18);
    const stageY = oy + (b.minY - SEAT) * scale - stageH - 18; // room for section names
    const stageX0 = ox + b.minX * scale, stageX1 = ox + b.maxX * scale;
    const stageW = Math.max(stageX1 - stageX0, 60);
    ctx.fillStyle = "#e5e7eb";
    ctx.beginPath();
    ctx.roundRect((stageX0 + stageX1 - stageW) / 2, stageY, stageW, stageH, 6);
    ctx.fill();
    ctx.fillStyle = "#111827";
    ctx.font = "600 12px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(stage || labels.labelStage, (stageX0 + stageX1) / 2, stageY + stageH / 2);
    // Seats, one pass per colour
    const size = Math.max(SEAT * 0.8 * scale, 1.5);
    const half = size / 2;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    for (let c = 0; c < map.palette.length; c += 1) {
      ctx.fillStyle = map.palette[c];
      ctx.beginPath();
      for (let i = 0; i < map.count; i += 1) {
        if (map.colour[i] !== c) continue;
        const px = ox + map.xs[i] * scale, py = oy + map.ys[i] * scale;
        if (px < -size || py < -size || px > w + size || py > h + size) continue;
        if (size > 6) ctx.roundRect(px - half, py - half, size, size, size / 4);
        else ctx.rect(px - half, py - half, size, size);
      }
      ctx.fill();
    }
    // Section names once they are legible
    if (scale > 0.35) {
      ctx.fillStyle = "#f9fafb";
      ctx.font = "600 12px system-ui, sans-serif";
      ctx.textBaseline = "bottom";
      for (const s of map.sections) ctx.fillText(s.name, ox + s.x * scale, oy + (s.y - SEAT) * scale);
    }
    if (panel) {
      ctx.strokeStyle = "#facc15";
      ctx.lineWidth = 3;
      for (let i = 0; i < map.count; i += 1) {
        if (!panel.isMine(i)) continue;
        ctx.strokeRect(ox + map.xs[i] * scale - half - 2, oy + map.ys[i] * scale - half - 2, size + 4, size + 4);
      }
    }
    if (selected >= 0) {
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 2;
      ctx.strokeRect(ox + map.xs[selected] * scale - half - 2, oy + map.ys[selected] * scale - half - 2, size + 4, size + 4);
    }
  }

  function zoomAt(factor, cx, cy) {
    const scale = Math.min(Math.max(view.scale * factor, 0.05), 8);
    const k = scale / view.scale;
    view = { scale, x: cx - (cx - view.x) * k, y: cy - (cy - view.y) * k };
    draw();
  }

  function describe(i) {
    const m = map.meta[i];
    const where = format(labels.labelSeat, { section: m.section, row: m.row, number: m.number });
    if (m.blocked || m.state === "blocked") return `${where} — ${labels.labelBlocked}`;
    if ((m.state === "held" || m.state === "sold") && labels.labelTaken) return `${where} — ${labels.labelTaken}`;
    const tier = tiers[m.tier];
    if (!tier) return where;
    // Prices are formatted server-side on the page's tier list.
    const item = document.querySelector(`.tier[data-tier="${CSS.escape(tier.code)}"]`);
    return `${where} — ${tier.name} ${item ? item.dataset.priceLabel : ""}`.trim();
  }

  function pick(cx, cy) {
    const wx = (cx - view.x) / view.scale, wy = (cy - view.y) / view.scale;
    let best = -1, bestD = SEAT ** 2;
    for (let i = 0; i < map.count; i += 1) {
      const d = (map.xs[i] - wx) ** 2 + (map.ys[i] - wy) ** 2;
      if (d < bestD) { bestD = d; best = i; }
    }
    return best;
  }

  // Pointer handling: one pointer pans (or taps), two pointers pinch-zoom.
  const pointers = new Map();
  let moved = 0;
  let pinch = 0;
  const local = (e) => { const r = canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, local(e));
    moved = 0;
    if (pointers.size === 2) { const [a, b] = [...pointers.values()]; pinch = Math.hypot(a[0] - b[0], a[1] - b[1]); }
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!pointers.has(e.pointerId) || !map) return;
    const prev = pointers.get(e.pointerId);
    const now = local(e);
    pointers.set(e.pointerId, now);
    if (pointers.size === 1) {
      view.x += now[0] - prev[0];
      view.y += now[1] - prev[1];
      moved += Math.abs(now[0] - prev[0]) + Math.abs(now[1] - prev[1]);
      draw();
    } else if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      const dist = Math.hypot(a[0] - b[0], a[1] - b[1]);
      if (pinch > 0) zoomAt(dist / pinch, (a[0] + b[0]) / 2, (a[1] + b[1]) / 2);
      pinch = dist;
      moved += 10;
    }
  });
  const release = (e) => {
    if (pointers.has(e.pointerId) && pointers.size === 1 && moved < 6 && map) {
      const [cx, cy] = local(e);
      selected = pick(cx, cy);
      if (selected >= 0) {
        info.textContent = describe(selected);
        if (panel) panel.toggle(selected);
      }
      draw();
    }
    pointers.delete(e.pointerId);
    pinch = 0;
  };
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", (e) => { pointers.delete(e.pointerId); pinch = 0; });
  canvas.addEventListener("wheel", (e) => {
    if (!map) return;
    e.preventDefault();
    const [cx, cy] = local(e);
    zoomAt(Math.exp(-e.deltaY * 0.0015), cx, cy);
  }, { passive: false });
  root.querySelector(".seatmap-tools").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-zoom]");
    if (!button || !map) return;
    const w = canvas.clientWidth / 2, h = canvas.clientHeight / 2;
    if (button.dataset.zoom === "in") zoomAt(1.5, w, h);
    else if (button.dataset.zoom === "out") zoomAt(1 / 1.5, w, h);
    else { fit(); draw(); }
  });

  // --- Live seat states -------------------------------------------------------------------
  let redrawQueued = false;
  function redrawSoon() {
    if (redrawQueued) return;
    redrawQueued = true;
    requestAnimationFrame(() => { redrawQueued = false; draw(); });
  }

  // changes: [[seat code, "available" | "held" | "sold" | "blocked"], …]
  function applySeats(changes) {
    const gone = [];
    for (const [code, state] of changes) {
      const i = map.index.get(code);
      if (i === undefined) continue;
      map.meta[i].state = state;
      if (state !== "available") gone.push(code);
      map.colour[i] = state === "available" ? map.base[i]
        : state === "blocked" ? map.colours.blocked : map.colours.taken;
    }
    if (selected >= 0) info.textContent = describe(selected);
    if (panel && gone.length) panel.dropTaken(gone);
    redrawSoon();
  }

  function resetSeats() {
    map.colour.set(map.base);
    for (const m of map.meta) m.state = "";
  }

  // {"available": n, "tiers": {code: n}}: fill any figures the page marks for it.
  function applyQuota(message) {
    const number = (n) => Number(n).toLocaleString(document.documentElement.lang || undefined);
    for (const el of document.querySelectorAll("[data-live-available]")) el.textContent = number(message.available);
    for (const [code, n] of Object.entries(message.tiers || {})) {
      for (const el of document.querySelectorAll(`[data-live-tier-available="${CSS.escape(code)}"]`)) el.textContent = number(n);
    }
  }

  function apply(message) {
    if (message.type === "seats") applySeats(message.changes || []);
    else if (message.type === "quota") applyQuota(message);
  }

  function goLive() {
    if (!window.EventSource) return;
    const base = labels.seatmapUrl.replace(/\/seatmap\/?$/, "");
    const liveUrl = labels.liveUrl || `${base}/live`;
    const seatsUrl = labels.seatsUrl || `${base}/seats`;
    const source = new EventSource(liveUrl);
    let queued = null; // changes that arrive while the states load
    const receive = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      if (queued) queued.push(message);
      else apply(message);
    };
    // "hello" opens every (re)connection: the server is subscribed, so load the states now and
    // apply what arrived meanwhile after them. Changes missed while disconnected are covered.
    source.addEventListener("hello", () => {
      queued = [];
      fetch(seatsUrl, { credentials: "same-origin", cache: "no-store" })
        .then((response) => {
          if (!response.ok) throw new Error(`HTTP ${response.status}`);
          return response.json();
        })
        .then((data) => {
          resetSeats();
          applySeats(Object.entries(data.states || {}));
        })
        .catch(() => {}) // no states: keep the tier colours and still follow changes
        .finally(() => {
          const pending = queued || [];
          queued = null;
          for (const message of pending) apply(message);
          root.dataset.live = "open";
        });
    });
    source.addEventListener("seats", receive);
    source.addEventListener("quota", receive);
    source.addEventListener("error", () => { root.dataset.live = "reconnecting"; });
  }

  // What the hold panel and tests may ask of the map.
  const codes = () => {
    if (!map.codes) { map.codes = new Array(map.count); for (const [code, i] of map.index) map.codes[i] = code; }
    return map.codes;
  };
  function seatApi() {
    return {
      code: (i) => codes()[i],
      index: (code) => map.index.get(code),
      available: (i) => !map.meta[i].blocked && (map.meta[i].state === "" || map.meta[i].state === "available") && map.meta[i].tier >= 0,
      tierOf: (i) => tiers[map.meta[i].tier] || null,
      where: (i) => format(labels.labelSeat, { section: map.meta[i].section, row: map.meta[i].row, number: map.meta[i].number }),
      redraw: redrawSoon,
    };
  }
  window.piaowuSeatmap = {
    // Centre of a seat in viewport (CSS) pixels, or null if unknown.
    seatCenter(code) {
      const i = map ? map.index.get(code) : undefined;
      if (i === undefined) return null;
      const r = canvas.getBoundingClientRect();
      return { x: r.left + view.x + map.xs[i] * view.scale, y: r.top + view.y + map.ys[i] * view.scale };
    },
    selection: () => (panel ? [...panel.selected.keys()] : []),
    state: (code) => (map && map.index.has(code) ? map.meta[map.index.get(code)].state || "available" : null),
  };

  new ResizeObserver(resize).observe(canvas);
  info.dataset.hint = info.textContent;
  info.textContent = labels.labelLoading;
  fetch(labels.seatmapUrl, { credentials: "same-origin" })
    .then((response) => {
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return response.json();
    })
    .then((data) => {
      tiers = data.tiers;
      stage = data.layout.stage;
      map = flatten(data, english);
      info.textContent = info.dataset.hint;
      fit();
      resize();
      if (panel) panel.map = seatApi();
      root.dataset.ready = "true";
      goLive();
    })
    .catch(() => {
      info.textContent = labels.labelFailed;
    });
}

const panelRoot = document.getElementById("hold-panel");
const panel = panelRoot ? new HoldPanel(panelRoot) : null;
for (const root of document.querySelectorAll(".seatmap[data-seatmap-url]")) setUp(root, panel?.mode === "seats" ? panel : null);
