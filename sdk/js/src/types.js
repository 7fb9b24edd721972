// Open requests and responses, connection info and errors, as small
// classes over the records the WIT bindings pass.

/** Path and query of a request target. */
function splitUri(uri) {
  const at = uri.indexOf("?");
  return at < 0 ? [uri, null] : [uri.slice(0, at), uri.slice(at + 1)];
}

function findHeader(headers, name) {
  const wanted = name.toLowerCase();
  const header = headers.find((h) => h.name.toLowerCase() === wanted);
  return header ? header.value : null;
}

/**
 * A client's request to open a WebSocket: the WIT `open-request` fields
 * (connection, requestUri, host, origin, subprotocols, extensions, headers,
 * remoteAddress, remotePort, localAddress, tls) and helpers.
 */
export class OpenRequest {
  constructor(fields) {
    Object.assign(this, fields);
  }

  /** A request header's value (name compared case-insensitively), or null. */
  header(name) {
    return findHeader(this.headers, name);
  }

  /** The path of the request target, without the query. */
  get path() {
    return splitUri(this.requestUri)[0];
  }

  /** The query string without `?`, or null. */
  get query() {
    return splitUri(this.requestUri)[1];
  }
}

/**
 * What the host knows about a connection: the WIT `ws-connection` fields
 * (id, acceptData, bytesSent, connected, host, lineMode, localAddress,
 * origin, readyToSend, remoteHost, remotePort, requestHeaders, requestUri,
 * subprotocols, subprotocol, timeoutSeconds, tls) and helpers.
 */
export class WsConnection {
  constructor(fields) {
    Object.assign(this, fields);
  }

  header(name) {
    return findHeader(this.requestHeaders, name);
  }

  get path() {
    return splitUri(this.requestUri)[0];
  }
}

/** Response headers as the WIT list, from a list or a `{name: value}` object. */
function headerList(headers) {
  if (Array.isArray(headers)) return headers;
  return Object.entries(headers).map(([name, value]) => ({ name, value: String(value) }));
}

/** Accepts a WebSocket, optionally with a subprotocol and extra headers. */
export function accept({ subprotocol = null, headers = [] } = {}) {
  return { status: 101, subprotocol, headers: headerList(headers) };
}

/** Refuses a WebSocket with an HTTP status (401, 403, 404, ...). */
export function reject(status, { headers = [] } = {}) {
  return { status, subprotocol: null, headers: headerList(headers) };
}

/** An open response in the WIT's shape, whatever a plugin returned. */
export function normalizeResponse(response) {
  if (response === undefined || response === null) return accept();
  return {
    status: response.status ?? 101,
    subprotocol: response.subprotocol ?? null,
    headers: headerList(response.headers ?? []),
  };
}

/** Seed error codes of the `error` event, by kind. */
const ERROR_KINDS = {
  10035: "would-block",
  126: "invalid-connection",
  10022: "invalid-argument",
  4202: "send-failed",
  1008: "over-rate",
};

/**
 * An `error` event: connection, code (a seed error code), description, and
 * `kind`: "would-block", "invalid-connection", "invalid-argument",
 * "send-failed", "over-rate" or "other".
 */
export class ErrorInfo {
  constructor(fields) {
    Object.assign(this, fields);
  }

  get kind() {
    return ERROR_KINDS[this.code] ?? "other";
  }
}

const HOST_ERROR_CODES = { "would-block": 10035, "invalid-connection": 126, "invalid-argument": 10022 };

/**
 * A direct host function failed. `kind` is "would-block" (the outbound
 * queue is full; `readyToSend` follows), "invalid-connection" or
 * "invalid-argument"; `code` is the seed error code.
 */
export class HostError extends Error {
  constructor(kind) {
    super(`host error: ${kind}`);
    this.name = "HostError";
    this.kind = kind;
    this.code = HOST_ERROR_CODES[kind] ?? 0;
  }

  get wouldBlock() {
    return this.kind === "would-block";
  }
}
