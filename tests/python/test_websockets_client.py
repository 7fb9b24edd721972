"""wsserver driven by Python `websockets`, an independent client with its
own framing, fragmentation and close handling."""
import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 10


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def test_text_and_binary_messages_are_echoed_with_their_type(server):
    async def scenario():
        async with connect(server.url) as ws:
            for message in ["hello", "héllo wörld €𝄞", "", b"\x00\x01\xff", b""]:
                await ws.send(message)
                assert await ws.recv() == message

    run(scenario())


def test_fragmented_messages_are_reassembled(server):
    async def scenario():
        async with connect(server.url) as ws:
            await ws.send(["frag", "men", "ted €"])
            assert await ws.recv() == "fragmented €"
            await ws.send([b"\x01", b"\x02\x03"])
            assert await ws.recv() == b"\x01\x02\x03"

    run(scenario())


def test_a_large_message_round_trips(server):
    async def scenario():
        big = bytes(range(256)) * 16384  # 4 MiB
        async with connect(server.url, max_size=None) as ws:
            await ws.send(big)
            assert await ws.recv() == big

    run(scenario())


def test_ping_is_answered_with_the_same_payload(server):
    async def scenario():
        async with connect(server.url) as ws:
            latency = await asyncio.wait_for(await ws.ping(b"py-ping"), TIMEOUT)
            assert latency >= 0

    run(scenario())


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4000])
def test_the_close_code_is_echoed(server, code):
    async def scenario():
        ws = await connect(server.url)
        await ws.close(code, "bye")
        # The code the server sent back in its close frame.
        assert ws.protocol.close_rcvd.code == code
        assert ws.close_code == code

    run(scenario())


def test_sigterm_closes_with_1001(server):
    async def scenario():
        async with connect(server.url) as ws:
            await ws.send("x")
            await ws.recv()
            await asyncio.to_thread(server.terminate)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1001

    run(scenario())
    assert server.proc.returncode == 0


def test_an_oversized_message_is_refused_with_1009(start_server):
    server = start_server("--set", "MaxMessageSize=1024")

    async def scenario():
        async with connect(server.url) as ws:
            await ws.send(b"x" * 2048)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1009

    run(scenario())
