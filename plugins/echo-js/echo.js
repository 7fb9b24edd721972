// Echoes each whole message back to its sender with its format (text or
// binary). Fragmented messages are joined first; built as a stateful
// plugin, so a message still arriving survives a hot swap.
import { Plugin, exportPlugin } from "wsserver-sdk";

class Echo extends Plugin {
  message(ctx, message) {
    ctx.sendMessage(message);
  }
}

export const { handler, lifecycle } = exportPlugin(Echo);
