// Renames the engine's WebAssembly imports and exports to short names, in the `.wasm` and in
// wasm-bindgen's JS glue alike. wasm-bindgen names every import after the Rust item plus a
// 16-hex-digit hash (`__wbg_set_onbufferedamountlow_5338056914d5225a`), each written once in the
// `.wasm` and once in the glue; the hashes do not compress, and they were about 2.5 KB of the
// gzipped package. Nothing else changes: the glue's import object keys and its `wasm.NAME`
// accesses are rewritten, and the script refuses (exit 1) to touch glue of any other shape.
//
//   node shorten-names.mjs DIR      (DIR holds peer_wasm.js and peer_wasm_bg.wasm)
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node shorten-names.mjs DIR");
  process.exit(2);
}
const wasmPath = join(dir, "peer_wasm_bg.wasm");
const gluePath = join(dir, "peer_wasm.js");
const glueModule = "./peer_wasm_bg.js";

/** Unsigned LEB128 at `bytes[at]`: `[value, next offset]`. */
function readLeb(bytes, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return [value, at];
  }
}

function leb(value) {
  const out = [];
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value) byte |= 0x80;
    out.push(byte);
  } while (value);
  return out;
}

const utf8 = new TextDecoder();
function readName(bytes, at) {
  const [length, start] = readLeb(bytes, at);
  return [utf8.decode(bytes.subarray(start, start + length)), start + length];
}

function name(text) {
  const encoded = new TextEncoder().encode(text);
  return [...leb(encoded.length), ...encoded];
}

/** Length in bytes of an import description (after its kind byte) at `at`. */
function importDescEnd(bytes, kind, at) {
  const limits = (p) => {
    const flags = bytes[p];
    p = readLeb(bytes, p + 1)[1];
    return flags & 1 ? readLeb(bytes, p)[1] : p;
  };
  switch (kind) {
    case 0: return readLeb(bytes, at)[1]; // function: type index
    case 1: return limits(at + 1); // table: reference type, limits
    case 2: return limits(at); // memory: limits
    case 3: return at + 2; // global: value type, mutability
    case 4: return readLeb(bytes, at + 1)[1]; // tag: attribute, type index
    default: throw new Error(`unknown import kind ${kind}`);
  }
}

/** Short identifiers: a, b, ..., Z, aa, ab, ... */
function* shortNames() {
  const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  for (let length = 1; ; length++) {
    const index = new Array(length).fill(0);
    for (;;) {
      yield index.map((i) => letters[i]).join("");
      let k = length - 1;
      while (k >= 0 && ++index[k] === letters.length) index[k--] = 0;
      if (k < 0) break;
    }
  }
}

const bytes = readFileSync(wasmPath);
let glue = readFileSync(gluePath, "utf8");
const fresh = shortNames();
const renamed = new Map(); // old name -> [new name, "import" | "export"]
const out = [bytes.subarray(0, 8)];
let at = 8;
while (at < bytes.length) {
  const id = bytes[at];
  const [size, start] = readLeb(bytes, at + 1);
  const end = start + size;
  if (id === 2 || id === 7) {
    let [count, p] = readLeb(bytes, start);
    const body = [...leb(count)];
    while (count--) {
      let entry;
      if (id === 2) {
        const [module, afterModule] = readName(bytes, p);
        const [field, afterField] = readName(bytes, afterModule);
        const kind = bytes[afterField];
        const descEnd = importDescEnd(bytes, kind, afterField + 1);
        if (module !== glueModule) throw new Error(`import from unexpected module ${module}`);
        const short = fresh.next().value;
        renamed.set(field, [short, "import"]);
        entry = [...name("a"), ...name(short), ...bytes.subarray(afterField, descEnd)];
        p = descEnd;
      } else {
        const [field, afterField] = readName(bytes, p);
        const descEnd = readLeb(bytes, afterField + 1)[1];
        const short = fresh.next().value;
        renamed.set(field, [short, "export"]);
        entry = [...name(short), ...bytes.subarray(afterField, descEnd)];
        p = descEnd;
      }
      body.push(...entry);
    }
    out.push(Uint8Array.of(id, ...leb(body.length)), Uint8Array.from(body));
  } else {
    out.push(bytes.subarray(at, end));
  }
  at = end;
}

// The glue: import keys (`NAME: function(`), export accesses (`wasm.NAME`; the glue also has
// local functions named like some exports, which its minifier shortens), the module key.
if (/\bwasm\s*\[/.test(glue)) throw new Error("the glue indexes the exports dynamically");
const escape = (s) => s.replace(/[$]/g, "\\$");
for (const [old, [short, kind]] of renamed) {
  if (kind === "import") {
    const key = new RegExp(`(?<![A-Za-z0-9_$.])${escape(old)}(?=\\s*:\\s*function\\b)`, "g");
    const uses = glue.match(new RegExp(`(?<![A-Za-z0-9_$])${escape(old)}(?![A-Za-z0-9_$])`, "g"))?.length ?? 0;
    if (uses !== 1 || glue.match(key)?.length !== 1) throw new Error(`import ${old}: expected one key in the glue, found ${uses} uses`);
    glue = glue.replace(key, short);
  } else {
    glue = glue.replace(new RegExp(`(?<![A-Za-z0-9_$.])wasm\\.${escape(old)}(?![A-Za-z0-9_$])`, "g"), `wasm.${short}`);
  }
}
const moduleKey = JSON.stringify(glueModule);
if (glue.split(moduleKey).length !== 2) throw new Error(`expected one ${moduleKey} in the glue`);
glue = glue.replace(moduleKey, '"a"');

writeFileSync(wasmPath, Buffer.concat(out));
writeFileSync(gluePath, glue);
