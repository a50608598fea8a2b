// Checkout and order pages: a countdown to the hold's expiry / the payment deadline, and, while
// an order awaits payment, a quiet poll of its state (GET /api/v1/orders/<id> every 2 s) so the
// page shows "Paid" as soon as the provider's notification has arrived. Without JavaScript the
// order page refreshes itself (<noscript> meta refresh); if the API cannot be reached the
// script falls back to reloading the page now and then.

const POLL_MS = 2000;
const FALLBACK_RELOAD_MS = 10000;
const MAX_FAILURES = 3;

function format(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, key) => values[key] ?? "");
}

// [data-countdown="<seconds left>"]: counts down from what the server measured (no reliance on
// the device's clock being right) and reloads the page once at zero, which then shows the
// expired hold / missed deadline.
for (const el of document.querySelectorAll("[data-countdown]")) {
  const end = Date.now() + Number(el.dataset.countdown) * 1000;
  const out = el.querySelector('[data-part="left"]');
  const tick = () => {
    const left = Math.max(0, Math.round((end - Date.now()) / 1000));
    const m = Math.floor(left / 60), s = String(left % 60).padStart(2, "0");
    if (out) out.textContent = format(el.dataset.labelLeft || "{time}", { time: `${m}:${s}` });
    if (left <= 0) { window.location.reload(); return; }
    window.setTimeout(tick, 1000);
  };
  tick();
}

const order = document.querySelector("[data-poll-url]");
if (order) {
  const known = order.dataset.state;
  let failures = 0;
  const poll = async () => {
    if (document.hidden) { window.setTimeout(poll, POLL_MS); return; }
    try {
      const response = await fetch(order.dataset.pollUrl, {
        credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      failures = 0;
      if (data.state && data.state !== known) { window.location.reload(); return; }
    } catch {
      failures += 1;
      if (failures >= MAX_FAILURES) {
        window.setTimeout(() => window.location.reload(), FALLBACK_RELOAD_MS);
        return;
      }
    }
    window.setTimeout(poll, POLL_MS);
  };
  window.setTimeout(poll, POLL_MS);
}
