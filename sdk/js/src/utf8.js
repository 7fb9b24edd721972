// UTF-8 between strings and bytes. QuickJS builds may lack TextEncoder and
// TextDecoder, so this falls back to a small codec of its own.

const encoder = typeof TextEncoder === "function" ? new TextEncoder() : null;
const decoder = typeof TextDecoder === "function" ? new TextDecoder() : null;

/** A string as UTF-8 bytes (lone surrogates become U+FFFD). */
export function encodeUtf8(text) {
  if (encoder) return encoder.encode(text);
  const out = [];
  for (const char of text) {
    let c = char.codePointAt(0);
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return Uint8Array.from(out);
}

/**
 * UTF-8 bytes as a string. The host only delivers valid UTF-8 in text
 * messages, so the fallback does not check for malformed sequences.
 */
export function decodeUtf8(bytes) {
  if (decoder) return decoder.decode(bytes);
  let text = "";
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    let c;
    if (b < 0x80) { c = b; i += 1; }
    else if (b < 0xe0) { c = ((b & 31) << 6) | (bytes[i + 1] & 63); i += 2; }
    else if (b < 0xf0) { c = ((b & 15) << 12) | ((bytes[i + 1] & 63) << 6) | (bytes[i + 2] & 63); i += 3; }
    else {
      c = ((b & 7) << 18) | ((bytes[i + 1] & 63) << 12) | ((bytes[i + 2] & 63) << 6) | (bytes[i + 3] & 63);
      i += 4;
    }
    text += String.fromCodePoint(c);
  }
  return text;
}

/** Message data as bytes: a string is encoded, byte arrays pass through. */
export function toBytes(data) {
  if (typeof data === "string") return encodeUtf8(data);
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) return Uint8Array.from(data);
  throw new TypeError(`message data must be a string or bytes, not ${typeof data}`);
}
