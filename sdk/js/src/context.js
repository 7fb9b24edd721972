// The commands a plugin queues while it handles a batch of events.

import { toBytes } from "./utf8.js";

/** "text" for a string, "binary" for bytes, unless `format` says. */
export function formatOf(data, format) {
  return format ?? (typeof data === "string" ? "text" : "binary");
}

/**
 * Collects the effects of the event handlers of one batch.
 *
 * Each method appends a command; the host applies them in order after the
 * batch and reports any that fail as `error` events at the start of the
 * next one (after a would-block, `readyToSend` follows once the queue has
 * drained). Nothing crosses into the host until then, which is what makes
 * a batch cheap. For an immediate result use the `host` functions instead.
 */
export class Context {
  constructor() {
    /** The commands queued so far, in the WIT's `{tag, val}` form. */
    this.commands = [];
  }

  /**
   * Sends one whole message. A string goes as text, bytes as binary;
   * `format` ("text" or "binary") overrides that.
   */
  send(connection, data, format) {
    this.commands.push({
      tag: "send",
      val: { connection, format: formatOf(data, format), data: toBytes(data) },
    });
  }

  /** Sends a message back to the connection it came from, with its format. */
  sendMessage(message) {
    this.send(message.connection, message.data, message.format);
  }

  /** Sends a ping (at most 125 bytes); the pong arrives as a `ping` event. */
  ping(connection, payload = "") {
    this.commands.push({ tag: "ping", val: { connection, payload: toBytes(payload) } });
  }

  /** Starts the close handshake with a code and a reason of at most 123 bytes. */
  disconnect(connection, code = 1000, reason = "") {
    this.commands.push({ tag: "disconnect", val: { connection, code, reason } });
  }

  /** Turns line mode on or off (seed: ChangeLineMode). */
  setLineMode(connection, enabled) {
    this.commands.push({ tag: "set-line-mode", val: { connection, enabled } });
  }

  /** Stops data-in events for the connection until `resumeData`. */
  pauseData(connection) {
    this.commands.push({ tag: "pause-data", val: connection });
  }

  resumeData(connection) {
    this.commands.push({ tag: "resume-data", val: connection });
  }

  /** The connection receives what is published to `topic` until it leaves or closes. */
  subscribe(connection, topic) {
    this.commands.push({ tag: "subscribe", val: { connection, topic } });
  }

  unsubscribe(connection, topic) {
    this.commands.push({ tag: "unsubscribe", val: { connection, topic } });
  }

  /**
   * Sends a message to every subscriber of `topic` but `exclude` (typically
   * the sender); the host fans it out without calling the plugin again.
   */
  publish(topic, data, { exclude = null, format } = {}) {
    this.commands.push({
      tag: "publish",
      val: { topic, format: formatOf(data, format), data: toBytes(data), exclude },
    });
  }
}
