// wsserver plugins in JavaScript: extend `Plugin`, override the events you
// handle, and export it with `exportPlugin`. See README.md.

export { Message, MessageAssembler } from "./assembler.js";
export { Context } from "./context.js";
export { Plugin, exportPlugin, handleEvents } from "./plugin.js";
export { ErrorInfo, HostError, OpenRequest, WsConnection, accept, reject } from "./types.js";
export { decodeUtf8, encodeUtf8 } from "./utf8.js";
export * as host from "./host.js";
