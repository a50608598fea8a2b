// A small QR code encoder (ISO/IEC 18004) for the e-ticket page: it draws the rotating ticket
// code in the browser, so the code can change every few seconds without the network.
//
// Scope: one segment in alphanumeric or byte (UTF-8) mode, versions 1–10, error correction
// L/M/Q/H (the ticket page uses M), Reed–Solomon over GF(256), all eight masks scored with the
// standard penalty rules, format and version information. No dependencies, no build step.
//
//   import { encode, toSvg } from "./qr.js";
//   const qr = encode("PW1…:ABCDEFGH");            // { version, mask, size, modules }
//   element.innerHTML = toSvg(qr, { border: 4 });  // modules[y][x] === true is dark
//
// `encode(text, { ecl, minVersion, maxVersion, mask })` picks the smallest version that fits
// (≥ minVersion) and the mask with the lowest penalty unless `mask` (0–7) is given.

const ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
const MAX_VERSION = 10;

// Index by version (0 unused). Error correction codewords per block and number of blocks.
const ECC_PER_BLOCK = {
  L: [0, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18],
  M: [0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26],
  Q: [0, 13, 22, 18, 26, 18, 24, 18, 22, 20, 24],
  H: [0, 17, 28, 22, 16, 22, 28, 26, 26, 24, 28],
};
const BLOCKS = {
  L: [0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4],
  M: [0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5],
  Q: [0, 1, 1, 2, 2, 4, 4, 6, 6, 8, 8],
  H: [0, 1, 1, 2, 4, 4, 4, 5, 6, 8, 8],
};
const ECL_FORMAT_BITS = { L: 1, M: 0, Q: 3, H: 2 };

const MASKS = [
  (x, y) => (x + y) % 2 === 0,
  (x, y) => y % 2 === 0,
  (x, y) => x % 3 === 0,
  (x, y) => (x + y) % 3 === 0,
  (x, y) => (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0,
  (x, y) => ((x * y) % 2) + ((x * y) % 3) === 0,
  (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2 === 0,
  (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2 === 0,
];

// --- Data ------------------------------------------------------------------------------------

function rawDataModules(version) {
  let result = (16 * version + 128) * version + 64;
  if (version >= 2) {
    const align = Math.floor(version / 7) + 2;
    result -= (25 * align - 10) * align - 55;
    if (version >= 7) result -= 36;
  }
  return result;
}

function dataCodewords(version, ecl) {
  return Math.floor(rawDataModules(version) / 8) - ECC_PER_BLOCK[ecl][version] * BLOCKS[ecl][version];
}

class BitBuffer {
  constructor() { this.bits = []; }
  put(value, length) {
    for (let i = length - 1; i >= 0; i--) this.bits.push((value >>> i) & 1);
  }
}

/** The mode for `text`: alphanumeric when every character is in the QR set, else bytes. */
export function modeOf(text) {
  for (const ch of text) if (!ALPHANUMERIC.includes(ch)) return "byte";
  return "alphanumeric";
}

function segmentBits(text, mode, version) {
  const buffer = new BitBuffer();
  if (mode === "alphanumeric") {
    buffer.put(0b0010, 4);
    buffer.put(text.length, version <= 9 ? 9 : 11);
    let i = 0;
    for (; i + 1 < text.length; i += 2) {
      buffer.put(ALPHANUMERIC.indexOf(text[i]) * 45 + ALPHANUMERIC.indexOf(text[i + 1]), 11);
    }
    if (i < text.length) buffer.put(ALPHANUMERIC.indexOf(text[i]), 6);
  } else {
    const bytes = new TextEncoder().encode(text);
    buffer.put(0b0100, 4);
    buffer.put(bytes.length, version <= 9 ? 8 : 16);
    for (const b of bytes) buffer.put(b, 8);
  }
  return buffer.bits;
}

function dataCodewordsFor(bits, capacityBytes) {
  const capacityBits = capacityBytes * 8;
  const all = bits.slice();
  for (let i = 0; i < 4 && all.length < capacityBits; i++) all.push(0); // terminator
  while (all.length % 8 !== 0) all.push(0);
  const bytes = [];
  for (let i = 0; i < all.length; i += 8) {
    let b = 0;
    for (let j = 0; j < 8; j++) b = (b << 1) | all[i + j];
    bytes.push(b);
  }
  for (let pad = 0xec; bytes.length < capacityBytes; pad ^= 0xec ^ 0x11) bytes.push(pad);
  return bytes;
}

// --- Reed–Solomon over GF(256), polynomial x^8 + x^4 + x^3 + x^2 + 1 --------------------------

function gfMultiply(x, y) {
  let z = 0;
  for (let i = 7; i >= 0; i--) {
    z = (z << 1) ^ ((z >>> 7) * 0x11d);
    z ^= ((y >>> i) & 1) * x;
  }
  return z;
}

function rsDivisor(degree) {
  const result = new Array(degree).fill(0);
  result[degree - 1] = 1;
  let root = 1;
  for (let i = 0; i < degree; i++) {
    for (let j = 0; j < result.length; j++) {
      result[j] = gfMultiply(result[j], root);
      if (j + 1 < result.length) result[j] ^= result[j + 1];
    }
    root = gfMultiply(root, 0x02);
  }
  return result;
}

function rsRemainder(data, divisor) {
  const result = divisor.map(() => 0);
  for (const b of data) {
    const factor = b ^ result.shift();
    result.push(0);
    divisor.forEach((coef, i) => { result[i] ^= gfMultiply(coef, factor); });
  }
  return result;
}

function interleave(data, version, ecl) {
  const blocks = BLOCKS[ecl][version];
  const eccLength = ECC_PER_BLOCK[ecl][version];
  const rawCodewords = Math.floor(rawDataModules(version) / 8);
  const shortBlocks = blocks - (rawCodewords % blocks);
  const shortLength = Math.floor(rawCodewords / blocks);
  const divisor = rsDivisor(eccLength);
  const dataBlocks = [];
  const eccBlocks = [];
  for (let i = 0, k = 0; i < blocks; i++) {
    const length = shortLength - eccLength + (i < shortBlocks ? 0 : 1);
    const block = data.slice(k, k + length);
    k += length;
    dataBlocks.push(block);
    eccBlocks.push(rsRemainder(block, divisor));
  }
  const result = [];
  const longest = shortLength - eccLength + 1;
  for (let i = 0; i < longest; i++) {
    for (const block of dataBlocks) if (i < block.length) result.push(block[i]);
  }
  for (let i = 0; i < eccLength; i++) for (const block of eccBlocks) result.push(block[i]);
  return result;
}

// --- The symbol -------------------------------------------------------------------------------

function alignmentPositions(version) {
  if (version === 1) return [];
  const count = Math.floor(version / 7) + 2;
  const size = version * 4 + 17;
  const step = Math.ceil((version * 4 + 4) / (count * 2 - 2)) * 2;
  const result = [6];
  for (let pos = size - 7; result.length < count; pos -= step) result.splice(1, 0, pos);
  return result;
}

class Symbol {
  constructor(version) {
    this.version = version;
    this.size = version * 4 + 17;
    this.modules = Array.from({ length: this.size }, () => new Array(this.size).fill(false));
    this.isFunction = Array.from({ length: this.size }, () => new Array(this.size).fill(false));
  }

  setFunction(x, y, dark) {
    this.modules[y][x] = dark;
    this.isFunction[y][x] = true;
  }

  drawFunctionPatterns() {
    const size = this.size;
    for (let i = 0; i < size; i++) {
      this.setFunction(6, i, i % 2 === 0);
      this.setFunction(i, 6, i % 2 === 0);
    }
    this.drawFinder(3, 3);
    this.drawFinder(size - 4, 3);
    this.drawFinder(3, size - 4);
    const positions = alignmentPositions(this.version);
    const last = positions.length - 1;
    positions.forEach((x, i) => {
      positions.forEach((y, j) => {
        const onFinder = (i === 0 && j === 0) || (i === 0 && j === last) || (i === last && j === 0);
        if (!onFinder) this.drawAlignment(x, y);
      });
    });
    this.drawFormat(0, 0); // reserve the areas; drawn for real once the mask is known
    this.drawVersion();
  }

  drawFinder(cx, cy) {
    for (let dy = -4; dy <= 4; dy++) {
      for (let dx = -4; dx <= 4; dx++) {
        const x = cx + dx, y = cy + dy;
        if (x < 0 || y < 0 || x >= this.size || y >= this.size) continue;
        const distance = Math.max(Math.abs(dx), Math.abs(dy));
        this.setFunction(x, y, distance !== 2 && distance !== 4);
      }
    }
  }

  drawAlignment(cx, cy) {
    for (let dy = -2; dy <= 2; dy++) {
      for (let dx = -2; dx <= 2; dx++) {
        this.setFunction(cx + dx, cy + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
      }
    }
  }

  drawFormat(eclBits, mask) {
    const data = (eclBits << 3) | mask;
    let rem = data;
    for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
    const bits = ((data << 10) | rem) ^ 0x5412;
    const bit = (i) => ((bits >>> i) & 1) !== 0;
    const size = this.size;
    for (let i = 0; i <= 5; i++) this.setFunction(8, i, bit(i));
    this.setFunction(8, 7, bit(6));
    this.setFunction(8, 8, bit(7));
    this.setFunction(7, 8, bit(8));
    for (let i = 9; i < 15; i++) this.setFunction(14 - i, 8, bit(i));
    for (let i = 0; i < 8; i++) this.setFunction(size - 1 - i, 8, bit(i));
    for (let i = 8; i < 15; i++) this.setFunction(8, size - 15 + i, bit(i));
    this.setFunction(8, size - 8, true); // the dark module
  }

  drawVersion() {
    if (this.version < 7) return;
    let rem = this.version;
    for (let i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25);
    const bits = (this.version << 12) | rem;
    for (let i = 0; i < 18; i++) {
      const dark = ((bits >>> i) & 1) !== 0;
      const a = this.size - 11 + (i % 3);
      const b = Math.floor(i / 3);
      this.setFunction(a, b, dark);
      this.setFunction(b, a, dark);
    }
  }

  drawCodewords(codewords) {
    const size = this.size;
    let i = 0;
    const total = codewords.length * 8;
    for (let right = size - 1; right >= 1; right -= 2) {
      if (right === 6) right = 5; // skip the vertical timing pattern
      for (let vert = 0; vert < size; vert++) {
        for (let j = 0; j < 2; j++) {
          const x = right - j;
          const upward = ((right + 1) & 2) === 0;
          const y = upward ? size - 1 - vert : vert;
          if (!this.isFunction[y][x] && i < total) {
            this.modules[y][x] = ((codewords[i >>> 3] >>> (7 - (i & 7))) & 1) !== 0;
            i++;
          }
        }
      }
    }
  }

  applyMask(mask) {
    const test = MASKS[mask];
    for (let y = 0; y < this.size; y++) {
      for (let x = 0; x < this.size; x++) {
        if (!this.isFunction[y][x] && test(x, y)) this.modules[y][x] = !this.modules[y][x];
      }
    }
  }

  // Penalty rules N1–N4 of the standard (N1 = 3, N2 = 3, N3 = 40, N4 = 10); the area
  // around the symbol counts as light for the finder-like pattern rule.
  penalty() {
    const size = this.size;
    const m = this.modules;
    let result = 0;
    const addHistory = (length, history) => {
      if (history[0] === 0) length += size;
      history.pop();
      history.unshift(length);
    };
    const countPatterns = (h) => {
      const n = h[1];
      const core = n > 0 && h[2] === n && h[3] === n * 3 && h[4] === n && h[5] === n;
      return (core && h[0] >= n * 4 && h[6] >= n ? 1 : 0) + (core && h[6] >= n * 4 && h[0] >= n ? 1 : 0);
    };
    const terminate = (colour, length, history) => {
      if (colour) {
        addHistory(length, history);
        length = 0;
      }
      addHistory(length + size, history);
      return countPatterns(history);
    };
    for (const line of [(a, b) => m[a][b], (a, b) => m[b][a]]) {
      for (let a = 0; a < size; a++) {
        let colour = false;
        let run = 0;
        const history = [0, 0, 0, 0, 0, 0, 0];
        for (let b = 0; b < size; b++) {
          if (line(a, b) === colour) {
            run++;
            if (run === 5) result += 3;
            else if (run > 5) result++;
          } else {
            addHistory(run, history);
            if (!colour) result += countPatterns(history) * 40;
            colour = line(a, b);
            run = 1;
          }
        }
        result += terminate(colour, run, history) * 40;
      }
    }
    for (let y = 0; y < size - 1; y++) {
      for (let x = 0; x < size - 1; x++) {
        const c = m[y][x];
        if (c === m[y][x + 1] && c === m[y + 1][x] && c === m[y + 1][x + 1]) result += 3;
      }
    }
    let dark = 0;
    for (const row of m) for (const cell of row) if (cell) dark++;
    const total = size * size;
    const k = Math.ceil(Math.abs(dark * 20 - total * 10) / total) - 1;
    return result + k * 10;
  }
}

/** Encode `text` as a QR symbol; throws a RangeError when it does not fit version 10. */
export function encode(text, { ecl = "M", minVersion = 1, maxVersion = MAX_VERSION, mask = -1 } = {}) {
  if (!(ecl in ECC_PER_BLOCK)) throw new RangeError(`unknown error correction level ${ecl}`);
  if (minVersion < 1 || maxVersion > MAX_VERSION || minVersion > maxVersion) {
    throw new RangeError("versions 1–10 only");
  }
  if (mask < -1 || mask > 7) throw new RangeError("mask is 0–7 (or -1: choose)");
  const mode = modeOf(text);
  let version = minVersion;
  let bits;
  for (; ; version++) {
    if (version > maxVersion) throw new RangeError("text too long for a version 10 QR code");
    bits = segmentBits(text, mode, version);
    const counts = mode === "alphanumeric" ? [9, 11] : [8, 16];
    const countBits = version <= 9 ? counts[0] : counts[1];
    const count = mode === "alphanumeric" ? text.length : new TextEncoder().encode(text).length;
    if (count < 2 ** countBits && bits.length <= dataCodewords(version, ecl) * 8) break;
  }
  const codewords = interleave(dataCodewordsFor(bits, dataCodewords(version, ecl)), version, ecl);
  const symbol = new Symbol(version);
  symbol.drawFunctionPatterns();
  symbol.drawCodewords(codewords);
  const eclBits = ECL_FORMAT_BITS[ecl];
  let chosen = mask;
  if (chosen === -1) {
    let best = Infinity;
    for (let candidate = 0; candidate < 8; candidate++) {
      symbol.applyMask(candidate);
      symbol.drawFormat(eclBits, candidate);
      const score = symbol.penalty();
      if (score < best) { best = score; chosen = candidate; }
      symbol.applyMask(candidate); // XOR again: undone
    }
  }
  symbol.applyMask(chosen);
  symbol.drawFormat(eclBits, chosen);
  return { version, mask: chosen, ecl, mode, size: symbol.size, modules: symbol.modules };
}

/** An SVG of the symbol: a light square (with a `border`-module quiet zone) and one path of
 * dark modules, in module units so it scales crisply to any CSS size. */
export function toSvg(qr, { border = 4, dark = "#000", light = "#fff", label = "" } = {}) {
  const full = qr.size + border * 2;
  let path = "";
  qr.modules.forEach((row, y) => {
    let x = 0;
    while (x < qr.size) {
      if (!row[x]) { x++; continue; }
      let end = x;
      while (end < qr.size && row[end]) end++;
      path += `M${x + border} ${y + border}h${end - x}v1h${x - end}z`;
      x = end;
    }
  });
  const title = label ? `<title>${label.replace(/[<>&"]/g, "")}</title>` : "";
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${full} ${full}" ` +
    `shape-rendering="crispEdges" role="img"${label ? "" : ' aria-hidden="true"'}>${title}` +
    `<rect width="${full}" height="${full}" fill="${light}"/>` +
    `<path d="${path}" fill="${dark}"/></svg>`
  );
}
