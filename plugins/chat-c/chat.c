/* Chat rooms by request path: a client that opens /rooms/lobby joins room
 * /rooms/lobby (the query is ignored) and each whole message a member sends
 * goes, with its format, to every other member of the room.
 *
 * Rooms are host topics: members subscribe on connect and a message is one
 * publish that excludes its sender, so the host fans it out. The text
 * message "/online" is answered with "online N", N the tenant's open
 * connections. The configuration key `chat.welcome`, if set, is sent to
 * each member as it joins. Built with --stateful, the number of messages
 * relayed survives a hot swap ("/count" answers "count N"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wsserver.h>

#define MAX_ROOM 256

static uint64_t relayed;

static void on_connected(ws_conn_t conn) {
    char room[MAX_ROOM];
    ws_result_t result = ws_connection_path(conn, room, sizeof room);
    if (result != WS_OK) {
        ws_log(WS_LOG_VERBOSE, "chat-c: no room for connection %llu (%d)",
               (unsigned long long)conn, result);
        return;
    }
    ws_subscribe(conn, room);
    ws_log(WS_LOG_VERBOSE, "chat-c: connection %llu joined %s", (unsigned long long)conn, room);
    char *welcome = ws_config_get("chat.welcome");
    if (welcome) {
        ws_send_text(conn, welcome);
        free(welcome);
    }
}

static void on_message(ws_conn_t conn, ws_format_t format, const uint8_t *data, size_t len) {
    char reply[64];
    if (format == WS_TEXT && strcmp((const char *)data, "/online") == 0) {
        snprintf(reply, sizeof reply, "online %zu", ws_connections(NULL, 0));
        ws_send_text(conn, reply);
        return;
    }
    if (format == WS_TEXT && strcmp((const char *)data, "/count") == 0) {
        snprintf(reply, sizeof reply, "count %llu", (unsigned long long)relayed);
        ws_send_text(conn, reply);
        return;
    }
    char room[MAX_ROOM];
    if (ws_connection_path(conn, room, sizeof room) == WS_OK) {
        ws_publish(room, format, data, len, conn);
        relayed++;
    }
}

static void on_error(ws_conn_t conn, uint32_t code, const char *description) {
    ws_log(WS_LOG_INFO, "chat-c: connection %llu: error %u: %s", (unsigned long long)conn, code,
           description);
}

/* State: a version byte, then the count (u64 little-endian). */
static void snapshot(ws_buffer_t *out) {
    uint8_t bytes[9] = {1};
    for (int i = 0; i < 8; i++) {
        bytes[1 + i] = (uint8_t)(relayed >> (8 * i));
    }
    ws_buffer_append(out, bytes, sizeof bytes);
}

static const char *restore(const uint8_t *state, size_t len) {
    if (len != 9 || state[0] != 1) {
        return "chat-c: unknown state";
    }
    relayed = 0;
    for (int i = 7; i >= 0; i--) {
        relayed = (relayed << 8) | state[1 + i];
    }
    return NULL;
}

WS_PLUGIN(.connected = on_connected, .message = on_message, .error = on_error,
          .snapshot = snapshot, .restore = restore);
