"""The SDK without a host: message assembly, dispatch and commands."""

import pytest
from componentize_py_types import Err
from wit_world.imports import types as wit

from wsserver_sdk import MessageAssembler, MessageFormat, Plugin, export_plugin, handle_events


def chunk(connection, fmt, data, eom):
    return wit.DataIn(connection, fmt, data.encode() if isinstance(data, str) else data, eom, False)


def data_in(*args):
    return wit.Event_DataIn(chunk(*args))


class Recorder(Plugin):
    def __init__(self):
        super().__init__()
        self.seen = []

    def connected(self, ctx, connection):
        self.seen.append(f"connected {connection}")
        ctx.subscribe(connection, "room")

    def message(self, ctx, message):
        self.seen.append(f"message {message.connection} {message.format.name} {message.data!r}")
        ctx.send_message(message)

    def ping(self, ctx, ping):
        self.seen.append(f"ping {ping.connection} {ping.response}")

    def disconnected(self, ctx, info):
        self.seen.append(f"disconnected {info.connection} {info.code}")

    def ready_to_send(self, ctx, connection):
        self.seen.append(f"ready {connection}")

    def error(self, ctx, error):
        self.seen.append(f"error {error.connection} {error.kind}")


T, B, C = wit.DataFormat.TEXT, wit.DataFormat.BINARY, wit.DataFormat.CONTINUATION


def test_events_reach_their_methods_in_order_and_commands_come_back_in_order():
    plugin = Recorder()
    commands = handle_events(
        plugin,
        [
            wit.Event_Error(wit.ErrorInfo(2, 10035, "full")),
            wit.Event_Connected(1),
            data_in(1, T, "hé", False),
            data_in(2, B, b"\x00\xff", True),
            data_in(1, C, "llo", True),
            wit.Event_Ping(wit.PingIn(1, b"", True)),
            wit.Event_ReadyToSend(2),
            wit.Event_Disconnected(wit.DisconnectInfo(2, 1001, "")),
        ],
    )
    assert plugin.seen == [
        "error 2 would-block",
        "connected 1",
        "message 2 BINARY b'\\x00\\xff'",
        f"message 1 TEXT {'héllo'.encode()!r}",
        "ping 1 True",
        "ready 2",
        "disconnected 2 1001",
    ]
    assert commands == [
        wit.Command_Subscribe(wit.Subscription(1, "room")),
        wit.Command_Send(wit.OutgoingMessage(2, MessageFormat.BINARY, b"\x00\xff")),
        wit.Command_Send(wit.OutgoingMessage(1, MessageFormat.TEXT, "héllo".encode())),
    ]


def test_a_disconnect_drops_the_unfinished_message():
    plugin = Recorder()
    handle_events(plugin, [data_in(1, T, "part", False), wit.Event_Disconnected(wit.DisconnectInfo(1, 1006, ""))])
    assert not plugin.messages.is_assembling(1)


def test_unfinished_messages_survive_snapshot_and_restore_through_the_exports():
    old_handler, old_lifecycle = export_plugin(Recorder)
    old_handler().on_events([data_in(7, T, "frag", False), data_in(2**40 + 3, B, b"xy", False)])
    new_handler, new_lifecycle = export_plugin(Recorder)
    new_lifecycle().restore(old_lifecycle().snapshot())
    commands = new_handler().on_events([data_in(7, C, "ment", True), data_in(2**40 + 3, C, b"z", True)])
    assert commands == [
        wit.Command_Send(wit.OutgoingMessage(7, MessageFormat.TEXT, b"fragment")),
        wit.Command_Send(wit.OutgoingMessage(2**40 + 3, MessageFormat.BINARY, b"xyz")),
    ]


def test_a_damaged_snapshot_is_refused_with_a_message():
    assembler = MessageAssembler()
    assembler.push(chunk(1, T, "abc", False))
    good = assembler.snapshot()
    with pytest.raises(ValueError, match="truncated"):
        MessageAssembler.restore(b"")
    with pytest.raises(ValueError, match="version 2"):
        MessageAssembler.restore(b"\x02")
    for cut in range(2, len(good)):
        with pytest.raises(ValueError, match="truncated"):
            MessageAssembler.restore(good[:cut])
    _, lifecycle = export_plugin(Recorder)
    with pytest.raises(Err) as refused:
        lifecycle().restore(b"\x09")
    assert refused.value.value == "unsupported message snapshot version 9"


def test_open_requests_get_helpers_and_answers_the_wit_shape():
    from wsserver_sdk import accept, reject

    class Gate(Plugin):
        def open_request(self, request):
            if request.header("authorization") != "Bearer t":
                return reject(401, {"WWW-Authenticate": "Bearer"})
            return accept(subprotocol=request.subprotocols[0])

    handler, _ = export_plugin(Gate)

    def request(headers):
        return wit.OpenRequest(1, "/a?b", "", None, ["v1"], "", headers, "127.0.0.1", 1, "127.0.0.1", None)

    assert handler().on_open_request(request([])) == wit.OpenResponse(
        401, None, [wit.Header("WWW-Authenticate", "Bearer")]
    )
    assert handler().on_open_request(request([wit.Header("Authorization", "Bearer t")])) == wit.OpenResponse(
        101, "v1", []
    )
