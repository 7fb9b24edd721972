import pytest
import wasmtime

from conftest import Plugin, connected, data_in, disconnected, open_request, ready_to_send


def test_flood_sends_until_would_block_then_again_on_ready_to_send():
    flood = Plugin("flood")
    flood.host.connections[1] = "/"
    flood.host.sends_before_full = 5
    assert flood.on_events([connected(1), data_in(1, "go")]) == []
    # Five accepted sends and the sixth, refused with would-block.
    assert len(flood.host.sent()) == 6
    assert all(len(data) == 16 * 1024 for _, _, data in flood.host.sent())

    flood.host.sends_before_full = 3
    flood.on_events([ready_to_send(1)])
    assert len(flood.host.sent()) == 6 + 4


def test_flood_stops_for_a_connection_that_has_gone():
    flood = Plugin("flood")
    flood.host.connections[1] = "/"
    flood.host.sends_before_full = 2
    flood.on_events([data_in(1, "go"), disconnected(1)])
    flood.on_events([ready_to_send(1)])
    assert len(flood.host.sent()) == 3


def test_trap_traps_on_data_in_only():
    trap = Plugin("trap")
    assert trap.open_request(open_request())["status"] == 101
    assert trap.on_events([connected(1)]) == []
    with pytest.raises(wasmtime.WasmtimeError, match="unreachable"):
        trap.on_events([data_in(1, "boom")])


def test_loop_is_stopped_by_the_cpu_deadline():
    looping = Plugin("loop")
    with pytest.raises(wasmtime.WasmtimeError, match="interrupt"):
        looping.on_events([data_in(1, "spin")], deadline_seconds=0.2)


def test_membomb_is_stopped_by_the_memory_cap():
    bomb = Plugin("membomb", memory_limit=16 * 1024 * 1024)
    with pytest.raises(wasmtime.WasmtimeError):
        bomb.on_events([data_in(1, "eat")])
