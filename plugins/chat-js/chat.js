// Chat rooms by request path: a client that opens /rooms/lobby joins room
// /rooms/lobby, and each whole message it sends goes, with its format, to
// every other member. Rooms are host topics, so the host does the fan-out.
// If the operator sets `chat.welcome`, each member is greeted with it.
import { Plugin, exportPlugin, host } from "wsserver-sdk";

class Chat extends Plugin {
  constructor() {
    super();
    /** connection id -> room; rebuilt from `connected` after a hot swap */
    this.rooms = new Map();
  }

  connected(ctx, connection) {
    const room = this.room(connection);
    if (room === null) return;
    ctx.subscribe(connection, room);
    const welcome = host.config("chat.welcome");
    if (welcome !== null) ctx.send(connection, `${welcome} ${room}`);
  }

  message(ctx, message) {
    const room = this.room(message.connection);
    if (room !== null) ctx.publish(room, message.data, { exclude: message.connection, format: message.format });
  }

  disconnected(ctx, info) {
    this.rooms.delete(info.connection);
  }

  /** The member's room, asking the host for its path the first time; null once it has gone. */
  room(connection) {
    if (!this.rooms.has(connection)) {
      try {
        this.rooms.set(connection, host.connectionInfo(connection).path);
      } catch (error) {
        host.log("verbose", `chat: no room for connection ${connection}: ${error.message}`);
        return null;
      }
    }
    return this.rooms.get(connection);
  }
}

export const { handler } = exportPlugin(Chat);
