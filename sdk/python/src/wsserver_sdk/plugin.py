"""The class a plugin extends, the dispatch of a batch of events to its
methods, and the component exports built from it."""

from __future__ import annotations

from componentize_py_types import Err
from wit_world.imports import types as wit

from .assembler import Message, MessageAssembler
from .context import Context
from .types import ErrorInfo, OpenRequest, accept


class Plugin:
    """A wsserver plugin: one method per event, each doing nothing unless
    overridden. Event methods queue their effects on the `Context`.

    `data_in` receives raw chunks (a fragment of a message, or a line in
    line mode); by default it joins them and calls `message` with each
    whole message, which is what most plugins override. The unfinished
    message of a connection is dropped when it disconnects. `snapshot` and
    `restore` carry the unfinished messages across a hot swap; a plugin with
    state of its own overrides them (see `export_plugin`).
    """

    def __init__(self) -> None:
        self.messages = MessageAssembler()

    def open_request(self, request: OpenRequest) -> wit.OpenResponse:
        """Answer a client's request to open a WebSocket; accepts by default."""
        return accept()

    def connected(self, ctx: Context, connection: int) -> None:
        """The WebSocket is open. After a hot swap without lifecycle, replayed
        once per open connection."""

    def data_in(self, ctx: Context, chunk: wit.DataIn) -> None:
        """A chunk arrived (connection, format, data, eom, eol)."""
        message = self.messages.push(chunk)
        if message is not None:
            self.message(ctx, message)

    def message(self, ctx: Context, message: Message) -> None:
        """A whole message arrived."""

    def ping(self, ctx: Context, ping: wit.PingIn) -> None:
        """A ping or pong arrived (connection, payload, response); the host
        has already answered a ping."""

    def disconnected(self, ctx: Context, info: wit.DisconnectInfo) -> None:
        """The connection ended (connection, code, description): its last event."""

    def ready_to_send(self, ctx: Context, connection: int) -> None:
        """A connection's outbound queue drained after a would-block."""

    def error(self, ctx: Context, error: ErrorInfo) -> None:
        """A queued command failed, or the host hit an error on a connection."""

    def snapshot(self) -> bytes:
        """The state a hot swap carries to the new version."""
        return self.messages.snapshot()

    def restore(self, state: bytes) -> None:
        """Loads what `snapshot` wrote, in a fresh plugin; raise to refuse the swap."""
        self.messages = MessageAssembler.restore(state)


def handle_events(plugin: Plugin, events: list[wit.Event]) -> list[wit.Command]:
    """Hands each event of a batch to its method, in order, and returns the
    commands they queued, in order. The exports call it for every batch;
    unit tests call it to drive a plugin without a host."""
    ctx = Context()
    for event in events:
        value = event.value
        if isinstance(event, wit.Event_DataIn):
            plugin.data_in(ctx, value)
        elif isinstance(event, wit.Event_Connected):
            plugin.connected(ctx, value)
        elif isinstance(event, wit.Event_Ping):
            plugin.ping(ctx, value)
        elif isinstance(event, wit.Event_Disconnected):
            plugin.disconnected(ctx, value)
            plugin.messages.forget(value.connection)
        elif isinstance(event, wit.Event_ReadyToSend):
            plugin.ready_to_send(ctx, value)
        elif isinstance(event, wit.Event_Error):
            plugin.error(ctx, ErrorInfo(value))
    return ctx.commands


def export_plugin(plugin: Plugin | type[Plugin]) -> tuple[type, type]:
    """The component's exports for a plugin (a `Plugin` subclass or an
    instance of one)::

        Handler, Lifecycle = export_plugin(Echo)

    `Lifecycle` is used only when the component is built for world
    `stateful-plugin` (`world = "stateful-plugin"` in pyproject.toml).
    """
    instance: Plugin = plugin() if isinstance(plugin, type) else plugin

    class Handler:
        def on_open_request(self, request: wit.OpenRequest) -> wit.OpenResponse:
            return instance.open_request(OpenRequest(request)) or accept()

        def on_events(self, events: list[wit.Event]) -> list[wit.Command]:
            return handle_events(instance, events)

    class Lifecycle:
        def snapshot(self) -> bytes:
            return instance.snapshot()

        def restore(self, state: bytes) -> None:
            try:
                instance.restore(state)
            except Exception as error:  # noqa: BLE001 - any failure refuses the swap
                # The WIT error is a string: the swap aborts with it.
                raise Err(str(error)) from error

    return Handler, Lifecycle


