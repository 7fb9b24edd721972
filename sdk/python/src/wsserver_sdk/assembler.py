"""Reassembly of fragmented messages from data-in chunks."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wit_world.imports.types import DataFormat, DataIn, MessageFormat

_SNAPSHOT_VERSION = 1
_ENTRY = struct.Struct("<QBI")  # connection id, format, length


@dataclass
class Message:
    """A whole message received on a connection."""

    connection: int
    format: MessageFormat
    data: bytes

    @property
    def text(self) -> str:
        """The payload of a text message as a string."""
        return self.data.decode("utf-8")


class MessageAssembler:
    """Joins the chunks of fragmented messages, per connection.

    `push` every data-in chunk; it returns the message the chunk completes,
    or None. A message in one chunk passes through without a copy. A
    continuation with no message in progress belongs to a message this
    instance never saw start (it replaced another mid-message) and is
    dropped, so this is not for line mode. `snapshot` and `restore` carry
    unfinished messages across a hot swap, in the Rust SDK's byte layout.
    """

    def __init__(self) -> None:
        # connection id -> (format, chunks)
        self._in_progress: dict[int, tuple[MessageFormat, list[bytes]]] = {}

    def push(self, chunk: DataIn) -> Message | None:
        connection = chunk.connection
        if chunk.format == DataFormat.CONTINUATION:
            message = self._in_progress.get(connection)
            if message is None:
                return None
            message[1].append(chunk.data)
            if not chunk.eom:
                return None
            del self._in_progress[connection]
            return Message(connection, message[0], b"".join(message[1]))
        # A first chunk starts a new message; the host never interleaves
        # messages, so one still in progress here cannot complete.
        fmt = MessageFormat.TEXT if chunk.format == DataFormat.TEXT else MessageFormat.BINARY
        if chunk.eom:
            self._in_progress.pop(connection, None)
            return Message(connection, fmt, chunk.data)
        self._in_progress[connection] = (fmt, [chunk.data])
        return None

    def forget(self, connection: int) -> None:
        """Drops the unfinished message of a connection, if any."""
        self._in_progress.pop(connection, None)

    def is_assembling(self, connection: int) -> bool:
        return connection in self._in_progress

    def snapshot(self) -> bytes:
        """The unfinished messages: a version byte (1), then per message the
        connection id (u64), format (u8: 0 text, 1 binary), length (u32) and
        the bytes, little-endian."""
        out = [bytes([_SNAPSHOT_VERSION])]
        for connection, (fmt, chunks) in self._in_progress.items():
            data = b"".join(chunks)
            out.append(_ENTRY.pack(connection, fmt.value, len(data)))
            out.append(data)
        return b"".join(out)

    @classmethod
    def restore(cls, state: bytes) -> MessageAssembler:
        """Reads what `snapshot` wrote; raises ValueError on damaged bytes."""
        if not state:
            raise ValueError("message snapshot is truncated")
        if state[0] != _SNAPSHOT_VERSION:
            raise ValueError(f"unsupported message snapshot version {state[0]}")
        assembler = cls()
        at = 1
        while at < len(state):
            if at + _ENTRY.size > len(state):
                raise ValueError("message snapshot is truncated")
            connection, fmt, length = _ENTRY.unpack_from(state, at)
            at += _ENTRY.size
            if fmt not in (0, 1):
                raise ValueError(f"unknown message format {fmt} in snapshot")
            if at + length > len(state):
                raise ValueError("message snapshot is truncated")
            assembler._in_progress[connection] = (MessageFormat(fmt), [bytes(state[at : at + length])])
            at += length
        return assembler
