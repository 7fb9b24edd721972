"""permessage-deflate with Python `websockets`, which offers it by default
and compresses with zlib: an independent peer for negotiation, compressed
traffic both ways, and the limit on the inflated size."""
import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

TIMEOUT = 10


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def records(count):
    return json.dumps(
        [{"id": i, "user": f"user{i % 13}", "text": f"message {i * 7919 % 1000} é€"} for i in range(count)]
    )


def agreed(ws):
    return ws.response.headers.get("Sec-WebSocket-Extensions")


def test_the_default_offer_is_accepted_and_traffic_round_trips(server):
    async def scenario():
        async with connect(server.url, max_size=None) as ws:
            # The default memory mode keeps no zlib state between messages.
            assert agreed(ws) == (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
            )
            [extension] = ws.protocol.extensions
            assert extension.name == "permessage-deflate"
            messages = [
                "short",
                records(500),
                "héllo wörld €𝄞" * 10000,
                bytes(range(256)) * 4096,
                b"\x00" * (4 << 20),
                "",
            ]
            for message in messages:
                await ws.send(message)
                assert await ws.recv() == message
            # Fragmented: websockets compresses the message across frames.
            await ws.send([records(50), records(60), "end"])
            assert await ws.recv() == records(50) + records(60) + "end"

    run(scenario())


@pytest.mark.parametrize(
    "offer, answer",
    [
        (
            ClientPerMessageDeflateFactory(),
            "permessage-deflate",
        ),
        (
            ClientPerMessageDeflateFactory(client_max_window_bits=None),
            "permessage-deflate",
        ),
        (
            ClientPerMessageDeflateFactory(server_no_context_takeover=True),
            "permessage-deflate; server_no_context_takeover",
        ),
        (
            ClientPerMessageDeflateFactory(client_no_context_takeover=True),
            "permessage-deflate; client_no_context_takeover",
        ),
        (
            ClientPerMessageDeflateFactory(server_max_window_bits=9),
            "permessage-deflate; server_max_window_bits=9",
        ),
        (
            ClientPerMessageDeflateFactory(client_max_window_bits=10),
            "permessage-deflate; client_max_window_bits=10",
        ),
        (
            ClientPerMessageDeflateFactory(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                server_max_window_bits=12,
                client_max_window_bits=11,
            ),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=12; client_max_window_bits=11",
        ),
    ],
)
def test_each_parameter_is_negotiated_and_honoured(start_server, offer, answer):
    server = start_server("--set", "DeflateMemoryMode=Dedicated", "--set", "DeflateThreshold=0")

    async def scenario():
        async with connect(server.url, extensions=[offer], compression=None) as ws:
            assert agreed(ws) == answer
            # websockets checks the server's frames against what was agreed
            # (window size, takeover) as it inflates them.
            for i in range(20):
                message = records(40 + i % 3)
                await ws.send(message)
                assert await ws.recv() == message

    run(scenario())


def test_a_client_without_compression_still_works(server):
    async def scenario():
        async with connect(server.url, compression=None) as ws:
            assert agreed(ws) is None
            await ws.send(records(500))
            assert await ws.recv() == records(500)

    run(scenario())


def test_deflate_can_be_switched_off(start_server):
    server = start_server("--set", "EnablePermessageDeflate=False")

    async def scenario():
        async with connect(server.url) as ws:
            assert agreed(ws) is None
            assert ws.protocol.extensions == []
            await ws.send(records(500))
            assert await ws.recv() == records(500)

    run(scenario())


def test_a_compressed_bomb_is_refused_with_1009(start_server):
    server = start_server("--set", "MaxMessageSize=1048576")

    async def scenario():
        async with connect(server.url) as ws:
            # 64 MiB of zeros travel as about 64 KB.
            await ws.send(b"\x00" * (64 << 20))
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1009

    run(scenario())
