from conftest import LIFECYCLE, Plugin, connected, data_in, disconnected


def publish(room, data, sender, format="text"):
    return ("publish", {"topic": room, "format": format, "data": data.encode(),
                        "exclude": sender})


def chat_with(members):
    chat = Plugin("chat")
    chat.host.connections.update(members)
    return chat


def test_members_join_the_room_of_their_path():
    chat = chat_with({1: "/rooms/a?since=5", 2: "/rooms/b"})
    assert chat.on_events([connected(1), connected(2)]) == [
        ("subscribe", {"connection": 1, "topic": "/rooms/a"}),
        ("subscribe", {"connection": 2, "topic": "/rooms/b"}),
    ]
    assert not chat.exports(LIFECYCLE)


def test_a_message_goes_to_every_other_member_of_the_room():
    chat = chat_with({1: "/rooms/a", 2: "/rooms/a"})
    chat.on_events([connected(1), connected(2)])
    assert chat.on_events([
        data_in(2, "hi ", eom=False),
        data_in(1, "hello"),
        data_in(2, "all", format="continuation"),
    ]) == [publish("/rooms/a", "hello", 1), publish("/rooms/a", "hi all", 2)]


def test_a_fresh_instance_finds_a_members_room_from_the_host():
    # As after a trap or a swap: the instance never saw member 3 connect.
    chat = chat_with({3: "/lobby"})
    assert chat.on_events([data_in(3, "still here")]) == [publish("/lobby", "still here", 3)]
    assert ("connection-info", 3) in chat.host.calls


def test_a_message_from_an_unknown_connection_is_dropped():
    chat = chat_with({})
    assert chat.on_events([data_in(9, "who?")]) == []


def test_messages_of_a_departed_member_are_dropped():
    chat = chat_with({1: "/a"})
    chat.on_events([connected(1), disconnected(1)])
    del chat.host.connections[1]
    assert chat.on_events([data_in(1, "ghost")]) == []
