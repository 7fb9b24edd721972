//! Test plugin for the end-to-end tests: a client drives every host
//! function with text commands and learns of every event as a text message.
//!
//! Commands (one text message each; the reply goes to the sender):
//! - `echo TEXT`: batched send of TEXT back
//! - `ping PAYLOAD` / `direct-ping PAYLOAD`: ping via a command / the import
//! - `close CODE REASON` / `direct-close CODE REASON`
//! - `line-mode on|off`: then each line arrives as `line eol=.. eom=.. TEXT`
//! - `pause`, `resume ID`: pause this connection, resume any of ours
//! - `info [ID]`: the connection's WSConnection fields (TLS last:
//!   `tls=none` or `tls=VERSION SUITE sni=NAME client=SUBJECT`)
//! - `connections`: our connection ids
//! - `attach TEXT`: stores TEXT as this connection's attachment (`ok`)
//! - `attachment [ID]`: `attachment TEXT`, or `attachment (none)`
//! - `config KEY`: a granted configuration value
//! - `log LEVEL TEXT`: writes to the server log
//! - `print TEXT`: writes TEXT to WASI stdout and stderr (`printed`)
//! - `subscribe TOPIC`, `unsubscribe TOPIC`, `publish TOPIC TEXT`,
//!   `publish-others TOPIC TEXT`, `count TOPIC` (replies `count N`: the
//!   topic's subscribers, on every node with a cluster), `watch TOPIC`
//!   (then `event presence TOPIC joined|left CONNECTION|- COUNT SUBSCRIBERS`
//!   comes to this connection)
//! - `send-to ID TEXT` / `direct-send-to ID TEXT`: address another id
//! - `close-to ID` / `direct-close-to ID`: close another id with 1000
//! - `bad-text`: a text send that is not UTF-8
//!
//! Events are reported to the connection concerned (`event connected ID`,
//! `event ping response=.. payload=..`, `event ready-to-send`,
//! `event error code=..`, to the last commanding connection when the error
//! names an id that is not ours); `event disconnected ID CODE REASON` goes to topic
//! `watch`. Open requests are accepted, except `?reject=STATUS`; offered
//! subprotocol `probe.v1` is chosen.

use wsserver_sdk::{
    ConnectionId, Context, DataFormat, DataIn, DisconnectInfo, ErrorInfo, HostError, LogLevel,
    MessageFormat, OpenRequest, OpenResponse, PingIn, Plugin, PresenceChange, host,
};

#[derive(Default)]
struct Probe {
    /// The connection that sent the latest command: errors about ids that
    /// are not ours are reported to it.
    last: ConnectionId,
    /// The connection that last asked to watch a topic: presence events
    /// are reported to it.
    watcher: ConnectionId,
}

fn reply(ctx: &mut Context, conn: ConnectionId, text: impl Into<String>) {
    ctx.send_text(conn, text);
}

fn result_text<T>(r: Result<T, HostError>) -> String {
    match r {
        Ok(_) => "ok",
        Err(HostError::WouldBlock) => "err would-block",
        Err(HostError::InvalidConnection) => "err invalid-connection",
        Err(HostError::InvalidArgument) => "err invalid-argument",
    }
    .to_owned()
}

impl Probe {
    fn command(&mut self, ctx: &mut Context, conn: ConnectionId, text: &str) {
        self.last = conn;
        let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
        let (first, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        match verb {
            "echo" => reply(ctx, conn, rest),
            "print" => {
                println!("{rest}");
                eprintln!("{rest}");
                reply(ctx, conn, "printed");
            }
            "ping" => ctx.ping(conn, rest.as_bytes().to_vec()),
            "direct-ping" => reply(ctx, conn, result_text(host::ping(conn, rest.as_bytes()))),
            "close" => ctx.disconnect(conn, first.parse().unwrap_or(1000), tail),
            "direct-close" => {
                let r = host::disconnect(conn, first.parse().unwrap_or(1000), tail);
                if r.is_err() {
                    reply(ctx, conn, result_text(r));
                }
            }
            "line-mode" => {
                ctx.set_line_mode(conn, rest == "on");
                reply(ctx, conn, format!("line-mode {rest}"));
            }
            "pause" => ctx.pause_data(conn),
            "resume" => ctx.resume_data(first.parse().unwrap_or(conn)),
            "info" => {
                let id = first.parse().unwrap_or(conn);
                let text = match host::connection_info(id) {
                    Ok(i) => format!(
                        "info id={} uri={} host={} origin={} remote={}:{} local={} subprotocols={} accept_data={} line_mode={} connected={} tls={}",
                        i.id,
                        i.request_uri,
                        i.host,
                        i.origin.unwrap_or_default(),
                        i.remote_host,
                        i.remote_port,
                        i.local_address,
                        i.subprotocols.join(","),
                        i.accept_data,
                        i.line_mode,
                        i.connected,
                        i.tls.map_or_else(
                            || "none".to_owned(),
                            |t| format!(
                                "{} {} sni={} client={}",
                                t.protocol,
                                t.cipher_suite,
                                t.server_name.unwrap_or_default(),
                                t.client_certificate.map(|c| c.subject).unwrap_or_default()
                            )
                        )
                    ),
                    Err(e) => result_text::<()>(Err(e)),
                };
                reply(ctx, conn, text);
            }
            "connections" => {
                let mut ids = host::connections();
                ids.sort_unstable();
                let list: Vec<String> = ids.iter().map(u64::to_string).collect();
                reply(ctx, conn, format!("connections {}", list.join(",")));
            }
            "attach" => reply(
                ctx,
                conn,
                result_text(host::set_attachment(conn, rest.as_bytes())),
            ),
            "attachment" => {
                let text = match host::attachment(first.parse().unwrap_or(conn)) {
                    Ok(Some(bytes)) => format!("attachment {}", String::from_utf8_lossy(&bytes)),
                    Ok(None) => "attachment (none)".to_owned(),
                    Err(e) => result_text::<()>(Err(e)),
                };
                reply(ctx, conn, text);
            }
            "config" => {
                let value = host::config_get(rest).unwrap_or_else(|| "(none)".to_owned());
                reply(ctx, conn, format!("config {value}"));
            }
            "log" => {
                let level = match first {
                    "error" => LogLevel::Error,
                    "verbose" => LogLevel::Verbose,
                    "debug" => LogLevel::Debug,
                    _ => LogLevel::Info,
                };
                host::log(level, tail);
                reply(ctx, conn, "logged");
            }
            "subscribe" => {
                ctx.subscribe(conn, rest);
                reply(ctx, conn, format!("subscribed {rest}"));
            }
            "unsubscribe" => {
                ctx.unsubscribe(conn, rest);
                reply(ctx, conn, format!("unsubscribed {rest}"));
            }
            "watch" => {
                self.watcher = conn;
                let result = host::watch_topic(conn, rest, true);
                reply(ctx, conn, format!("watch {}", result_text(result)));
            }
            "count" => reply(ctx, conn, format!("count {}", host::subscriber_count(rest))),
            "publish" => ctx.publish(first, MessageFormat::Text, tail.as_bytes().to_vec(), None),
            "publish-others" => ctx.publish(
                first,
                MessageFormat::Text,
                tail.as_bytes().to_vec(),
                Some(conn),
            ),
            "send-to" => ctx.send_text(first.parse().unwrap_or(0), tail),
            "direct-send-to" => {
                let r = host::send(
                    first.parse().unwrap_or(0),
                    MessageFormat::Text,
                    tail.as_bytes(),
                );
                reply(ctx, conn, result_text(r));
            }
            "close-to" => ctx.disconnect(first.parse().unwrap_or(0), 1000, ""),
            "direct-close-to" => {
                let r = host::disconnect(first.parse().unwrap_or(0), 1000, "");
                reply(ctx, conn, result_text(r));
            }
            "bad-text" => ctx.send(conn, MessageFormat::Text, vec![0xFF, 0xFE]),
            other => reply(ctx, conn, format!("unknown command {other:?}")),
        }
    }
}

impl Plugin for Probe {
    fn open_request(&mut self, request: OpenRequest) -> OpenResponse {
        if let Some(status) = request
            .query()
            .and_then(|q| q.strip_prefix("reject="))
            .and_then(|s| s.parse().ok())
        {
            return OpenResponse::reject(status).with_header("X-Probe", "rejected");
        }
        let response = OpenResponse::accept().with_header("X-Probe", "accepted");
        if request.subprotocols.iter().any(|p| p == "probe.v1") {
            response.with_subprotocol("probe.v1")
        } else {
            response
        }
    }

    fn connected(&mut self, ctx: &mut Context, connection: ConnectionId) {
        reply(ctx, connection, format!("event connected {connection}"));
    }

    fn data_in(&mut self, ctx: &mut Context, data: DataIn) {
        let conn = data.connection;
        let text = String::from_utf8_lossy(&data.data).into_owned();
        let line_mode = host::connection_info(conn)
            .map(|i| i.line_mode)
            .unwrap_or(false);
        if line_mode || data.eol {
            let format = match data.format {
                DataFormat::Continuation => 0,
                DataFormat::Text => 1,
                DataFormat::Binary => 2,
            };
            reply(
                ctx,
                conn,
                format!(
                    "line eol={} eom={} format={format} {text}",
                    data.eol, data.eom
                ),
            );
            if text == "line-mode off" {
                self.command(ctx, conn, &text);
            }
            return;
        }
        self.command(ctx, conn, &text);
    }

    fn ping(&mut self, ctx: &mut Context, ping: PingIn) {
        let payload = String::from_utf8_lossy(&ping.payload).into_owned();
        reply(
            ctx,
            ping.connection,
            format!("event ping response={} payload={payload}", ping.response),
        );
    }

    fn ready_to_send(&mut self, ctx: &mut Context, connection: ConnectionId) {
        reply(ctx, connection, "event ready-to-send");
    }

    fn error(&mut self, ctx: &mut Context, error: ErrorInfo) {
        let to = match host::connection_info(error.connection) {
            Ok(_) => error.connection,
            Err(_) => self.last,
        };
        reply(ctx, to, format!("event error code={}", error.code));
    }

    fn presence(&mut self, ctx: &mut Context, change: PresenceChange) {
        let who = change
            .connection
            .map_or_else(|| "-".to_owned(), |id| id.to_string());
        let text = format!(
            "event presence {} {} {who} {} {}",
            change.topic,
            if change.joined { "joined" } else { "left" },
            change.count,
            change.subscribers
        );
        reply(ctx, self.watcher, text);
    }

    fn disconnected(&mut self, ctx: &mut Context, info: DisconnectInfo) {
        let text = format!(
            "event disconnected {} {} {}",
            info.connection, info.code, info.description
        );
        ctx.publish("watch", MessageFormat::Text, text.into_bytes(), None);
    }
}

wsserver_sdk::export_plugin!(Probe);
