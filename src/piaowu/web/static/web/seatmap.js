// Read-only seat map viewer: draws a session's seat map on a canvas, coloured by price tier,
// with pan (drag), zoom (wheel, pinch, buttons) and tap-to-inspect. Fast for 40,000+ seats:
// seats live in typed arrays and are drawn in one pass per colour.
// Live: after the layout, it loads the seat states (GET …/seats) and follows changes over
// server-sent events (GET …/live): held and sold seats turn grey, released ones get their
// tier colour back. EventSource reconnects by itself; each (re)connection reloads the states.
// All wording comes from data-* attributes rendered server-side in the user's language.

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

function setUp(root) {
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
      if (selected >= 0) info.textContent = describe(selected);
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
    for (const [code, state] of changes) {
      const i = map.index.get(code);
      if (i === undefined) continue;
      map.meta[i].state = state;
      map.colour[i] = state === "available" ? map.base[i]
        : state === "blocked" ? map.colours.blocked : map.colours.taken;
    }
    if (selected >= 0) info.textContent = describe(selected);
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
      root.dataset.ready = "true";
      goLive();
    })
    .catch(() => {
      info.textContent = labels.labelFailed;
    });
}

for (const root of document.querySelectorAll(".seatmap[data-seatmap-url]")) setUp(root);
