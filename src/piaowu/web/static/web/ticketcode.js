// The browser side of tickets/codec.py's rotating codes, shared by the holder's e-ticket page
// (web/ticket.js draws the code) and the gate scanner's offline check (console/gate.js):
//   code(step) = base32(HMAC-SHA256(per-ticket secret, step as 8 bytes big-endian)[:5])

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

export function base64Bytes(text) {
  return Uint8Array.from(window.atob(text), (ch) => ch.charCodeAt(0));
}

/** RFC 4648 base32 without padding. */
export function base32Encode(bytes) {
  let bits = 0, value = 0, out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** An HMAC-SHA256 signing key from raw bytes. */
export function hmacKey(bytes) {
  return crypto.subtle.importKey("raw", bytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}

export async function hmac(key, message) {
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, message));
}

/** The rotating code of a ticket's secret (an HMAC key from `hmacKey`) for 15-second `step`. */
export async function rotatingCode(key, step) {
  const message = new DataView(new ArrayBuffer(8));
  message.setUint32(0, Math.floor(step / 2 ** 32));
  message.setUint32(4, step >>> 0);
  return base32Encode((await hmac(key, message.buffer)).slice(0, 5));
}
