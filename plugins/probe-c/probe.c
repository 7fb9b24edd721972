/* Test plugin: the C SDK's counterpart of plugins/probe (the Rust one),
 * speaking the same text protocol so that the end-to-end tests drive every
 * event and host function through either. See plugins/probe/src/lib.rs for
 * the commands. Beyond them: `flood` sends 16 KiB binary messages with the
 * direct send until the host answers would-block, replies `flooded N`, and
 * `event ready-to-send` follows when the queue has drained. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wsserver.h>

/* The connection that sent the latest command: errors about ids that are
 * not ours are reported to it. */
static ws_conn_t last;

static void reply(ws_conn_t conn, const char *format, ...) __attribute__((format(printf, 2, 3)));

static void reply(ws_conn_t conn, const char *format, ...) {
    char text[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(text, sizeof text, format, args);
    va_end(args);
    ws_send_text(conn, text);
}

static const char *result_text(ws_result_t result) {
    switch (result) {
    case WS_OK:
        return "ok";
    case WS_WOULD_BLOCK:
        return "err would-block";
    case WS_INVALID_CONNECTION:
        return "err invalid-connection";
    default:
        return "err invalid-argument";
    }
}

static ws_conn_t parse_id(const char *text, ws_conn_t fallback) {
    char *end;
    unsigned long long id = strtoull(text, &end, 10);
    return end == text ? fallback : (ws_conn_t)id;
}

static void info(ws_conn_t conn, ws_conn_t id) {
    ws_connection_info_t i;
    ws_result_t result = ws_connection_info(id, &i);
    if (result != WS_OK) {
        reply(conn, "%s", result_text(result));
        return;
    }
    char subprotocols[256] = "";
    for (size_t k = 0; k < i.subprotocol_count; k++) {
        if (k) {
            strncat(subprotocols, ",", sizeof subprotocols - strlen(subprotocols) - 1);
        }
        strncat(subprotocols, i.subprotocols[k], sizeof subprotocols - strlen(subprotocols) - 1);
    }
    char tls[512] = "none";
    if (i.tls) {
        snprintf(tls, sizeof tls, "%s %s sni=%s client=%s", i.tls->protocol, i.tls->cipher_suite,
                 i.tls->server_name ? i.tls->server_name : "",
                 i.tls->client_cert_subject ? i.tls->client_cert_subject : "");
    }
    reply(conn,
          "info id=%llu uri=%s host=%s origin=%s remote=%s:%u local=%s subprotocols=%s "
          "accept_data=%s line_mode=%s connected=%s tls=%s",
          (unsigned long long)i.id, i.request_uri, i.host, i.origin ? i.origin : "",
          i.remote_host, i.remote_port, i.local_address, subprotocols,
          i.accept_data ? "true" : "false", i.line_mode ? "true" : "false",
          i.connected ? "true" : "false", tls);
    ws_connection_info_free(&i);
}

static int compare_ids(const void *a, const void *b) {
    ws_conn_t x = *(const ws_conn_t *)a, y = *(const ws_conn_t *)b;
    return x < y ? -1 : x > y;
}

static void connections(ws_conn_t conn) {
    size_t n = ws_connections(NULL, 0);
    ws_conn_t *ids = malloc((n ? n : 1) * sizeof *ids);
    n = ws_connections(ids, n);
    qsort(ids, n, sizeof *ids, compare_ids);
    char list[1024] = "";
    for (size_t k = 0; k < n; k++) {
        char one[24];
        snprintf(one, sizeof one, k ? ",%llu" : "%llu", (unsigned long long)ids[k]);
        strncat(list, one, sizeof list - strlen(list) - 1);
    }
    free(ids);
    reply(conn, "connections %s", list);
}

static void flood(ws_conn_t conn) {
    static uint8_t block[16 * 1024];
    unsigned sent = 0;
    /* Bounded, in case a fast reader keeps the queue from ever filling. */
    while (sent < 4096 && ws_host_send(conn, WS_BINARY, block, sizeof block) == WS_OK) {
        sent++;
    }
    reply(conn, "flooded %u", sent);
}

static void command(ws_conn_t conn, char *text) {
    last = conn;
    char *rest = strchr(text, ' ');
    if (rest) {
        *rest++ = '\0';
    } else {
        rest = text + strlen(text);
    }
    const char *verb = text;
    /* `first` and `tail` split `rest` at its first space, in a copy. */
    char first[256];
    snprintf(first, sizeof first, "%s", rest);
    char *space = strchr(first, ' ');
    const char *tail = "";
    if (space) {
        *space = '\0';
        tail = rest + (space - first) + 1;
    }

    if (!strcmp(verb, "echo")) {
        reply(conn, "%s", rest);
    } else if (!strcmp(verb, "ping")) {
        ws_ping(conn, rest, strlen(rest));
    } else if (!strcmp(verb, "direct-ping")) {
        reply(conn, "%s", result_text(ws_host_ping(conn, rest, strlen(rest))));
    } else if (!strcmp(verb, "close")) {
        ws_disconnect(conn, (uint16_t)parse_id(first, 1000), tail);
    } else if (!strcmp(verb, "direct-close")) {
        ws_result_t r = ws_host_disconnect(conn, (uint16_t)parse_id(first, 1000), tail);
        if (r != WS_OK) {
            reply(conn, "%s", result_text(r));
        }
    } else if (!strcmp(verb, "line-mode")) {
        ws_set_line_mode(conn, !strcmp(rest, "on"));
        reply(conn, "line-mode %s", rest);
    } else if (!strcmp(verb, "pause")) {
        ws_pause_data(conn);
    } else if (!strcmp(verb, "resume")) {
        ws_resume_data(parse_id(first, conn));
    } else if (!strcmp(verb, "info")) {
        info(conn, parse_id(first, conn));
    } else if (!strcmp(verb, "connections")) {
        connections(conn);
    } else if (!strcmp(verb, "attach")) {
        reply(conn, "%s", result_text(ws_set_attachment(conn, rest, strlen(rest))));
    } else if (!strcmp(verb, "attachment")) {
        ws_buffer_t stored = {0};
        ws_result_t r = ws_attachment(parse_id(first, conn), &stored);
        if (r != WS_OK) {
            reply(conn, "%s", result_text(r));
        } else if (stored.len == 0) {
            reply(conn, "attachment (none)");
        } else {
            reply(conn, "attachment %s", (const char *)stored.data);
        }
        free(stored.data);
    } else if (!strcmp(verb, "config")) {
        char *value = ws_config_get(rest);
        reply(conn, "config %s", value ? value : "(none)");
        free(value);
    } else if (!strcmp(verb, "log")) {
        ws_log_level_t level = !strcmp(first, "error")     ? WS_LOG_ERROR
                               : !strcmp(first, "verbose") ? WS_LOG_VERBOSE
                               : !strcmp(first, "debug")   ? WS_LOG_DEBUG
                                                           : WS_LOG_INFO;
        ws_log(level, "%s", tail);
        reply(conn, "logged");
    } else if (!strcmp(verb, "subscribe")) {
        ws_subscribe(conn, rest);
        reply(conn, "subscribed %s", rest);
    } else if (!strcmp(verb, "unsubscribe")) {
        ws_unsubscribe(conn, rest);
        reply(conn, "unsubscribed %s", rest);
    } else if (!strcmp(verb, "count")) {
        reply(conn, "count %llu", (unsigned long long)ws_subscriber_count(rest));
    } else if (!strcmp(verb, "publish")) {
        ws_publish_all(first, WS_TEXT, tail, strlen(tail));
    } else if (!strcmp(verb, "publish-others")) {
        ws_publish(first, WS_TEXT, tail, strlen(tail), conn);
    } else if (!strcmp(verb, "send-to")) {
        ws_send_text(parse_id(first, 0), tail);
    } else if (!strcmp(verb, "direct-send-to")) {
        reply(conn, "%s", result_text(ws_host_send(parse_id(first, 0), WS_TEXT, tail, strlen(tail))));
    } else if (!strcmp(verb, "close-to")) {
        ws_disconnect(parse_id(first, 0), 1000, "");
    } else if (!strcmp(verb, "direct-close-to")) {
        reply(conn, "%s", result_text(ws_host_disconnect(parse_id(first, 0), 1000, "")));
    } else if (!strcmp(verb, "bad-text")) {
        ws_send(conn, WS_TEXT, "\xff\xfe", 2);
    } else if (!strcmp(verb, "flood")) {
        flood(conn);
    } else {
        reply(conn, "unknown command \"%s\"", verb);
    }
}

static void on_open_request(const ws_open_request_t *request, ws_open_response_t *response) {
    const char *query = strchr(request->request_uri, '?');
    if (query && !strncmp(query + 1, "reject=", 7)) {
        int status = atoi(query + 8);
        if (status > 0) {
            response->status = (uint16_t)status;
            ws_open_response_add_header(response, "X-Probe", "rejected");
            return;
        }
    }
    ws_open_response_add_header(response, "X-Probe", "accepted");
    for (size_t i = 0; i < request->subprotocol_count; i++) {
        if (!strcmp(request->subprotocols[i], "probe.v1")) {
            response->subprotocol = "probe.v1";
        }
    }
}

static void on_connected(ws_conn_t conn) {
    reply(conn, "event connected %llu", (unsigned long long)conn);
}

static void on_data_in(const ws_data_in_t *chunk) {
    ws_conn_t conn = chunk->connection;
    char *text = malloc(chunk->len + 1);
    memcpy(text, chunk->data, chunk->len);
    text[chunk->len] = '\0';
    bool line_mode = false;
    ws_connection_info_t i;
    if (ws_connection_info(conn, &i) == WS_OK) {
        line_mode = i.line_mode;
        ws_connection_info_free(&i);
    }
    if (line_mode || chunk->eol) {
        reply(conn, "line eol=%s eom=%s format=%d %s", chunk->eol ? "true" : "false",
              chunk->eom ? "true" : "false", (int)chunk->format, text);
        if (!strcmp(text, "line-mode off")) {
            command(conn, text);
        }
    } else {
        command(conn, text);
    }
    free(text);
}

static void on_ping(ws_conn_t conn, const uint8_t *payload, size_t len, bool response) {
    reply(conn, "event ping response=%s payload=%.*s", response ? "true" : "false", (int)len,
          (const char *)payload);
}

static void on_ready_to_send(ws_conn_t conn) {
    reply(conn, "event ready-to-send");
}

static void on_error(ws_conn_t conn, uint32_t code, const char *description) {
    ws_connection_info_t i;
    ws_conn_t to = last;
    if (ws_connection_info(conn, &i) == WS_OK) {
        to = conn;
        ws_connection_info_free(&i);
    }
    reply(to, "event error code=%u", code);
}

static void on_disconnected(ws_conn_t conn, uint16_t code, const char *reason) {
    char text[256];
    snprintf(text, sizeof text, "event disconnected %llu %u %s", (unsigned long long)conn, code,
             reason);
    ws_publish_all("watch", WS_TEXT, text, strlen(text));
}

WS_PLUGIN(.open_request = on_open_request, .connected = on_connected, .data_in = on_data_in,
          .ping = on_ping, .disconnected = on_disconnected, .ready_to_send = on_ready_to_send,
          .error = on_error);
