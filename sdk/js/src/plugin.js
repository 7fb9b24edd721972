// The class a plugin extends, the dispatch of a batch of events to its
// methods, and the component exports built from it.

import { MessageAssembler } from "./assembler.js";
import { Context } from "./context.js";
import { ErrorInfo, OpenRequest, accept, normalizeResponse } from "./types.js";

/**
 * A wsserver plugin: one method per event, each doing nothing unless
 * overridden. Event methods queue their effects on the `Context` they get.
 *
 * `dataIn` receives raw chunks (a fragment of a message, or a line in line
 * mode); by default it joins them and calls `message` with each whole
 * message, which is what most plugins override. The unfinished message of
 * a connection is dropped when it disconnects. `snapshot` and `restore`
 * carry the unfinished messages across a hot swap; a plugin with state of
 * its own overrides them (see `exportPlugin`).
 */
export class Plugin {
  constructor() {
    this.messages = new MessageAssembler();
  }

  /** Answer a client's request to open a WebSocket; accepts by default. */
  openRequest(request) {
    return accept();
  }

  /** The WebSocket is open. After a hot swap without `lifecycle`, replayed once per open connection. */
  connected(ctx, connection) {}

  /** A chunk arrived: `{connection, format: "text"|"binary"|"continuation", data, eom, eol}`. */
  dataIn(ctx, chunk) {
    const message = this.messages.push(chunk);
    if (message) this.message(ctx, message);
  }

  /** A whole message arrived (a `Message`: connection, format, data, text). */
  message(ctx, message) {}

  /** A ping or pong arrived (`{connection, payload, response}`); the host has answered a ping. */
  ping(ctx, ping) {}

  /** The connection ended (`{connection, code, description}`): its last event. */
  disconnected(ctx, info) {}

  /** A connection's outbound queue drained after a would-block. */
  readyToSend(ctx, connection) {}

  /** A queued command failed, or the host hit an error (an `ErrorInfo`). */
  error(ctx, error) {}

  /** The state a hot swap carries to the new version (bytes). */
  snapshot() {
    return this.messages.snapshot();
  }

  /** Loads what `snapshot` wrote, in a fresh plugin; throw to refuse the swap. */
  restore(state) {
    this.messages = MessageAssembler.restore(state);
  }
}

/**
 * Hands each event of a batch (WIT `{tag, val}` variants) to its method, in
 * order, and returns the commands they queued, in order. The exports call
 * it for every batch; unit tests call it to drive a plugin without a host.
 */
export function handleEvents(plugin, events) {
  const ctx = new Context();
  for (const { tag, val } of events) {
    switch (tag) {
      case "connected":
        plugin.connected(ctx, val);
        break;
      case "data-in":
        plugin.dataIn(ctx, val);
        break;
      case "ping":
        plugin.ping(ctx, val);
        break;
      case "disconnected":
        plugin.disconnected(ctx, val);
        plugin.messages?.forget(val.connection);
        break;
      case "ready-to-send":
        plugin.readyToSend(ctx, val);
        break;
      case "error":
        plugin.error(ctx, new ErrorInfo(val));
        break;
      default:
        // An event kind newer than this SDK: nothing to call.
        break;
    }
  }
  return ctx.commands;
}

/**
 * The component's exports for a plugin (a `Plugin` subclass or an
 * instance of one):
 *
 *     export const { handler, lifecycle } = exportPlugin(Echo);
 *
 * `handler` is always used; `lifecycle` only when the component is built
 * for world `stateful-plugin` (the build script's `--stateful`).
 */
export function exportPlugin(pluginOrClass) {
  const plugin = typeof pluginOrClass === "function" ? new pluginOrClass() : pluginOrClass;
  return {
    handler: {
      onOpenRequest: (request) => normalizeResponse(plugin.openRequest(new OpenRequest(request))),
      onEvents: (events) => handleEvents(plugin, events),
    },
    lifecycle: {
      snapshot: () => plugin.snapshot(),
      restore(state) {
        try {
          plugin.restore(state);
        } catch (error) {
          // The WIT error is a string: the swap aborts with this message.
          throw String(error?.message ?? error);
        }
      },
    },
  };
}
