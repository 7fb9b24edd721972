"""The commands a plugin queues while it handles a batch of events."""

from __future__ import annotations

from wit_world.imports import types as wit
from wit_world.imports.types import MessageFormat

from .assembler import Message


def encode(data: str | bytes, fmt: MessageFormat | None) -> tuple[MessageFormat, bytes]:
    """A str goes as text, bytes as binary, unless `fmt` says otherwise."""
    if isinstance(data, str):
        return (fmt or MessageFormat.TEXT, data.encode("utf-8"))
    return (fmt or MessageFormat.BINARY, bytes(data))


class Context:
    """Collects the effects of the event handlers of one batch.

    Each method appends a command; the host applies them in order after the
    batch and reports any that fail as `error` events at the start of the
    next one (after a would-block, `ready_to_send` follows once the queue
    has drained). Nothing crosses into the host until then, which is what
    makes a batch cheap. For an immediate result use `wsserver_sdk.host`.
    """

    def __init__(self) -> None:
        self.commands: list[wit.Command] = []

    def send(self, connection: int, data: str | bytes, fmt: MessageFormat | None = None) -> None:
        """Sends one whole message: a str as text, bytes as binary."""
        fmt, payload = encode(data, fmt)
        self.commands.append(wit.Command_Send(wit.OutgoingMessage(connection, fmt, payload)))

    def send_message(self, message: Message) -> None:
        """Sends a message back to the connection it came from, with its format."""
        self.send(message.connection, message.data, message.format)

    def ping(self, connection: int, payload: bytes = b"") -> None:
        """Sends a ping (at most 125 bytes); the pong arrives as a `ping` event."""
        self.commands.append(wit.Command_Ping(wit.PingOut(connection, bytes(payload))))

    def disconnect(self, connection: int, code: int = 1000, reason: str = "") -> None:
        """Starts the close handshake with a code and a reason of at most 123 bytes."""
        self.commands.append(wit.Command_Disconnect(wit.CloseRequest(connection, code, reason)))

    def set_line_mode(self, connection: int, enabled: bool) -> None:
        self.commands.append(wit.Command_SetLineMode(wit.LineMode(connection, enabled)))

    def pause_data(self, connection: int) -> None:
        """Stops data-in events for the connection until `resume_data`."""
        self.commands.append(wit.Command_PauseData(connection))

    def resume_data(self, connection: int) -> None:
        self.commands.append(wit.Command_ResumeData(connection))

    def subscribe(self, connection: int, topic: str) -> None:
        """The connection receives what is published to `topic` until it leaves or closes."""
        self.commands.append(wit.Command_Subscribe(wit.Subscription(connection, topic)))

    def unsubscribe(self, connection: int, topic: str) -> None:
        self.commands.append(wit.Command_Unsubscribe(wit.Subscription(connection, topic)))

    def publish(
        self,
        topic: str,
        data: str | bytes,
        exclude: int | None = None,
        fmt: MessageFormat | None = None,
    ) -> None:
        """Sends a message to every subscriber of `topic` but `exclude`
        (typically the sender); the host fans it out without calling the
        plugin again."""
        fmt, payload = encode(data, fmt)
        self.commands.append(wit.Command_Publish(wit.Publication(topic, fmt, payload, exclude)))
