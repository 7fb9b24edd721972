"""Echoes each whole message back to its sender with its format (text or
binary). Fragmented messages are joined first; built as a stateful plugin,
so a message still arriving survives a hot swap."""

from wsserver_sdk import Plugin, export_plugin


class Echo(Plugin):
    def message(self, ctx, message):
        ctx.send_message(message)


Handler, Lifecycle = export_plugin(Echo)
