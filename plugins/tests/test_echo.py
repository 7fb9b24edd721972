from conftest import LIFECYCLE, Plugin, data_in, disconnected, send


def test_echoes_each_whole_message_with_its_format():
    echo = Plugin("echo")
    commands = echo.on_events([
        data_in(1, "hello"),
        data_in(2, b"\x00\xff", format="binary"),
        data_in(1, "héllo, ünïcode"),
    ])
    assert commands == [
        send(1, "hello"),
        send(2, b"\x00\xff", format="binary"),
        send(1, "héllo, ünïcode"),
    ]


def test_reassembles_fragments_per_connection_across_batches():
    echo = Plugin("echo")
    assert echo.on_events([
        data_in(1, "frag", eom=False),
        data_in(2, b"\x01", format="binary", eom=False),
    ]) == []
    assert echo.on_events([
        data_in(2, b"\x02", format="continuation", eom=True),
        data_in(1, "ment", format="continuation", eom=False),
        data_in(1, "ed", format="continuation", eom=True),
    ]) == [send(2, b"\x01\x02", format="binary"), send(1, "fragmented")]


def test_a_disconnect_drops_the_unfinished_message():
    echo = Plugin("echo")
    echo.on_events([data_in(1, "half", eom=False), disconnected(1)])
    assert echo.on_events([data_in(1, " and rest", format="continuation")]) == []


def test_unfinished_messages_survive_a_hot_swap():
    old = Plugin("echo")
    assert old.exports(LIFECYCLE)
    old.on_events([data_in(7, "before ", eom=False)])
    state = old.snapshot()

    new = Plugin("echo")
    assert new.restore(state) is None
    assert new.on_events([data_in(7, "after", format="continuation")]) == [send(7, "before after")]
    assert new.restore(b"\x09") == "unsupported message snapshot version 9"


def test_a_large_batch_keeps_order():
    echo = Plugin("echo")
    events = [data_in(n % 10, f"m{n}") for n in range(1000)]
    assert echo.on_events(events) == [send(n % 10, f"m{n}") for n in range(1000)]
