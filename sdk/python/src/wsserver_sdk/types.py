"""Open requests and responses, connection info and errors: thin wrappers
over the records of the WIT bindings, adding a few helpers."""

from __future__ import annotations

from typing import Any

from wit_world.imports import types as wit
from wit_world.imports.types import HostError as HostErrorKind


class _Record:
    """Reads every field of the wrapped WIT record as its own."""

    def __init__(self, record: Any) -> None:
        self.record = record

    def __getattr__(self, name: str) -> Any:
        return getattr(self.record, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.record!r})"


def _header(headers: list[wit.Header], name: str) -> str | None:
    wanted = name.lower()
    return next((h.value for h in headers if h.name.lower() == wanted), None)


class OpenRequest(_Record):
    """A client's request to open a WebSocket: the WIT `open-request` fields
    (connection, request_uri, host, origin, subprotocols, extensions,
    headers, remote_address, remote_port, local_address, tls) and helpers."""

    def header(self, name: str) -> str | None:
        """A request header's value (name compared case-insensitively)."""
        return _header(self.record.headers, name)

    @property
    def path(self) -> str:
        return self.record.request_uri.split("?", 1)[0]

    @property
    def query(self) -> str | None:
        parts = self.record.request_uri.split("?", 1)
        return parts[1] if len(parts) == 2 else None


class WsConnection(_Record):
    """What the host knows about a connection: the WIT `ws-connection`
    fields (id, accept_data, bytes_sent, connected, host, line_mode,
    local_address, origin, ready_to_send, remote_host, remote_port,
    request_headers, request_uri, subprotocols, subprotocol,
    timeout_seconds, tls) and helpers."""

    def header(self, name: str) -> str | None:
        return _header(self.record.request_headers, name)

    @property
    def path(self) -> str:
        return self.record.request_uri.split("?", 1)[0]


def _headers(headers: dict[str, str] | list[wit.Header] | None) -> list[wit.Header]:
    if headers is None:
        return []
    if isinstance(headers, dict):
        return [wit.Header(name, str(value)) for name, value in headers.items()]
    return list(headers)


def accept(subprotocol: str | None = None, headers: dict[str, str] | None = None) -> wit.OpenResponse:
    """Accepts a WebSocket, optionally with a subprotocol and extra headers."""
    return wit.OpenResponse(101, subprotocol, _headers(headers))


def reject(status: int, headers: dict[str, str] | None = None) -> wit.OpenResponse:
    """Refuses a WebSocket with an HTTP status (401, 403, 404, ...)."""
    return wit.OpenResponse(status, None, _headers(headers))


_ERROR_KINDS = {
    10035: "would-block",
    126: "invalid-connection",
    10022: "invalid-argument",
    4202: "send-failed",
    1008: "over-rate",
}


class ErrorInfo(_Record):
    """An `error` event: connection, code (a seed error code), description."""

    @property
    def kind(self) -> str:
        """"would-block", "invalid-connection", "invalid-argument",
        "send-failed", "over-rate" or "other"."""
        return _ERROR_KINDS.get(self.record.code, "other")


_HOST_ERROR_CODES = {
    HostErrorKind.WOULD_BLOCK: 10035,
    HostErrorKind.INVALID_CONNECTION: 126,
    HostErrorKind.INVALID_ARGUMENT: 10022,
}


class HostError(Exception):
    """A direct host function failed. `kind` is the WIT `host-error`;
    `code` the seed error code; `would_block` tells that the outbound queue
    was full (`ready_to_send` follows when it drains)."""

    def __init__(self, kind: HostErrorKind) -> None:
        super().__init__(f"host error: {kind.name.lower().replace('_', '-')}")
        self.kind = kind
        self.code = _HOST_ERROR_CODES.get(kind, 0)

    @property
    def would_block(self) -> bool:
        return self.kind == HostErrorKind.WOULD_BLOCK
