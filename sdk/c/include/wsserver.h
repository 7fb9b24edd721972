/*
 * wsserver SDK for C: write a wsserver WebSocket plugin as a table of
 * callbacks, one per event. The SDK hides the WIT bindings: it turns each
 * batch of events the host delivers into callback calls, assembles
 * fragmented messages, and returns what the callbacks queued (sends,
 * pings, closes, topic operations) as one list of commands.
 *
 *     #include <wsserver.h>
 *
 *     static void on_message(ws_conn_t conn, ws_format_t format,
 *                            const uint8_t *data, size_t len) {
 *         ws_send(conn, format, data, len);
 *     }
 *
 *     WS_PLUGIN(.message = on_message);
 *
 * Build it with `wsserver-cc -o echo.wasm echo.c` (see sdk/c/README.md).
 *
 * Two ways to act on a connection:
 * - ws_send, ws_ping, ws_disconnect, ws_subscribe, ... queue a command. The
 *   host applies the queue in order after the batch. A command that fails
 *   comes back as an `error` callback at the start of the next batch (code
 *   WS_ERROR_WOULD_BLOCK, WS_ERROR_INVALID_CONNECTION, ...); after a
 *   would-block, `ready_to_send` follows once the queue has drained.
 * - ws_host_send, ws_host_ping, ... call the host at once and return its
 *   answer (WS_OK, WS_WOULD_BLOCK, ...). They act before anything queued in
 *   the current batch: use one style per connection within a batch.
 *
 * Memory: pointers passed to callbacks are valid only during the call; copy
 * what you keep. Strings are NUL-terminated UTF-8 (lengths are also given
 * where the data may contain NUL).
 */
#ifndef WSSERVER_H
#define WSSERVER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A connection id: never reused while the host runs. */
typedef uint64_t ws_conn_t;

/* The format of a whole message. */
typedef enum ws_format {
    WS_TEXT = 0,
    WS_BINARY = 1,
} ws_format_t;

/* The format of a received chunk (the `data_in` callback). */
typedef enum ws_data_format {
    WS_DATA_CONTINUATION = 0,
    WS_DATA_TEXT = 1,
    WS_DATA_BINARY = 2,
} ws_data_format_t;

/* What a direct host call returns. */
typedef enum ws_result {
    WS_OK = 0,
    /* The connection's outbound queue is full; `ready_to_send` follows. */
    WS_WOULD_BLOCK = 1,
    /* Not this plugin's connection, or it is closed or closing. */
    WS_INVALID_CONNECTION = 2,
    /* A malformed argument (text that is not UTF-8, a ping payload over 125
     * bytes, a close reason over 123 bytes, a code that may not be sent). */
    WS_INVALID_ARGUMENT = 3,
} ws_result_t;

/* Error codes of the `error` callback (seed error codes). */
#define WS_ERROR_WOULD_BLOCK 10035u
#define WS_ERROR_INVALID_CONNECTION 126u
#define WS_ERROR_INVALID_ARGUMENT 10022u
#define WS_ERROR_SEND_FAILED 4202u
#define WS_ERROR_OVER_RATE 1008u

typedef enum ws_log_level {
    WS_LOG_ERROR = 0,
    WS_LOG_INFO = 1,
    WS_LOG_VERBOSE = 2,
    WS_LOG_DEBUG = 3,
} ws_log_level_t;

/* One HTTP header, as the client sent it. */
typedef struct ws_header {
    const char *name;
    const char *value;
} ws_header_t;

/* Facts about a TLS session (NULL when the connection is plain TCP). */
typedef struct ws_tls {
    const char *protocol;     /* "TLS1.2" or "TLS1.3" */
    const char *cipher_suite; /* IANA name */
    const char *server_name;  /* SNI, or NULL */
    /* The client certificate, if one was presented and accepted. */
    const uint8_t *client_cert_der;
    size_t client_cert_der_len;
    const char *client_cert_subject; /* NULL without a certificate */
    const char *client_cert_issuer;
} ws_tls_t;

/* A client's request to open a WebSocket. */
typedef struct ws_open_request {
    ws_conn_t connection;
    const char *request_uri; /* path and query, e.g. "/chat/lobby?x=1" */
    const char *host;        /* the Host header, "" if absent */
    const char *origin;      /* NULL if absent */
    const char *const *subprotocols; /* in the client's order */
    size_t subprotocol_count;
    const char *extensions;
    const ws_header_t *headers;
    size_t header_count;
    const char *remote_address;
    uint16_t remote_port;
    const char *local_address;
    const ws_tls_t *tls; /* NULL without TLS */
} ws_open_request_t;

/* The answer to an open request. The SDK passes it to `open_request`
 * filled with status 101 and nothing else: leave it to accept. */
typedef struct ws_open_response {
    uint16_t status; /* 101 accepts; anything else rejects */
    /* One of the request's subprotocols, or NULL. Must stay valid until
     * the callback returns (a string literal, or one of the request's). */
    const char *subprotocol;
} ws_open_response_t;

/* Adds a response header (e.g. WWW-Authenticate on a 401). Copies both. */
void ws_open_response_add_header(ws_open_response_t *response, const char *name,
                                 const char *value);

/* A received chunk, for plugins that handle chunks themselves (line mode,
 * streaming). Most use the `message` callback instead. */
typedef struct ws_data_in {
    ws_conn_t connection;
    ws_data_format_t format;
    const uint8_t *data;
    size_t len;
    bool eom; /* this chunk ends the message */
    bool eol; /* line mode: the chunk ends with a line feed */
} ws_data_in_t;

/* A growable byte buffer (snapshots). */
typedef struct ws_buffer {
    uint8_t *data;
    size_t len;
    size_t cap;
} ws_buffer_t;

void ws_buffer_append(ws_buffer_t *buffer, const void *data, size_t len);

/* The plugin: set the callbacks you need, leave the others NULL. */
typedef struct ws_plugin {
    /* Decide on an open request; NULL accepts everything. */
    void (*open_request)(const ws_open_request_t *request, ws_open_response_t *response);
    /* The WebSocket is open. Also called, after a hot swap to a version
     * without lifecycle callbacks, for each connection the new instance
     * takes over: rebuild per-connection state here. */
    void (*connected)(ws_conn_t conn);
    /* A whole message, assembled from its fragments by the SDK. */
    void (*message)(ws_conn_t conn, ws_format_t format, const uint8_t *data, size_t len);
    /* Every chunk as it arrives. When set, `message` is not called: the
     * plugin sees the raw chunks (needed for line mode). */
    void (*data_in)(const ws_data_in_t *chunk);
    /* A ping (response false) or pong (true); the host already answered
     * pings. */
    void (*ping)(ws_conn_t conn, const uint8_t *payload, size_t len, bool response);
    /* The connection has ended; its last event. */
    void (*disconnected)(ws_conn_t conn, uint16_t code, const char *reason);
    /* The outbound queue drained after a would-block. */
    void (*ready_to_send)(ws_conn_t conn);
    /* A queued command failed, or the host hit an error on a connection
     * (WS_ERROR_* codes; treat unknown ones as errors). */
    void (*error)(ws_conn_t conn, uint32_t code, const char *description);

    /* Lifecycle (hot swap), used only when built with `--stateful` (the
     * component then exports `lifecycle`). `snapshot` appends the plugin's
     * state to `out` (version it: newer or older code may restore it).
     * `restore` loads it into the fresh instance; return NULL on success or
     * an error message (a string literal) to abort the swap. The SDK adds
     * its own state (messages still being assembled) around yours. */
    void (*snapshot)(ws_buffer_t *out);
    const char *(*restore)(const uint8_t *state, size_t len);
} ws_plugin_t;

/* The plugin the SDK dispatches to: define it once with WS_PLUGIN. */
extern const ws_plugin_t ws_plugin;
#define WS_PLUGIN(...) const ws_plugin_t ws_plugin = {__VA_ARGS__}

/* ---- Queued commands (applied by the host after the batch, in order) ----
 * Each copies its arguments. */

void ws_send(ws_conn_t conn, ws_format_t format, const void *data, size_t len);
/* A text message from a NUL-terminated UTF-8 string. */
void ws_send_text(ws_conn_t conn, const char *text);
void ws_send_binary(ws_conn_t conn, const void *data, size_t len);
/* A ping with at most 125 bytes of payload. */
void ws_ping(ws_conn_t conn, const void *payload, size_t len);
/* Starts the close handshake: 1000 (normal) or another code that may be
 * sent (1001-1003, 1007-1011, 3000-4999); reason at most 123 bytes. */
void ws_disconnect(ws_conn_t conn, uint16_t code, const char *reason);
void ws_set_line_mode(ws_conn_t conn, bool enabled);
/* Stops `data_in`/`message` for the connection until ws_resume_data. */
void ws_pause_data(ws_conn_t conn);
void ws_resume_data(ws_conn_t conn);
void ws_subscribe(ws_conn_t conn, const char *topic);
void ws_unsubscribe(ws_conn_t conn, const char *topic);
/* To every subscriber of `topic`; `exclude` (e.g. the sender) does not
 * receive it. Use ws_publish_all to exclude nobody. */
void ws_publish(const char *topic, ws_format_t format, const void *data, size_t len,
                ws_conn_t exclude);
void ws_publish_all(const char *topic, ws_format_t format, const void *data, size_t len);

/* ---- Direct host calls (act at once) ---- */

ws_result_t ws_host_send(ws_conn_t conn, ws_format_t format, const void *data, size_t len);
ws_result_t ws_host_ping(ws_conn_t conn, const void *payload, size_t len);
ws_result_t ws_host_disconnect(ws_conn_t conn, uint16_t code, const char *reason);
ws_result_t ws_host_set_line_mode(ws_conn_t conn, bool enabled);
ws_result_t ws_host_pause_data(ws_conn_t conn);
ws_result_t ws_host_resume_data(ws_conn_t conn);
ws_result_t ws_host_subscribe(ws_conn_t conn, const char *topic);
ws_result_t ws_host_unsubscribe(ws_conn_t conn, const char *topic);
/* `exclude` is ignored unless `has_exclude`. */
ws_result_t ws_host_publish(const char *topic, ws_format_t format, const void *data, size_t len,
                            bool has_exclude, ws_conn_t exclude);

/* What the host knows about a connection (the seed's WSConnection). */
typedef struct ws_connection_info {
    ws_conn_t id;
    bool accept_data;
    uint64_t bytes_sent;
    bool connected;
    const char *host;
    bool line_mode;
    const char *local_address;
    const char *origin; /* NULL if absent */
    bool ready_to_send;
    const char *remote_host;
    uint16_t remote_port;
    const ws_header_t *request_headers;
    size_t request_header_count;
    const char *request_uri;
    const char *const *subprotocols;
    size_t subprotocol_count;
    const char *subprotocol; /* the one chosen, or NULL */
    uint32_t timeout_seconds;
    const ws_tls_t *tls; /* NULL without TLS */
    void *owned_;        /* the SDK's; freed by ws_connection_info_free */
} ws_connection_info_t;

/* Fills `info`; free it with ws_connection_info_free after WS_OK. */
ws_result_t ws_connection_info(ws_conn_t conn, ws_connection_info_t *info);
void ws_connection_info_free(ws_connection_info_t *info);

/* The request path of a connection (request URI without the query) into
 * `out` (NUL-terminated, truncated to `cap`); WS_OK or the host's error. */
ws_result_t ws_connection_path(ws_conn_t conn, char *out, size_t cap);

/* This plugin's open connections: returns how many there are and writes
 * up to `cap` ids to `out` (call with cap 0 to count). */
size_t ws_connections(ws_conn_t *out, size_t cap);

/* Stores up to 2048 bytes with one of this plugin's connections (an empty
 * attachment removes it). The host keeps it while the connection is open:
 * across hibernation, traps and hot swaps, so a fresh instance can serve
 * the connection. */
ws_result_t ws_host_set_attachment(ws_conn_t conn, const void *data, size_t len);

/* The connection's attachment: its length goes to `*len` (0 when there is
 * none) and up to `cap` bytes of it to `out`. WS_OK or the host's error. */
ws_result_t ws_host_attachment(ws_conn_t conn, void *out, size_t cap, size_t *len);

/* A configuration value the operator granted, as a malloc'd string the
 * caller frees, or NULL if it is not set. */
char *ws_config_get(const char *key);

/* A line in the server's log, printf-style. */
void ws_log(ws_log_level_t level, const char *format, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif /* WSSERVER_H */
