"""The direct host functions: they act at once and return their result,
before any command the current batch queues."""

from __future__ import annotations

from typing import Callable, TypeVar

from componentize_py_types import Err
from wit_world.imports import host as wit
from wit_world.imports.types import LogLevel, MessageFormat

from .context import encode
from .types import HostError, WsConnection

T = TypeVar("T")


def _call(fn: Callable[..., T], *args: object) -> T:
    try:
        return fn(*args)
    except Err as error:
        raise HostError(error.value) from None


def send(connection: int, data: str | bytes, fmt: MessageFormat | None = None) -> None:
    """Queues a message now; raises `HostError` (`would_block` when the queue is full)."""
    fmt, payload = encode(data, fmt)
    _call(wit.send, connection, fmt, payload)


def ping(connection: int, payload: bytes = b"") -> None:
    _call(wit.ping, connection, bytes(payload))


def disconnect(connection: int, code: int = 1000, reason: str = "") -> None:
    _call(wit.disconnect, connection, code, reason)


def set_line_mode(connection: int, enabled: bool) -> None:
    _call(wit.set_line_mode, connection, enabled)


def pause_data(connection: int) -> None:
    _call(wit.pause_data, connection)


def resume_data(connection: int) -> None:
    _call(wit.resume_data, connection)


def connection_info(connection: int) -> WsConnection:
    """The WSConnection fields of one of this plugin's connections."""
    return WsConnection(_call(wit.connection_info, connection))


def connections() -> list[int]:
    """This plugin's open connections, in no particular order."""
    return list(wit.connections())


def subscribe(connection: int, topic: str) -> None:
    _call(wit.subscribe, connection, topic)


def unsubscribe(connection: int, topic: str) -> None:
    _call(wit.unsubscribe, connection, topic)


def publish(
    topic: str, data: str | bytes, exclude: int | None = None, fmt: MessageFormat | None = None
) -> None:
    fmt, payload = encode(data, fmt)
    _call(wit.publish, topic, fmt, payload, exclude)


def set_attachment(connection: int, data: bytes | str) -> None:
    """Stores up to 2048 bytes (a str is UTF-8 encoded) with one of this
    plugin's connections; empty removes it. The host keeps it while the
    connection is open, across hibernation, traps and hot swaps."""
    if isinstance(data, str):
        data = data.encode()
    _call(wit.set_attachment, connection, data)


def attachment(connection: int) -> bytes | None:
    """The connection's attachment, or None."""
    found = _call(wit.attachment, connection)
    return None if found is None else bytes(found)


def config(key: str) -> str | None:
    """A configuration value the operator granted this plugin, or None."""
    return wit.config_get(key)


def log(level: LogLevel, message: str) -> None:
    """Writes a line to the server log."""
    wit.log(level, str(message))
