/* Echoes each whole message back to its sender with its format (text or
 * binary). The SDK assembles fragmented messages, and, built with
 * --stateful, carries unfinished ones across a hot swap. */
#include <wsserver.h>

static void on_message(ws_conn_t conn, ws_format_t format, const uint8_t *data, size_t len) {
    ws_send(conn, format, data, len);
}

WS_PLUGIN(.message = on_message);
