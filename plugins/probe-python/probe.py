"""Test plugin: a client drives every host function of the Python SDK with
text commands and learns of every event as a text message. The same
commands and replies as probe-js (see its header), so one end-to-end test
serves both."""

import re

from wsserver_sdk import HostError, LogLevel, MessageFormat, Plugin, export_plugin, host, reject

LEVELS = {"error": LogLevel.ERROR, "info": LogLevel.INFO, "verbose": LogLevel.VERBOSE, "debug": LogLevel.DEBUG}


def result(action):
    try:
        action()
        return "ok"
    except HostError as error:
        return f"err {kind(error)}"


def kind(error):
    return error.kind.name.lower().replace("_", "-")


def flag(value):
    return "true" if value else "false"


class Probe(Plugin):
    def __init__(self):
        super().__init__()
        self.last = 0
        self.line_mode = set()

    def open_request(self, request):
        status = re.search(r"(?:^|&)reject=(\d+)", request.query or "")
        if status:
            return reject(int(status.group(1)), {"X-Probe": "rejected"})
        return None

    def connected(self, ctx, connection):
        ctx.send(connection, f"event connected {connection}")

    def data_in(self, ctx, chunk):
        if chunk.connection in self.line_mode:
            text = chunk.data.decode()
            ctx.send(chunk.connection, f"line eol={flag(chunk.eol)} eom={flag(chunk.eom)} {text}")
            if text == "line-mode off":
                self.command(ctx, chunk.connection, text)
        else:
            super().data_in(ctx, chunk)

    def message(self, ctx, message):
        self.command(ctx, message.connection, message.text)

    def command(self, ctx, conn, text):
        self.last = conn
        verb, _, rest = text.partition(" ")
        first, _, after = rest.partition(" ")

        def reply(t):
            ctx.send(conn, t)

        if verb == "echo":
            reply(rest)
        elif verb == "ping":
            ctx.ping(conn, rest.encode())
        elif verb == "direct-ping":
            reply(result(lambda: host.ping(conn, rest.encode())))
        elif verb == "close":
            ctx.disconnect(conn, int(first), after)
        elif verb == "direct-close":
            r = result(lambda: host.disconnect(conn, int(first), after))
            if r != "ok":
                reply(r)
        elif verb == "line-mode":
            if rest == "on":
                self.line_mode.add(conn)
            else:
                self.line_mode.discard(conn)
            ctx.set_line_mode(conn, rest == "on")
            reply(f"line-mode {rest}")
        elif verb == "pause":
            ctx.pause_data(conn)
        elif verb == "resume":
            ctx.resume_data(int(first))
        elif verb == "info":
            try:
                i = host.connection_info(int(first) if first else conn)
            except HostError as error:
                reply(f"err {kind(error)}")
                return
            reply(
                f"info id={i.id} path={i.path} uri={i.request_uri} remote={i.remote_host}:{i.remote_port} "
                f"accept_data={flag(i.accept_data)} line_mode={flag(i.line_mode)} connected={flag(i.connected)} "
                f"tls={i.tls.protocol if i.tls else 'none'}"
            )
        elif verb == "connections":
            reply("connections " + ",".join(str(c) for c in sorted(host.connections())))
        elif verb == "config":
            value = host.config(rest)
            reply(f"config {value if value is not None else '(none)'}")
        elif verb == "log":
            host.log(LEVELS[first], after)
            reply("logged")
        elif verb == "subscribe":
            ctx.subscribe(conn, rest)
            reply(f"subscribed {rest}")
        elif verb == "unsubscribe":
            ctx.unsubscribe(conn, rest)
            reply(f"unsubscribed {rest}")
        elif verb == "direct-subscribe":
            reply(result(lambda: host.subscribe(conn, rest)))
        elif verb == "publish":
            ctx.publish(first, after)
        elif verb == "publish-others":
            ctx.publish(first, after, exclude=conn)
        elif verb == "direct-publish":
            reply(result(lambda: host.publish(first, after)))
        elif verb == "send-to":
            ctx.send(int(first), after)
        elif verb == "direct-send-to":
            reply(result(lambda: host.send(int(first), after)))
        elif verb == "subscribers":
            reply(f"subscribers {host.subscriber_count(rest)}")
        elif verb == "attach":
            reply(result(lambda: host.set_attachment(conn, rest)))
        elif verb == "attachment":
            try:
                data = host.attachment(int(first) if first else conn)
            except HostError as error:
                reply(f"err {kind(error)}")
                return
            reply(f"attachment {'(none)' if data is None else data.decode()}")
        elif verb == "bad-text":
            ctx.send(conn, b"\xff\xfe", MessageFormat.TEXT)
        elif verb == "flood":
            # Direct sends of 64 KiB until the queue is full.
            block = bytes(65536)
            sent = 0
            while True:
                try:
                    host.send(conn, block)
                except HostError as error:
                    if error.would_block:
                        reply(f"would-block after {sent}")
                        return
                    raise
                sent += 1
        else:
            reply(f"unknown {verb}")

    def ping(self, ctx, ping):
        ctx.send(ping.connection, f"event ping response={flag(ping.response)} payload={ping.payload.decode()}")

    def ready_to_send(self, ctx, connection):
        ctx.send(connection, "event ready-to-send")

    def error(self, ctx, error):
        target = error.connection if error.connection in host.connections() else self.last
        ctx.send(target, f"event error code={error.code} kind={error.kind}")

    def disconnected(self, ctx, info):
        self.line_mode.discard(info.connection)
        ctx.publish("watch", f"event disconnected {info.connection} {info.code} {info.description}")


Handler, Lifecycle = export_plugin(Probe)
