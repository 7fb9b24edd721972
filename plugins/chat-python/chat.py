"""Chat rooms by request path: a client that opens /rooms/lobby joins room
/rooms/lobby, and each whole message it sends goes, with its format, to
every other member. Rooms are host topics, so the host does the fan-out.
If the operator sets `chat.welcome`, each member is greeted with it."""

from wsserver_sdk import HostError, LogLevel, Plugin, export_plugin, host


class Chat(Plugin):
    def __init__(self):
        super().__init__()
        # connection id -> room; rebuilt from `connected` after a hot swap
        self.rooms = {}

    def connected(self, ctx, connection):
        room = self.room(connection)
        if room is None:
            return
        ctx.subscribe(connection, room)
        welcome = host.config("chat.welcome")
        if welcome is not None:
            ctx.send(connection, f"{welcome} {room}")

    def message(self, ctx, message):
        room = self.room(message.connection)
        if room is not None:
            ctx.publish(room, message.data, exclude=message.connection, fmt=message.format)

    def disconnected(self, ctx, info):
        self.rooms.pop(info.connection, None)

    def room(self, connection):
        """The member's room, asking the host for its path the first time;
        None once it has gone."""
        if connection not in self.rooms:
            try:
                self.rooms[connection] = host.connection_info(connection).path
            except HostError as error:
                host.log(LogLevel.VERBOSE, f"chat: no room for connection {connection}: {error}")
                return None
        return self.rooms[connection]


Handler, Lifecycle = export_plugin(Chat)
