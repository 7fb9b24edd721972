"""wsserver plugins in Python: subclass `Plugin`, override the events you
handle, and export it with `export_plugin`::

    from wsserver_sdk import Plugin, export_plugin

    class Echo(Plugin):
        def message(self, ctx, message):
            ctx.send_message(message)

    Handler, Lifecycle = export_plugin(Echo)

Build it with `sdk/python/build.sh` (componentize-py); see README.md.
"""

from wit_world.imports.types import DataFormat, LogLevel, MessageFormat

from . import host
from .assembler import Message, MessageAssembler
from .context import Context
from .plugin import Plugin, export_plugin, handle_events
from .types import ErrorInfo, HostError, OpenRequest, WsConnection, accept, reject

__all__ = [
    "Context",
    "DataFormat",
    "ErrorInfo",
    "HostError",
    "LogLevel",
    "Message",
    "MessageAssembler",
    "MessageFormat",
    "OpenRequest",
    "Plugin",
    "WsConnection",
    "accept",
    "export_plugin",
    "handle_events",
    "host",
    "reject",
]
