/* {{name}}: a wsserver plugin. It echoes each whole message back to its
 * sender with its format; replace on_message with your own logic. The API
 * is in {{sdk}}/c/include/wsserver.h (see {{sdk}}/c/README.md). */
#include <wsserver.h>

static void on_message(ws_conn_t conn, ws_format_t format, const uint8_t *data, size_t len) {
    ws_send(conn, format, data, len);
}

static void on_connected(ws_conn_t conn) {
    ws_log(WS_LOG_VERBOSE, "{{name}}: connection %llu open", (unsigned long long)conn);
}

WS_PLUGIN(.connected = on_connected, .message = on_message);
