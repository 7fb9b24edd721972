// The direct host functions: they act at once and return their result,
// before any command the current batch queues. Only a component can import
// them, so this is the one module of the SDK that needs the host.

import wit from "wsserver:plugin/host@0.1.0";

import { formatOf } from "./context.js";
import { HostError, WsConnection } from "./types.js";
import { toBytes } from "./utf8.js";

/** Calls a host function whose WIT result is `result<_, host-error>`. */
function call(fn, ...args) {
  try {
    return fn(...args);
  } catch (error) {
    // The bindings throw the error case: the enum's name, or an object
    // carrying it, depending on the toolchain.
    const kind = typeof error === "string" ? error : (error?.payload ?? error?.val);
    if (typeof kind === "string") throw new HostError(kind);
    throw error;
  }
}

/** Queues a message now; throws a `HostError` (`wouldBlock` when the queue is full). */
export function send(connection, data, format) {
  call(wit.send, connection, formatOf(data, format), toBytes(data));
}

export function ping(connection, payload = "") {
  call(wit.ping, connection, toBytes(payload));
}

export function disconnect(connection, code = 1000, reason = "") {
  call(wit.disconnect, connection, code, reason);
}

export function setLineMode(connection, enabled) {
  call(wit.setLineMode, connection, enabled);
}

export function pauseData(connection) {
  call(wit.pauseData, connection);
}

export function resumeData(connection) {
  call(wit.resumeData, connection);
}

/** The WSConnection fields of one of this plugin's connections, a `WsConnection`. */
export function connectionInfo(connection) {
  return new WsConnection(call(wit.connectionInfo, connection));
}

/** This plugin's open connections, in no particular order. */
export function connections() {
  return Array.from(wit.connections());
}

export function subscribe(connection, topic) {
  call(wit.subscribe, connection, topic);
}

export function unsubscribe(connection, topic) {
  call(wit.unsubscribe, connection, topic);
}

export function publish(topic, data, { exclude = null, format } = {}) {
  call(wit.publish, topic, formatOf(data, format), toBytes(data), exclude);
}

/**
 * Stores up to 2048 bytes (a string is UTF-8 encoded) with one of this
 * plugin's connections; "" removes it. The host keeps it while the
 * connection is open, across hibernation, traps and hot swaps.
 */
export function setAttachment(connection, data) {
  call(wit.setAttachment, connection, toBytes(data));
}

/** The connection's attachment as a Uint8Array, or null. */
export function attachment(connection) {
  const found = call(wit.attachment, connection);
  return found == null ? null : Uint8Array.from(found);
}

/** A configuration value the operator granted this plugin, or null. */
export function config(key) {
  return wit.configGet(key) ?? null;
}

/** Writes a line to the server log at "error", "info", "verbose" or "debug". */
export function log(level, message) {
  wit.log(level, String(message));
}
