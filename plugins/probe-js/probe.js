// Test plugin: a client drives every host function of the JavaScript SDK
// with text commands and learns of every event as a text message. The
// same commands as probe-python, so one end-to-end test serves both:
//
//   echo TEXT | ping P | direct-ping P | close CODE REASON |
//   direct-close CODE REASON | line-mode on|off | pause | resume ID |
//   info [ID] | connections | config KEY | log LEVEL TEXT |
//   subscribe T | unsubscribe T | direct-subscribe T | publish T TEXT |
//   publish-others T TEXT | direct-publish T TEXT | send-to ID TEXT |
//   direct-send-to ID TEXT | bad-text | flood | subscribers T |
//   attach TEXT | attachment [ID]
//
// Events: `event connected ID`, `event ping response=.. payload=..`,
// `event ready-to-send`, `event error code=.. kind=..` (to the connection
// concerned, or the last commanding one), and `event disconnected ID CODE
// REASON` published to topic `watch`. In line mode each chunk comes back as
// `line eol=.. eom=.. TEXT`. Open requests with `?reject=STATUS` are refused.
import { HostError, Plugin, decodeUtf8, exportPlugin, host, reject } from "wsserver-sdk";

function result(action) {
  try {
    action();
    return "ok";
  } catch (error) {
    if (error instanceof HostError) return `err ${error.kind}`;
    throw error;
  }
}

class Probe extends Plugin {
  constructor() {
    super();
    this.last = 0;
    this.lineMode = new Set();
  }

  openRequest(request) {
    const status = /(?:^|&)reject=(\d+)/.exec(request.query ?? "");
    return status ? reject(Number(status[1]), { headers: { "X-Probe": "rejected" } }) : undefined;
  }

  connected(ctx, id) {
    ctx.send(id, `event connected ${id}`);
  }

  dataIn(ctx, chunk) {
    if (this.lineMode.has(chunk.connection)) {
      ctx.send(chunk.connection, `line eol=${chunk.eol} eom=${chunk.eom} ${decodeUtf8(chunk.data)}`);
      if (decodeUtf8(chunk.data) === "line-mode off") this.command(ctx, chunk.connection, "line-mode off");
    } else {
      super.dataIn(ctx, chunk);
    }
  }

  message(ctx, message) {
    this.command(ctx, message.connection, message.text);
  }

  command(ctx, id, text) {
    this.last = id;
    const [verb, ...words] = text.split(" ");
    const rest = words.join(" ");
    const [first = "", ...tail] = words;
    const after = tail.join(" ");
    const reply = (t) => ctx.send(id, t);
    switch (verb) {
      case "echo": return reply(rest);
      case "ping": return ctx.ping(id, rest);
      case "direct-ping": return reply(result(() => host.ping(id, rest)));
      case "close": return ctx.disconnect(id, Number(first), after);
      case "direct-close": {
        const r = result(() => host.disconnect(id, Number(first), after));
        if (r !== "ok") reply(r);
        return;
      }
      case "line-mode":
        if (rest === "on") this.lineMode.add(id);
        else this.lineMode.delete(id);
        ctx.setLineMode(id, rest === "on");
        return reply(`line-mode ${rest}`);
      case "pause": return ctx.pauseData(id);
      case "resume": return ctx.resumeData(Number(first));
      case "info": {
        const target = first ? Number(first) : id;
        try {
          const i = host.connectionInfo(target);
          return reply(`info id=${i.id} path=${i.path} uri=${i.requestUri} remote=${i.remoteHost}:${i.remotePort} ` +
            `accept_data=${i.acceptData} line_mode=${i.lineMode} connected=${i.connected} tls=${i.tls ? i.tls.protocol : "none"}`);
        } catch (error) {
          return reply(`err ${error.kind}`);
        }
      }
      case "connections": return reply(`connections ${host.connections().sort((a, b) => a - b).join(",")}`);
      case "config": return reply(`config ${host.config(rest) ?? "(none)"}`);
      case "log":
        host.log(first, after);
        return reply("logged");
      case "subscribe":
        ctx.subscribe(id, rest);
        return reply(`subscribed ${rest}`);
      case "unsubscribe":
        ctx.unsubscribe(id, rest);
        return reply(`unsubscribed ${rest}`);
      case "direct-subscribe": return reply(result(() => host.subscribe(id, rest)));
      case "publish": return ctx.publish(first, after);
      case "publish-others": return ctx.publish(first, after, { exclude: id });
      case "direct-publish": return reply(result(() => host.publish(first, after)));
      case "send-to": return ctx.send(Number(first), after);
      case "direct-send-to": return reply(result(() => host.send(Number(first), after)));
      case "subscribers": return reply(`subscribers ${host.subscriberCount(rest)}`);
      case "attach": return reply(result(() => host.setAttachment(id, rest)));
      case "attachment": {
        try {
          const data = host.attachment(first ? Number(first) : id);
          return reply(`attachment ${data === null ? "(none)" : decodeUtf8(data)}`);
        } catch (error) {
          return reply(`err ${error.kind}`);
        }
      }
      case "bad-text": return ctx.send(id, Uint8Array.of(0xff, 0xfe), "text");
      case "flood": {
        // Direct sends of 64 KiB until the queue is full.
        const block = new Uint8Array(65536);
        for (let sent = 0; ; sent++) {
          try {
            host.send(id, block);
          } catch (error) {
            if (error.wouldBlock) return reply(`would-block after ${sent}`);
            throw error;
          }
        }
      }
      default: return reply(`unknown ${verb}`);
    }
  }

  ping(ctx, ping) {
    ctx.send(ping.connection, `event ping response=${ping.response} payload=${decodeUtf8(ping.payload)}`);
  }

  readyToSend(ctx, id) {
    ctx.send(id, "event ready-to-send");
  }

  error(ctx, error) {
    const mine = host.connections().includes(error.connection);
    ctx.send(mine ? error.connection : this.last, `event error code=${error.code} kind=${error.kind}`);
  }

  disconnected(ctx, info) {
    this.lineMode.delete(info.connection);
    ctx.publish("watch", `event disconnected ${info.connection} ${info.code} ${info.description}`);
  }
}

export const { handler } = exportPlugin(Probe);
