// Types of wsserver-sdk, written by hand (`jco types` fails on this WIT
// here). They follow wit/plugin.wit as componentize-qjs maps it: records are
// objects with camelCase fields, enums are strings, variants `{tag, val}`,
// list<u8> a Uint8Array, u64 a number.

/** Identifies one connection; never reused while the server runs. */
export type ConnectionId = number;
export type DataFormat = "continuation" | "text" | "binary";
export type MessageFormat = "text" | "binary";
export type LogLevel = "error" | "info" | "verbose" | "debug";
/** Message data: a string is sent as text, bytes as binary. */
export type Data = string | Uint8Array | ArrayBuffer | ArrayBufferView | number[];

export interface Header {
  name: string;
  value: string;
}

export interface ClientCertificate {
  der: Uint8Array;
  subject: string;
  issuer: string;
}

export interface TlsInfo {
  protocol: string;
  cipherSuite: string;
  serverName: string | null;
  clientCertificate: ClientCertificate | null;
}

/** A client's request to open a WebSocket. */
export declare class OpenRequest {
  connection: ConnectionId;
  requestUri: string;
  host: string;
  origin: string | null;
  subprotocols: string[];
  extensions: string;
  headers: Header[];
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  tls: TlsInfo | null;
  /** A request header's value (case-insensitive name), or null. */
  header(name: string): string | null;
  /** The request target's path, without the query. */
  readonly path: string;
  /** The query without `?`, or null. */
  readonly query: string | null;
}

export interface OpenResponse {
  /** 101 accepts; any other status rejects with it. */
  status?: number;
  subprotocol?: string | null;
  headers?: Header[] | Record<string, string>;
}

/** A chunk of a message as it arrived (or a line in line mode). */
export interface DataIn {
  connection: ConnectionId;
  format: DataFormat;
  data: Uint8Array;
  /** End of message. */
  eom: boolean;
  /** End of line (line mode only). */
  eol: boolean;
}

export interface PingIn {
  connection: ConnectionId;
  payload: Uint8Array;
  /** True for a pong. */
  response: boolean;
}

export interface DisconnectInfo {
  connection: ConnectionId;
  code: number;
  description: string;
}

export type ErrorKind = "would-block" | "invalid-connection" | "invalid-argument" | "send-failed" | "over-rate" | "other";

/** An `error` event. */
export declare class ErrorInfo {
  connection: ConnectionId;
  /** A seed error code: 10035, 126, 10022, 4202, 1008, ... */
  code: number;
  description: string;
  readonly kind: ErrorKind;
}

/** The WSConnection fields of a connection. */
export declare class WsConnection {
  id: ConnectionId;
  acceptData: boolean;
  bytesSent: number;
  connected: boolean;
  host: string;
  lineMode: boolean;
  localAddress: string;
  origin: string | null;
  readyToSend: boolean;
  remoteHost: string;
  remotePort: number;
  requestHeaders: Header[];
  requestUri: string;
  subprotocols: string[];
  subprotocol: string | null;
  timeoutSeconds: number;
  tls: TlsInfo | null;
  header(name: string): string | null;
  readonly path: string;
}

/** A direct host function failed. */
export declare class HostError extends Error {
  kind: "would-block" | "invalid-connection" | "invalid-argument";
  /** The seed error code (10035, 126, 10022). */
  code: number;
  readonly wouldBlock: boolean;
}

/** A whole message. */
export declare class Message {
  connection: ConnectionId;
  format: MessageFormat;
  data: Uint8Array;
  /** The payload decoded as UTF-8. */
  readonly text: string;
}

export declare class MessageAssembler {
  push(chunk: DataIn): Message | null;
  forget(connection: ConnectionId): void;
  isAssembling(connection: ConnectionId): boolean;
  snapshot(): Uint8Array;
  static restore(state: Uint8Array): MessageAssembler;
}

/** A command in the WIT's `{tag, val}` form. */
export interface Command {
  tag: "send" | "ping" | "disconnect" | "set-line-mode" | "pause-data" | "resume-data" | "subscribe" | "unsubscribe" | "publish";
  val: unknown;
}

export interface PublishOptions {
  /** A subscriber that does not receive it, typically the sender. */
  exclude?: ConnectionId | null;
  format?: MessageFormat;
}

/** The commands of one batch, applied by the host after it in order. */
export declare class Context {
  readonly commands: Command[];
  send(connection: ConnectionId, data: Data, format?: MessageFormat): void;
  sendMessage(message: Message): void;
  ping(connection: ConnectionId, payload?: Data): void;
  disconnect(connection: ConnectionId, code?: number, reason?: string): void;
  setLineMode(connection: ConnectionId, enabled: boolean): void;
  pauseData(connection: ConnectionId): void;
  resumeData(connection: ConnectionId): void;
  subscribe(connection: ConnectionId, topic: string): void;
  unsubscribe(connection: ConnectionId, topic: string): void;
  publish(topic: string, data: Data, options?: PublishOptions): void;
}

/** Extend it and override the events you handle. */
export declare class Plugin {
  messages: MessageAssembler;
  openRequest(request: OpenRequest): OpenResponse | void;
  connected(ctx: Context, connection: ConnectionId): void;
  dataIn(ctx: Context, chunk: DataIn): void;
  message(ctx: Context, message: Message): void;
  ping(ctx: Context, ping: PingIn): void;
  disconnected(ctx: Context, info: DisconnectInfo): void;
  readyToSend(ctx: Context, connection: ConnectionId): void;
  error(ctx: Context, error: ErrorInfo): void;
  snapshot(): Uint8Array;
  restore(state: Uint8Array): void;
}

export interface Exports {
  handler: {
    onOpenRequest(request: unknown): Required<OpenResponse>;
    onEvents(events: unknown[]): Command[];
  };
  lifecycle: {
    snapshot(): Uint8Array;
    restore(state: Uint8Array): void;
  };
}

/** `export const { handler, lifecycle } = exportPlugin(MyPlugin);` */
export declare function exportPlugin(plugin: Plugin | (new () => Plugin)): Exports;
export declare function handleEvents(plugin: Plugin, events: unknown[]): Command[];
export declare function accept(options?: { subprotocol?: string | null; headers?: Header[] | Record<string, string> }): Required<OpenResponse>;
export declare function reject(status: number, options?: { headers?: Header[] | Record<string, string> }): Required<OpenResponse>;
export declare function encodeUtf8(text: string): Uint8Array;
export declare function decodeUtf8(bytes: Uint8Array): string;

/** Direct host functions: they act at once and throw a HostError on failure. */
export declare namespace host {
  function send(connection: ConnectionId, data: Data, format?: MessageFormat): void;
  function ping(connection: ConnectionId, payload?: Data): void;
  function disconnect(connection: ConnectionId, code?: number, reason?: string): void;
  function setLineMode(connection: ConnectionId, enabled: boolean): void;
  function pauseData(connection: ConnectionId): void;
  function resumeData(connection: ConnectionId): void;
  function connectionInfo(connection: ConnectionId): WsConnection;
  function connections(): ConnectionId[];
  function subscribe(connection: ConnectionId, topic: string): void;
  function unsubscribe(connection: ConnectionId, topic: string): void;
  function publish(topic: string, data: Data, options?: PublishOptions): void;
  /** A configuration value granted to the plugin, or null. */
  function config(key: string): string | null;
  function log(level: LogLevel, message: string): void;
}
