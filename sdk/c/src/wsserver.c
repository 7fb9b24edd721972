/* The wsserver C SDK: the component's exports, dispatching each batch of
 * events to the plugin's callbacks, the command queue they fill, message
 * assembly, and thin wrappers over the host's direct functions. */
#include "wsserver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bindings.h"

/* ---- Small helpers ---- */

static void *xmalloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p) {
        __builtin_trap(); /* out of memory: the host replaces the instance */
    }
    return p;
}

static void *xrealloc(void *ptr, size_t size) {
    void *p = realloc(ptr, size ? size : 1);
    if (!p) {
        __builtin_trap();
    }
    return p;
}

void ws_buffer_append(ws_buffer_t *buffer, const void *data, size_t len) {
    if (buffer->len + len > buffer->cap) {
        size_t cap = buffer->cap ? buffer->cap * 2 : 64;
        while (cap < buffer->len + len) {
            cap *= 2;
        }
        buffer->data = xrealloc(buffer->data, cap);
        buffer->cap = cap;
    }
    if (len) {
        memcpy(buffer->data + buffer->len, data, len);
    }
    buffer->len += len;
}

/* A byte list the canonical ABI will own (it frees it after the call). */
static wsb_list_u8_t owned_bytes(const void *data, size_t len) {
    wsb_list_u8_t list = {NULL, len};
    if (len) {
        list.ptr = xmalloc(len);
        memcpy(list.ptr, data, len);
    }
    return list;
}

static wsb_string_t owned_string(const char *text) {
    wsb_string_t s = {NULL, 0};
    if (text && *text) {
        wsb_string_dup_n(&s, text, strlen(text));
    }
    return s;
}

/* A borrowed view for arguments of direct host calls. */
static wsb_string_t view_string(const char *text) {
    wsb_string_t s = {(uint8_t *)text, text ? strlen(text) : 0};
    return s;
}

/* NUL-terminated copies of a call's strings, freed together. */
typedef struct arena {
    void **blocks;
    size_t len, cap;
} arena_t;

static void *arena_alloc(arena_t *arena, size_t size) {
    if (arena->len == arena->cap) {
        arena->cap = arena->cap ? arena->cap * 2 : 16;
        arena->blocks = xrealloc(arena->blocks, arena->cap * sizeof(void *));
    }
    void *block = xmalloc(size);
    arena->blocks[arena->len++] = block;
    return block;
}

static const char *arena_str(arena_t *arena, const wsb_string_t *s) {
    char *out = arena_alloc(arena, s->len + 1);
    memcpy(out, s->ptr, s->len);
    out[s->len] = '\0';
    return out;
}

static const char *arena_opt_str(arena_t *arena, const wsb_option_string_t *s) {
    return s->is_some ? arena_str(arena, &s->val) : NULL;
}

static void arena_free(arena_t *arena) {
    for (size_t i = 0; i < arena->len; i++) {
        free(arena->blocks[i]);
    }
    free(arena->blocks);
    arena->blocks = NULL;
    arena->len = arena->cap = 0;
}

static const char *const *arena_str_list(arena_t *arena, const wsb_list_string_t *list) {
    const char **out = arena_alloc(arena, (list->len + 1) * sizeof(char *));
    for (size_t i = 0; i < list->len; i++) {
        out[i] = arena_str(arena, &list->ptr[i]);
    }
    out[list->len] = NULL;
    return out;
}

static const ws_header_t *arena_headers(arena_t *arena,
                                        const wsserver_plugin_types_list_header_t *list) {
    ws_header_t *out = arena_alloc(arena, (list->len + 1) * sizeof(ws_header_t));
    for (size_t i = 0; i < list->len; i++) {
        out[i].name = arena_str(arena, &list->ptr[i].name);
        out[i].value = arena_str(arena, &list->ptr[i].value);
    }
    out[list->len].name = out[list->len].value = NULL;
    return out;
}

static const ws_tls_t *arena_tls(arena_t *arena,
                                 const wsserver_plugin_types_option_tls_info_t *tls) {
    if (!tls->is_some) {
        return NULL;
    }
    ws_tls_t *out = arena_alloc(arena, sizeof(ws_tls_t));
    memset(out, 0, sizeof *out);
    out->protocol = arena_str(arena, &tls->val.protocol);
    out->cipher_suite = arena_str(arena, &tls->val.cipher_suite);
    out->server_name = arena_opt_str(arena, &tls->val.server_name);
    if (tls->val.client_certificate.is_some) {
        const wsserver_plugin_types_client_certificate_t *cert = &tls->val.client_certificate.val;
        out->client_cert_der = cert->der.ptr;
        out->client_cert_der_len = cert->der.len;
        out->client_cert_subject = arena_str(arena, &cert->subject);
        out->client_cert_issuer = arena_str(arena, &cert->issuer);
    }
    return out;
}

static ws_result_t result_of(bool ok, wsserver_plugin_types_host_error_t err) {
    if (ok) {
        return WS_OK;
    }
    switch (err) {
    case WSSERVER_PLUGIN_TYPES_HOST_ERROR_WOULD_BLOCK:
        return WS_WOULD_BLOCK;
    case WSSERVER_PLUGIN_TYPES_HOST_ERROR_INVALID_CONNECTION:
        return WS_INVALID_CONNECTION;
    default:
        return WS_INVALID_ARGUMENT;
    }
}

/* ---- The command queue of the current batch ---- */

static struct {
    wsserver_plugin_types_command_t *ptr;
    size_t len, cap;
} commands;

static wsserver_plugin_types_command_t *push_command(uint8_t tag) {
    if (commands.len == commands.cap) {
        commands.cap = commands.cap ? commands.cap * 2 : 16;
        commands.ptr = xrealloc(commands.ptr, commands.cap * sizeof *commands.ptr);
    }
    wsserver_plugin_types_command_t *command = &commands.ptr[commands.len++];
    memset(command, 0, sizeof *command);
    command->tag = tag;
    return command;
}

void ws_send(ws_conn_t conn, ws_format_t format, const void *data, size_t len) {
    wsserver_plugin_types_command_t *c = push_command(WSSERVER_PLUGIN_TYPES_COMMAND_SEND);
    c->val.send.connection = conn;
    c->val.send.format = (uint8_t)format;
    c->val.send.data = owned_bytes(data, len);
}

void ws_send_text(ws_conn_t conn, const char *text) {
    ws_send(conn, WS_TEXT, text, strlen(text));
}

void ws_send_binary(ws_conn_t conn, const void *data, size_t len) {
    ws_send(conn, WS_BINARY, data, len);
}

void ws_ping(ws_conn_t conn, const void *payload, size_t len) {
    wsserver_plugin_types_command_t *c = push_command(WSSERVER_PLUGIN_TYPES_COMMAND_PING);
    c->val.ping.connection = conn;
    c->val.ping.payload = owned_bytes(payload, len);
}

void ws_disconnect(ws_conn_t conn, uint16_t code, const char *reason) {
    wsserver_plugin_types_command_t *c = push_command(WSSERVER_PLUGIN_TYPES_COMMAND_DISCONNECT);
    c->val.disconnect.connection = conn;
    c->val.disconnect.code = code;
    c->val.disconnect.reason = owned_string(reason);
}

void ws_set_line_mode(ws_conn_t conn, bool enabled) {
    wsserver_plugin_types_command_t *c = push_command(WSSERVER_PLUGIN_TYPES_COMMAND_SET_LINE_MODE);
    c->val.set_line_mode.connection = conn;
    c->val.set_line_mode.enabled = enabled;
}

void ws_pause_data(ws_conn_t conn) {
    push_command(WSSERVER_PLUGIN_TYPES_COMMAND_PAUSE_DATA)->val.pause_data = conn;
}

void ws_resume_data(ws_conn_t conn) {
    push_command(WSSERVER_PLUGIN_TYPES_COMMAND_RESUME_DATA)->val.resume_data = conn;
}

void ws_subscribe(ws_conn_t conn, const char *topic) {
    wsserver_plugin_types_command_t *c = push_command(WSSERVER_PLUGIN_TYPES_COMMAND_SUBSCRIBE);
    c->val.subscribe.connection = conn;
    c->val.subscribe.topic = owned_string(topic);
}

void ws_unsubscribe(ws_conn_t conn, const char *topic) {
    wsserver_plugin_types_command_t *c = push_command(WSSERVER_PLUGIN_TYPES_COMMAND_UNSUBSCRIBE);
    c->val.unsubscribe.connection = conn;
    c->val.unsubscribe.topic = owned_string(topic);
}

static void publish(const char *topic, ws_format_t format, const void *data, size_t len,
                    bool has_exclude, ws_conn_t exclude) {
    wsserver_plugin_types_command_t *c = push_command(WSSERVER_PLUGIN_TYPES_COMMAND_PUBLISH);
    c->val.publish.topic = owned_string(topic);
    c->val.publish.format = (uint8_t)format;
    c->val.publish.data = owned_bytes(data, len);
    c->val.publish.exclude.is_some = has_exclude;
    c->val.publish.exclude.val = exclude;
}

void ws_publish(const char *topic, ws_format_t format, const void *data, size_t len,
                ws_conn_t exclude) {
    publish(topic, format, data, len, true, exclude);
}

void ws_publish_all(const char *topic, ws_format_t format, const void *data, size_t len) {
    publish(topic, format, data, len, false, 0);
}

/* ---- Direct host calls ---- */

ws_result_t ws_host_send(ws_conn_t conn, ws_format_t format, const void *data, size_t len) {
    wsb_list_u8_t bytes = {(uint8_t *)data, len};
    wsserver_plugin_types_host_error_t err = 0;
    bool ok = wsserver_plugin_host_send(conn, (uint8_t)format, &bytes, &err);
    return result_of(ok, err);
}

ws_result_t ws_host_ping(ws_conn_t conn, const void *payload, size_t len) {
    wsb_list_u8_t bytes = {(uint8_t *)payload, len};
    wsserver_plugin_types_host_error_t err = 0;
    return result_of(wsserver_plugin_host_ping(conn, &bytes, &err), err);
}

ws_result_t ws_host_disconnect(ws_conn_t conn, uint16_t code, const char *reason) {
    wsb_string_t text = view_string(reason);
    wsserver_plugin_types_host_error_t err = 0;
    return result_of(wsserver_plugin_host_disconnect(conn, code, &text, &err), err);
}

ws_result_t ws_host_set_line_mode(ws_conn_t conn, bool enabled) {
    wsserver_plugin_types_host_error_t err = 0;
    return result_of(wsserver_plugin_host_set_line_mode(conn, enabled, &err), err);
}

ws_result_t ws_host_pause_data(ws_conn_t conn) {
    wsserver_plugin_types_host_error_t err = 0;
    return result_of(wsserver_plugin_host_pause_data(conn, &err), err);
}

ws_result_t ws_host_resume_data(ws_conn_t conn) {
    wsserver_plugin_types_host_error_t err = 0;
    return result_of(wsserver_plugin_host_resume_data(conn, &err), err);
}

ws_result_t ws_host_subscribe(ws_conn_t conn, const char *topic) {
    wsb_string_t text = view_string(topic);
    wsserver_plugin_types_host_error_t err = 0;
    return result_of(wsserver_plugin_host_subscribe(conn, &text, &err), err);
}

ws_result_t ws_host_unsubscribe(ws_conn_t conn, const char *topic) {
    wsb_string_t text = view_string(topic);
    wsserver_plugin_types_host_error_t err = 0;
    return result_of(wsserver_plugin_host_unsubscribe(conn, &text, &err), err);
}

ws_result_t ws_host_publish(const char *topic, ws_format_t format, const void *data, size_t len,
                            bool has_exclude, ws_conn_t exclude) {
    wsb_string_t text = view_string(topic);
    wsb_list_u8_t bytes = {(uint8_t *)data, len};
    wsserver_plugin_types_host_error_t err = 0;
    bool ok = wsserver_plugin_host_publish(&text, (uint8_t)format, &bytes,
                                           has_exclude ? &exclude : NULL, &err);
    return result_of(ok, err);
}

/* What ws_connection_info hands out: the host's record and the copies. */
typedef struct info_owned {
    wsserver_plugin_types_ws_connection_t record;
    arena_t arena;
} info_owned_t;

ws_result_t ws_connection_info(ws_conn_t conn, ws_connection_info_t *info) {
    memset(info, 0, sizeof *info);
    info_owned_t *owned = xmalloc(sizeof *owned);
    memset(owned, 0, sizeof *owned);
    wsserver_plugin_types_host_error_t err = 0;
    if (!wsserver_plugin_host_connection_info(conn, &owned->record, &err)) {
        free(owned);
        return result_of(false, err);
    }
    const wsserver_plugin_types_ws_connection_t *r = &owned->record;
    arena_t *a = &owned->arena;
    info->id = r->id;
    info->accept_data = r->accept_data;
    info->bytes_sent = r->bytes_sent;
    info->connected = r->connected;
    info->host = arena_str(a, &r->host);
    info->line_mode = r->line_mode;
    info->local_address = arena_str(a, &r->local_address);
    info->origin = arena_opt_str(a, &r->origin);
    info->ready_to_send = r->ready_to_send;
    info->remote_host = arena_str(a, &r->remote_host);
    info->remote_port = r->remote_port;
    info->request_headers = arena_headers(a, &r->request_headers);
    info->request_header_count = r->request_headers.len;
    info->request_uri = arena_str(a, &r->request_uri);
    info->subprotocols = arena_str_list(a, &r->subprotocols);
    info->subprotocol_count = r->subprotocols.len;
    info->subprotocol = arena_opt_str(a, &r->subprotocol);
    info->timeout_seconds = r->timeout_seconds;
    info->tls = arena_tls(a, &r->tls);
    info->owned_ = owned;
    return WS_OK;
}

void ws_connection_info_free(ws_connection_info_t *info) {
    info_owned_t *owned = info->owned_;
    if (owned) {
        arena_free(&owned->arena);
        wsserver_plugin_types_ws_connection_free(&owned->record);
        free(owned);
    }
    memset(info, 0, sizeof *info);
}

ws_result_t ws_connection_path(ws_conn_t conn, char *out, size_t cap) {
    ws_connection_info_t info;
    ws_result_t result = ws_connection_info(conn, &info);
    if (result != WS_OK) {
        return result;
    }
    size_t len = strcspn(info.request_uri, "?#");
    if (cap) {
        if (len >= cap) {
            len = cap - 1;
        }
        memcpy(out, info.request_uri, len);
        out[len] = '\0';
    }
    ws_connection_info_free(&info);
    return WS_OK;
}

size_t ws_connections(ws_conn_t *out, size_t cap) {
    wsserver_plugin_host_list_connection_id_t list = {NULL, 0};
    wsserver_plugin_host_connections(&list);
    size_t n = list.len < cap ? list.len : cap;
    if (n) {
        memcpy(out, list.ptr, n * sizeof(ws_conn_t));
    }
    size_t total = list.len;
    wsserver_plugin_host_list_connection_id_free(&list);
    return total;
}

ws_result_t ws_host_set_attachment(ws_conn_t conn, const void *data, size_t len) {
    wsb_list_u8_t bytes = {(uint8_t *)data, len};
    wsserver_plugin_types_host_error_t err = 0;
    return result_of(wsserver_plugin_host_set_attachment(conn, &bytes, &err), err);
}

ws_result_t ws_host_attachment(ws_conn_t conn, void *out, size_t cap, size_t *len) {
    wsb_option_list_u8_t found = {false, {NULL, 0}};
    wsserver_plugin_types_host_error_t err = 0;
    *len = 0;
    if (!wsserver_plugin_host_attachment(conn, &found, &err)) {
        return result_of(false, err);
    }
    if (found.is_some) {
        *len = found.val.len;
        if (cap > 0) {
            memcpy(out, found.val.ptr, found.val.len < cap ? found.val.len : cap);
        }
        wsb_list_u8_free(&found.val);
    }
    return WS_OK;
}

char *ws_config_get(const char *key) {
    wsb_string_t name = view_string(key);
    wsb_string_t value = {NULL, 0};
    if (!wsserver_plugin_host_config_get(&name, &value)) {
        return NULL;
    }
    char *out = xmalloc(value.len + 1);
    memcpy(out, value.ptr, value.len);
    out[value.len] = '\0';
    wsb_string_free(&value);
    return out;
}

void ws_log(ws_log_level_t level, const char *format, ...) {
    char small[256];
    va_list args;
    va_start(args, format);
    int needed = vsnprintf(small, sizeof small, format, args);
    va_end(args);
    if (needed < 0) {
        return;
    }
    char *text = small;
    if ((size_t)needed >= sizeof small) {
        text = xmalloc((size_t)needed + 1);
        va_start(args, format);
        vsnprintf(text, (size_t)needed + 1, format, args);
        va_end(args);
    }
    wsb_string_t message = {(uint8_t *)text, (size_t)needed};
    wsserver_plugin_host_log((uint8_t)level, &message);
    if (text != small) {
        free(text);
    }
}

/* ---- Message assembly ---- */

/* A message whose first chunks have arrived. Few connections are
 * mid-message at once, so a plain array is enough. */
typedef struct partial {
    ws_conn_t conn;
    ws_format_t format;
    ws_buffer_t data;
} partial_t;

static struct {
    partial_t *ptr;
    size_t len, cap;
} partials;

static partial_t *find_partial(ws_conn_t conn) {
    for (size_t i = 0; i < partials.len; i++) {
        if (partials.ptr[i].conn == conn) {
            return &partials.ptr[i];
        }
    }
    return NULL;
}

static partial_t *add_partial(ws_conn_t conn, ws_format_t format) {
    if (partials.len == partials.cap) {
        partials.cap = partials.cap ? partials.cap * 2 : 4;
        partials.ptr = xrealloc(partials.ptr, partials.cap * sizeof *partials.ptr);
    }
    partial_t *p = &partials.ptr[partials.len++];
    p->conn = conn;
    p->format = format;
    memset(&p->data, 0, sizeof p->data);
    return p;
}

static void drop_partial(ws_conn_t conn) {
    partial_t *p = find_partial(conn);
    if (p) {
        free(p->data.data);
        *p = partials.ptr[--partials.len];
    }
}

/* Calls `message` once a chunk completes one. Takes the chunk's bytes. */
static void assemble(wsserver_plugin_types_data_in_t *chunk) {
    ws_conn_t conn = chunk->connection;
    if (chunk->format != WSSERVER_PLUGIN_TYPES_DATA_FORMAT_CONTINUATION) {
        /* A first chunk: a message still in progress cannot complete (the
         * host never interleaves messages of a connection). */
        drop_partial(conn);
        ws_format_t format =
            chunk->format == WSSERVER_PLUGIN_TYPES_DATA_FORMAT_TEXT ? WS_TEXT : WS_BINARY;
        if (chunk->eom) {
            /* Whole in one chunk: no copy, just room for the NUL. */
            size_t len = chunk->data.len;
            uint8_t *data = xrealloc(chunk->data.ptr, len + 1);
            data[len] = 0;
            chunk->data.ptr = NULL;
            chunk->data.len = 0;
            ws_plugin.message(conn, format, data, len);
            free(data);
            return;
        }
        partial_t *p = add_partial(conn, format);
        ws_buffer_append(&p->data, chunk->data.ptr, chunk->data.len);
        return;
    }
    partial_t *p = find_partial(conn);
    if (!p) {
        /* The start went to an instance this one replaced: drop it. */
        return;
    }
    ws_buffer_append(&p->data, chunk->data.ptr, chunk->data.len);
    if (chunk->eom) {
        ws_buffer_append(&p->data, "", 1); /* the NUL after the data */
        partial_t done = *p;
        *p = partials.ptr[--partials.len];
        ws_plugin.message(conn, done.format, done.data.data, done.data.len - 1);
        free(done.data.data);
    }
}

/* ---- The handler export ---- */

/* The response being built while `open_request` runs. */
static exports_wsserver_plugin_handler_open_response_t *current_response;

void ws_open_response_add_header(ws_open_response_t *response, const char *name,
                                 const char *value) {
    (void)response; /* the headers live in the response the host receives */
    wsserver_plugin_types_list_header_t *headers = &current_response->headers;
    headers->ptr = xrealloc(headers->ptr, (headers->len + 1) * sizeof *headers->ptr);
    headers->ptr[headers->len].name = owned_string(name);
    headers->ptr[headers->len].value = owned_string(value);
    headers->len++;
}

void exports_wsserver_plugin_handler_on_open_request(
    exports_wsserver_plugin_handler_open_request_t *request,
    exports_wsserver_plugin_handler_open_response_t *ret) {
    memset(ret, 0, sizeof *ret);
    ret->status = 101;
    if (ws_plugin.open_request) {
        arena_t arena = {0};
        ws_open_request_t req = {
            .connection = request->connection,
            .request_uri = arena_str(&arena, &request->request_uri),
            .host = arena_str(&arena, &request->host),
            .origin = arena_opt_str(&arena, &request->origin),
            .subprotocols = arena_str_list(&arena, &request->subprotocols),
            .subprotocol_count = request->subprotocols.len,
            .extensions = arena_str(&arena, &request->extensions),
            .headers = arena_headers(&arena, &request->headers),
            .header_count = request->headers.len,
            .remote_address = arena_str(&arena, &request->remote_address),
            .remote_port = request->remote_port,
            .local_address = arena_str(&arena, &request->local_address),
            .tls = arena_tls(&arena, &request->tls),
        };
        ws_open_response_t response = {.status = 101, .subprotocol = NULL};
        /* Headers added by ws_open_response_add_header land in `ret`. */
        current_response = ret;
        ws_plugin.open_request(&req, &response);
        current_response = NULL;
        ret->status = response.status;
        if (response.subprotocol) {
            ret->subprotocol.is_some = true;
            ret->subprotocol.val = owned_string(response.subprotocol);
        }
        arena_free(&arena);
    }
    wsserver_plugin_types_open_request_free(request);
}

void exports_wsserver_plugin_handler_on_events(exports_wsserver_plugin_handler_list_event_t *events,
                                               exports_wsserver_plugin_handler_list_command_t *ret) {
    arena_t arena = {0};
    for (size_t i = 0; i < events->len; i++) {
        wsserver_plugin_types_event_t *event = &events->ptr[i];
        switch (event->tag) {
        case WSSERVER_PLUGIN_TYPES_EVENT_CONNECTED:
            if (ws_plugin.connected) {
                ws_plugin.connected(event->val.connected);
            }
            break;
        case WSSERVER_PLUGIN_TYPES_EVENT_DATA_IN: {
            wsserver_plugin_types_data_in_t *chunk = &event->val.data_in;
            if (ws_plugin.data_in) {
                ws_data_in_t in = {
                    .connection = chunk->connection,
                    .format = (ws_data_format_t)chunk->format,
                    .data = chunk->data.ptr,
                    .len = chunk->data.len,
                    .eom = chunk->eom,
                    .eol = chunk->eol,
                };
                ws_plugin.data_in(&in);
            } else if (ws_plugin.message) {
                assemble(chunk);
            }
            break;
        }
        case WSSERVER_PLUGIN_TYPES_EVENT_PING:
            if (ws_plugin.ping) {
                ws_plugin.ping(event->val.ping.connection, event->val.ping.payload.ptr,
                               event->val.ping.payload.len, event->val.ping.response);
            }
            break;
        case WSSERVER_PLUGIN_TYPES_EVENT_DISCONNECTED:
            drop_partial(event->val.disconnected.connection);
            if (ws_plugin.disconnected) {
                ws_plugin.disconnected(event->val.disconnected.connection,
                                       event->val.disconnected.code,
                                       arena_str(&arena, &event->val.disconnected.description));
            }
            break;
        case WSSERVER_PLUGIN_TYPES_EVENT_READY_TO_SEND:
            if (ws_plugin.ready_to_send) {
                ws_plugin.ready_to_send(event->val.ready_to_send);
            }
            break;
        case WSSERVER_PLUGIN_TYPES_EVENT_ERROR:
            if (ws_plugin.error) {
                ws_plugin.error(event->val.error.connection, event->val.error.code,
                                arena_str(&arena, &event->val.error.description));
            }
            break;
        default:
            break;
        }
    }
    arena_free(&arena);
    exports_wsserver_plugin_handler_list_event_free(events);
    /* The canonical ABI frees the list and its contents after the call. */
    ret->ptr = commands.ptr;
    ret->len = commands.len;
    commands.ptr = NULL;
    commands.len = commands.cap = 0;
}

/* ---- The lifecycle export (stateful-plugin world only) ---- */
#ifdef WSSERVER_STATEFUL

/* Layout: a version byte (1), the number of unfinished messages (u32 LE),
 * each as connection (u64 LE), format (u8: 0 text, 1 binary), length (u32
 * LE) and bytes; then the plugin's own snapshot to the end. */
#define SNAPSHOT_VERSION 1

static void put_u32(ws_buffer_t *out, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    ws_buffer_append(out, b, 4);
}

static void put_u64(ws_buffer_t *out, uint64_t v) {
    put_u32(out, (uint32_t)v);
    put_u32(out, (uint32_t)(v >> 32));
}

static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

void exports_wsserver_plugin_lifecycle_snapshot(stateful_plugin_list_u8_t *ret) {
    ws_buffer_t out = {0};
    uint8_t version = SNAPSHOT_VERSION;
    ws_buffer_append(&out, &version, 1);
    put_u32(&out, (uint32_t)partials.len);
    for (size_t i = 0; i < partials.len; i++) {
        const partial_t *p = &partials.ptr[i];
        put_u64(&out, p->conn);
        uint8_t format = p->format == WS_TEXT ? 0 : 1;
        ws_buffer_append(&out, &format, 1);
        put_u32(&out, (uint32_t)p->data.len);
        ws_buffer_append(&out, p->data.data, p->data.len);
    }
    if (ws_plugin.snapshot) {
        ws_plugin.snapshot(&out);
    }
    ret->ptr = out.data;
    ret->len = out.len;
}

static bool restore_error(stateful_plugin_string_t *err, const char *message) {
    *err = owned_string(message);
    return false;
}

bool exports_wsserver_plugin_lifecycle_restore(stateful_plugin_list_u8_t *state,
                                               stateful_plugin_string_t *err) {
    const uint8_t *p = state->ptr, *end = state->ptr + state->len;
    bool ok = true;
    if (end - p < 5 || p[0] != SNAPSHOT_VERSION) {
        ok = restore_error(err, end - p < 5 ? "C SDK snapshot is truncated"
                                            : "unsupported C SDK snapshot version");
        goto done;
    }
    uint32_t count = (uint32_t)get_le(p + 1, 4);
    p += 5;
    for (uint32_t i = 0; i < count; i++) {
        if (end - p < 13) {
            ok = restore_error(err, "C SDK snapshot is truncated");
            goto done;
        }
        ws_conn_t conn = get_le(p, 8);
        uint8_t format = p[8];
        uint32_t len = (uint32_t)get_le(p + 9, 4);
        p += 13;
        if (format > 1 || (size_t)(end - p) < len) {
            ok = restore_error(err, format > 1 ? "unknown message format in C SDK snapshot"
                                               : "C SDK snapshot is truncated");
            goto done;
        }
        drop_partial(conn);
        partial_t *partial = add_partial(conn, format == 0 ? WS_TEXT : WS_BINARY);
        ws_buffer_append(&partial->data, p, len);
        p += len;
    }
    if (ws_plugin.restore) {
        const char *message = ws_plugin.restore(p, (size_t)(end - p));
        if (message) {
            ok = restore_error(err, message);
        }
    }
done:
    stateful_plugin_list_u8_free(state);
    return ok;
}

#endif
