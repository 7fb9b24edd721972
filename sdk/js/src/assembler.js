// Reassembly of fragmented messages from data-in chunks.

import { decodeUtf8 } from "./utf8.js";

/** A whole message received on a connection. */
export class Message {
  constructor(connection, format, data) {
    /** The connection it came from. */
    this.connection = connection;
    /** "text" or "binary". */
    this.format = format;
    /** The payload, a Uint8Array. */
    this.data = data;
  }

  /** The payload of a text message as a string. */
  get text() {
    return decodeUtf8(this.data);
  }
}

const SNAPSHOT_VERSION = 1;
const FORMAT_CODES = { text: 0, binary: 1 };
const FORMATS = ["text", "binary"];
const TWO_32 = 2 ** 32;

/**
 * Joins the chunks of fragmented messages, per connection.
 *
 * `push` every data-in chunk; it returns the message the chunk completes,
 * or null. A message that arrives in one chunk passes through without a
 * copy. A continuation with no message in progress belongs to a message
 * this instance never saw start (it replaced another mid-message) and is
 * dropped, so this is not for line mode. `snapshot` and `restore` carry
 * unfinished messages across a hot swap, in the Rust SDK's byte layout.
 */
export class MessageAssembler {
  constructor() {
    /** connection id -> {format, chunks: Uint8Array[], length} */
    this.inProgress = new Map();
  }

  push(chunk) {
    const { connection, format, data, eom } = chunk;
    if (format === "continuation") {
      const message = this.inProgress.get(connection);
      if (!message) return null;
      message.chunks.push(data);
      message.length += data.length;
      if (!eom) return null;
      this.inProgress.delete(connection);
      return new Message(connection, message.format, concat(message.chunks, message.length));
    }
    // A first chunk starts a new message; the host never interleaves
    // messages, so one still in progress here cannot complete.
    if (eom) {
      this.inProgress.delete(connection);
      return new Message(connection, format, data);
    }
    this.inProgress.set(connection, { format, chunks: [data], length: data.length });
    return null;
  }

  /** Drops the unfinished message of a connection, if any. */
  forget(connection) {
    this.inProgress.delete(connection);
  }

  /** Whether a message of this connection is unfinished. */
  isAssembling(connection) {
    return this.inProgress.has(connection);
  }

  /**
   * The unfinished messages as bytes: a version byte (1), then per message
   * the connection id (u64), format (u8: 0 text, 1 binary), length (u32)
   * and the bytes, little-endian.
   */
  snapshot() {
    let size = 1;
    for (const message of this.inProgress.values()) size += 13 + message.length;
    const out = new Uint8Array(size);
    const view = new DataView(out.buffer);
    out[0] = SNAPSHOT_VERSION;
    let at = 1;
    for (const [connection, message] of this.inProgress) {
      view.setUint32(at, connection % TWO_32, true);
      view.setUint32(at + 4, Math.floor(connection / TWO_32), true);
      out[at + 8] = FORMAT_CODES[message.format];
      view.setUint32(at + 9, message.length, true);
      out.set(concat(message.chunks, message.length), at + 13);
      at += 13 + message.length;
    }
    return out;
  }

  /** Reads what `snapshot` wrote; throws an Error on damaged bytes. */
  static restore(state) {
    const bytes = state instanceof Uint8Array ? state : Uint8Array.from(state);
    if (bytes.length === 0) throw new Error("message snapshot is truncated");
    if (bytes[0] !== SNAPSHOT_VERSION) {
      throw new Error(`unsupported message snapshot version ${bytes[0]}`);
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const assembler = new MessageAssembler();
    let at = 1;
    while (at < bytes.length) {
      if (at + 13 > bytes.length) throw new Error("message snapshot is truncated");
      const connection = view.getUint32(at, true) + view.getUint32(at + 4, true) * TWO_32;
      const format = FORMATS[bytes[at + 8]];
      if (format === undefined) throw new Error(`unknown message format ${bytes[at + 8]} in snapshot`);
      const length = view.getUint32(at + 9, true);
      at += 13;
      if (at + length > bytes.length) throw new Error("message snapshot is truncated");
      assembler.inProgress.set(connection, { format, chunks: [bytes.slice(at, at + length)], length });
      at += length;
    }
    return assembler;
  }
}

function concat(chunks, length) {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}
