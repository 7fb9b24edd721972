//! The admin HTTP API and /metrics through the real binary: every
//! endpoint, the token and the loopback rule, and the counters moving as
//! clients connect, send, are refused and meet would-block.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::Digest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::*;

/// A plugin built from `plugins/`, as a --plugin argument for `route`.
fn plugin(route: &str, name: &str) -> String {
    format!("{route}={}", plugin_file(name).display())
}

/// Starts the server with `--admin 127.0.0.1:0` and `args`; returns it
/// and the admin API's base URL.
async fn start_admin(args: &[&str]) -> (ServerProcess, String) {
    let mut all = vec!["--admin", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut server = ServerProcess::start(&all).await;
    let admin = server.admin_url().await;
    (server, admin)
}

async fn get(admin: &str, path: &str) -> HttpReply {
    http("GET", admin, path, None, None).await
}

/// Expects `status` and a JSON body.
fn expect_json(reply: &HttpReply, status: u16) -> Value {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    reply.json()
}

/// Expects `status` and `{"error": "..."}`; returns the message.
fn expect_error(reply: &HttpReply, status: u16) -> String {
    let body = expect_json(reply, status);
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
        .to_owned()
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// What `GET /plugins` reports as a component's version.
fn version(component: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(component)))
}

#[tokio::test]
async fn plugins_are_listed_with_their_routes_and_the_digest_of_their_component() {
    let file = config_file(
        "listen = \"127.0.0.1:0\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [[plugin]]\nfile = \"builtin:echo\"\n\
         [[plugin]]\nfile = \"builtin:chat\"\nroutes = [\"/chat\", \"example.com/chat\"]\n",
    );
    let mut server = ServerProcess::start_exact(&["--config", file.path().to_str().unwrap()]).await;
    let admin = server.admin_url().await;
    let body = expect_json(&get(&admin, "/plugins").await, 200);
    assert_eq!(
        body,
        json!({"plugins": [
            {
                "name": "echo (built-in)",
                "version": version(&embedded_plugin("echo")),
                "routes": ["/"],
            },
            {
                "name": "chat (built-in)",
                "version": version(&embedded_plugin("chat")),
                "routes": ["/chat", "example.com/chat"],
            },
        ]})
    );

    // The native echo runs no plugin.
    let (_native, admin) = start_admin(&["--native-echo"]).await;
    assert_eq!(
        expect_json(&get(&admin, "/plugins").await, 200),
        json!({"plugins": []})
    );
}

#[tokio::test]
async fn connections_are_listed_shown_and_dropped() {
    let (server, admin) = start_admin(&[]).await;
    assert_eq!(
        expect_json(&get(&admin, "/connections").await, 200),
        json!({"connections": []})
    );
    let mut a = ws_connect(&format!("{}/room/a?x=1", server.url)).await;
    assert_echo(&mut a, "hello").await;

    let list = expect_json(&get(&admin, "/connections").await, 200);
    let conns = list["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{list}");
    let c = &conns[0];
    let id = c["connection_id"].as_u64().unwrap();
    assert_eq!(c["request_uri"], "/room/a?x=1");
    assert_eq!(c["connected"], true);
    assert_eq!(c["accept_data"], true);
    assert_eq!(c["remote_host"], "127.0.0.1");
    assert_eq!(c["local_address"], "127.0.0.1");
    assert_eq!(c["bytes_sent"], 5, "the echo was the last send");
    assert_eq!(c["data_format"], 0);
    assert_eq!(c["host"], format!("127.0.0.1:{}", server.addr.port()));
    assert!(
        c["request_headers"]
            .as_str()
            .unwrap()
            .contains("Upgrade: websocket"),
        "{c}"
    );
    let one = expect_json(&get(&admin, &format!("/connections/{id}")).await, 200);
    assert_eq!(&one, c);

    // Dropped with the code and reason asked for.
    let reply = http(
        "DELETE",
        &admin,
        &format!("/connections/{id}"),
        None,
        Some(r#"{"code": 4000, "reason": "bye"}"#),
    )
    .await;
    assert_eq!(
        expect_json(&reply, 202),
        json!({"connection_id": id, "closing": true})
    );
    match tokio::time::timeout(WAIT, a.next())
        .await
        .expect("close in time")
    {
        Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
            assert_eq!((u16::from(code), reason.as_str()), (4000, "bye"))
        }
        other => panic!("expected close 4000, got {other:?}"),
    }
    drop(a);
    // The connection leaves the table once its closing handshake is over,
    // a moment after the client saw the close frame.
    let deadline = tokio::time::Instant::now() + WAIT;
    let gone = loop {
        let reply = get(&admin, &format!("/connections/{id}")).await;
        if reply.status != 200 || tokio::time::Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        expect_error(&gone, 404),
        format!("invalid ConnectionId {id}")
    );
    assert_eq!(gone.json()["code"], 126);

    // Without a body: DisconnectStatusCode and Description.
    let mut b = ws_connect(&server.url).await;
    assert_echo(&mut b, "x").await;
    let id =
        expect_json(&get(&admin, "/connections").await, 200)["connections"][0]["connection_id"]
            .as_u64()
            .unwrap();
    let reply = http("DELETE", &admin, &format!("/connections/{id}"), None, None).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    match tokio::time::timeout(WAIT, b.next())
        .await
        .expect("close in time")
    {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected close 1000, got {other:?}"),
    }

    // Mistakes.
    let reply = http("DELETE", &admin, "/connections/999", None, None).await;
    expect_error(&reply, 404);
    let reply = get(&admin, "/connections/abc").await;
    assert!(expect_error(&reply, 400).contains("\"abc\""));
    let reply = http(
        "DELETE",
        &admin,
        "/connections/1",
        None,
        Some(r#"{"code": "#),
    )
    .await;
    assert!(expect_error(&reply, 400).contains("invalid JSON"));
}

#[tokio::test]
async fn a_bad_close_code_is_refused_and_the_connection_stays_open() {
    let (server, admin) = start_admin(&[]).await;
    let mut a = ws_connect(&server.url).await;
    assert_echo(&mut a, "x").await;
    let id =
        expect_json(&get(&admin, "/connections").await, 200)["connections"][0]["connection_id"]
            .as_u64()
            .unwrap();
    let reply = http(
        "DELETE",
        &admin,
        &format!("/connections/{id}"),
        None,
        Some(r#"{"code": 1005}"#),
    )
    .await;
    assert!(expect_error(&reply, 400).contains("1005"), "{}", reply.body);
    let long = format!(r#"{{"reason": "{}"}}"#, "r".repeat(124));
    let reply = http(
        "DELETE",
        &admin,
        &format!("/connections/{id}"),
        None,
        Some(&long),
    )
    .await;
    assert!(expect_error(&reply, 400).contains("123"));
    assert_echo(&mut a, "still open").await;
}

#[tokio::test]
async fn listening_stops_and_starts_while_connections_stay() {
    let (server, admin) = start_admin(&[]).await;
    let mut a = ws_connect(&server.url).await;
    let state = expect_json(&get(&admin, "/listening").await, 200);
    assert_eq!(
        state,
        json!({"listening": true, "address": server.addr.to_string()})
    );

    let reply = http(
        "POST",
        &admin,
        "/listening",
        None,
        Some(r#"{"listening": false}"#),
    )
    .await;
    assert_eq!(
        expect_json(&reply, 200),
        json!({"listening": false, "address": null})
    );
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "still accepting after listening stopped"
    );
    assert_echo(&mut a, "existing connections stay").await;
    // Asking again for the state it is in is no error.
    let reply = http(
        "POST",
        &admin,
        "/listening",
        None,
        Some(r#"{"listening": false}"#),
    )
    .await;
    assert_eq!(reply.status, 200);

    let reply = http(
        "POST",
        &admin,
        "/listening",
        None,
        Some(r#"{"listening": true}"#),
    )
    .await;
    let state = expect_json(&reply, 200);
    assert_eq!(state["listening"], true);
    // LocalPort is 0, so the new listener has a port of its own.
    let address = state["address"].as_str().unwrap();
    let mut b = ws_connect(&format!("ws://{address}")).await;
    assert_echo(&mut b, "new listener").await;

    let reply = http(
        "POST",
        &admin,
        "/listening",
        None,
        Some(r#"{"listen": true}"#),
    )
    .await;
    assert!(expect_error(&reply, 400).contains("invalid JSON"));
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_1001_and_exits_0() {
    let (server, admin) = start_admin(&[]).await;
    let mut a = ws_connect(&server.url).await;
    assert_echo(&mut a, "before").await;
    let reply = http("POST", &admin, "/shutdown", None, None).await;
    assert_eq!(expect_json(&reply, 202), json!({"shutting_down": true}));
    match tokio::time::timeout(WAIT, a.next())
        .await
        .expect("close in time")
    {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
    drop(a);
    assert!(server.wait_exit().await.success());
}

#[tokio::test]
async fn config_reads_and_changes_settings_and_per_connection_keys() {
    let (server, admin) = start_admin(&[]).await;
    let reply = get(&admin, "/config/MaxConnections").await;
    assert_eq!(
        expect_json(&reply, 200),
        json!({"key": "MaxConnections", "value": "1000"})
    );
    let reply = http(
        "PUT",
        &admin,
        "/config/IdleTimeout",
        None,
        Some(r#"{"value": 30}"#),
    )
    .await;
    assert_eq!(
        expect_json(&reply, 200),
        json!({"key": "IdleTimeout", "value": "30"})
    );
    let reply = http(
        "PUT",
        &admin,
        "/config/BufferMessage",
        None,
        Some(r#"{"value": true}"#),
    )
    .await;
    assert_eq!(expect_json(&reply, 200)["value"], "True");
    assert_eq!(
        expect_json(&get(&admin, "/config/IdleTimeout").await, 200)["value"],
        "30"
    );

    // The errors of Config, with their codes.
    let reply = http(
        "PUT",
        &admin,
        "/config/MaxConnections",
        None,
        Some(r#"{"value": 5}"#),
    )
    .await;
    assert_eq!(
        expect_error(&reply, 409),
        "cannot change MaxConnections while listening"
    );
    assert_eq!(reply.json()["code"], 108);
    let reply = http(
        "PUT",
        &admin,
        "/config/MaxMessageSize",
        None,
        Some(r#"{"value": "lots"}"#),
    )
    .await;
    let message = expect_error(&reply, 400);
    assert!(
        message.contains("MaxMessageSize") && message.contains("\"lots\""),
        "{message}"
    );
    assert_eq!(reply.json()["code"], 10022);
    let reply = get(&admin, "/config/NoSuchSetting").await;
    assert!(expect_error(&reply, 404).contains("NoSuchSetting"));
    let reply = get(&admin, "/config/LogLevel=3").await;
    expect_error(&reply, 400);
    let reply = http("PUT", &admin, "/config/LogLevel", None, None).await;
    assert!(expect_error(&reply, 400).contains("invalid JSON"));

    // Per-connection keys, with the id in brackets (raw or escaped).
    let mut a = ws_connect(&server.url).await;
    assert_echo(&mut a, "x").await;
    let id =
        expect_json(&get(&admin, "/connections").await, 200)["connections"][0]["connection_id"]
            .as_u64()
            .unwrap();
    let key = format!("MaxLineLength[{id}]");
    let reply = get(&admin, &format!("/config/{key}")).await;
    assert_eq!(
        expect_json(&reply, 200),
        json!({"key": key, "value": "2048"})
    );
    let escaped = format!("/config/MaxLineLength%5B{id}%5D");
    let reply = http("PUT", &admin, &escaped, None, Some(r#"{"value": 80}"#)).await;
    assert_eq!(expect_json(&reply, 200), json!({"key": key, "value": "80"}));
    let reply = get(&admin, "/config/MaxLineLength[99999]").await;
    assert_eq!(expect_error(&reply, 404), "invalid ConnectionId 99999");
}

#[tokio::test]
async fn unknown_endpoints_and_methods_are_named_in_the_error() {
    let (_server, admin) = start_admin(&[]).await;
    let reply = get(&admin, "/nope").await;
    assert_eq!(expect_error(&reply, 404), "no such endpoint: GET /nope");
    let reply = http("DELETE", &admin, "/plugins", None, None).await;
    assert!(expect_error(&reply, 405).contains("GET"));
    assert_eq!(reply.header("allow"), Some("GET"));
    let reply = get(&admin, "/shutdown").await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));
}

#[tokio::test]
async fn a_configured_token_is_required_on_every_endpoint() {
    // From the environment, so it stays out of `ps`.
    let mut server = ServerProcess::start_with_env(
        &["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
        &[("WSSERVER_ADMIN_TOKEN", "s3cret")],
    )
    .await;
    let admin = server.admin_url().await;
    for path in ["/plugins", "/connections", "/metrics", "/config/LogLevel"] {
        let reply = get(&admin, path).await;
        assert!(expect_error(&reply, 401).contains("Bearer"), "{path}");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        let reply = http("GET", &admin, path, Some("wrong"), None).await;
        assert_eq!(reply.status, 401, "{path}");
        let reply = http("GET", &admin, path, Some("s3cret"), None).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
    // Refused requests change nothing.
    let reply = http("POST", &admin, "/shutdown", None, None).await;
    assert_eq!(reply.status, 401);
    let mut ws = ws_connect(&server.url).await;
    assert_echo(&mut ws, "still serving").await;

    // From the TOML file.
    let file = config_file(
        "listen = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n",
    );
    let mut server = ServerProcess::start_exact(&["--config", file.path().to_str().unwrap()]).await;
    let admin = server.admin_url().await;
    assert_eq!(get(&admin, "/plugins").await.status, 401);
    assert_eq!(
        http("GET", &admin, "/plugins", Some("t0k"), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn without_a_token_only_a_loopback_admin_address_is_allowed() {
    for address in ["0.0.0.0:0", "[::]:0"] {
        let out = run_to_exit(&["--listen", "127.0.0.1:0", "--admin", address]).await;
        assert_eq!(out.status.code(), Some(2), "{address}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("not a loopback address") && err.contains("--admin-token"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "nothing listened: {:?}", out.stdout);
    }
    let out = run_to_exit(&["--admin", "127.0.0.1:0", "--admin-token", ""]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token is empty"));

    // With a token any address will do.
    let mut server = ServerProcess::start(&["--admin", "0.0.0.0:0", "--admin-token", "t"]).await;
    let admin = server.admin_url().await;
    let port = admin.rsplit(':').next().unwrap();
    assert!(admin.starts_with("http://0.0.0.0:"), "{admin}");
    let local = format!("http://127.0.0.1:{port}");
    assert_eq!(
        http("GET", &local, "/plugins", Some("t"), None)
            .await
            .status,
        200
    );
}

/// Samples of a Prometheus text exposition, checked line by line: every
/// line is a HELP, a TYPE or a sample; every sample belongs to the family
/// its TYPE line declared just before; histogram buckets rise to +Inf,
/// which equals the count.
#[derive(Debug)]
struct Exposition {
    /// `name{labels}` (as written) → value.
    samples: BTreeMap<String, f64>,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut samples: BTreeMap<String, f64> = BTreeMap::new();
        let mut family: Option<(String, String)> = None;
        let mut helped = std::collections::HashSet::new();
        let mut typed = std::collections::HashSet::new();
        let mut last_bucket: Option<(String, f64)> = None;
        assert!(text.ends_with('\n'), "the exposition ends with a newline");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP name text");
                assert!(is_metric_name(name), "{line}");
                assert!(!help.is_empty() && !help.contains('\n'), "{line}");
                assert!(helped.insert(name.to_owned()), "second HELP: {line}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name type");
                assert!(is_metric_name(name), "{line}");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{line}"
                );
                assert!(typed.insert(name.to_owned()), "second TYPE: {line}");
                family = Some((name.to_owned(), kind.to_owned()));
            } else {
                assert!(
                    !line.starts_with('#') && !line.is_empty(),
                    "stray line {line:?}"
                );
                let (series, value) = line.rsplit_once(' ').expect("sample: series value");
                let value: f64 = match value {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    v => v.parse().unwrap_or_else(|_| panic!("value in {line}")),
                };
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => {
                        let labels = rest.strip_suffix('}').expect("labels end with }");
                        (name, parse_labels(labels))
                    }
                    None => (series, Vec::new()),
                };
                assert!(is_metric_name(name), "{line}");
                let (family_name, kind) = family.as_ref().expect("a TYPE line before samples");
                let suffix = name.strip_prefix(family_name.as_str());
                match kind.as_str() {
                    "histogram" => {
                        let suffix =
                            suffix.unwrap_or_else(|| panic!("{line} not in {family_name}"));
                        assert!(["_bucket", "_sum", "_count"].contains(&suffix), "{line}");
                        let others: Vec<_> = labels.iter().filter(|(k, _)| k != "le").collect();
                        let key = format!("{others:?}");
                        if suffix == "_bucket" {
                            let le = labels.iter().find(|(k, _)| k == "le").expect("le label");
                            assert!(le.1 == "+Inf" || le.1.parse::<f64>().is_ok(), "{line}");
                            if let Some((k, previous)) = &last_bucket
                                && *k == key
                            {
                                assert!(value >= *previous, "buckets must not fall: {line}");
                            }
                            last_bucket = Some((key, value));
                        } else if suffix == "_count" {
                            let inf = samples
                                .iter()
                                .find(|(s, _)| {
                                    s.starts_with(&format!("{family_name}_bucket{{"))
                                        && s.ends_with("le=\"+Inf\"}")
                                        && others
                                            .iter()
                                            .all(|(k, v)| s.contains(&format!("{k}=\"{v}\"")))
                                })
                                .map(|(_, v)| *v);
                            assert_eq!(inf, Some(value), "+Inf bucket equals {line}");
                        }
                    }
                    _ => assert_eq!(suffix, Some(""), "{line} not in {family_name}"),
                }
                assert!(
                    samples.insert(series.to_owned(), value).is_none(),
                    "duplicate series {series}"
                );
            }
        }
        Self { samples }
    }

    fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in {:?}", self.samples.keys()))
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `k="v",k2="v2"` with `\\`, `\"` and `\n` escapes in values.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label=\"value\"");
        assert!(
            is_metric_name(key) && !key.contains(':'),
            "label name {key:?}"
        );
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("escape") {
                    (_, 'n') => value.push('\n'),
                    (_, c @ ('\\' | '"')) => value.push(c),
                    (_, c) => panic!("bad escape \\{c} in {text}"),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels
}

/// Scrapes `/metrics`, checking the content type and the format.
async fn scrape(admin: &str) -> Exposition {
    let reply = get(admin, "/metrics").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    Exposition::parse(&reply.body)
}

/// Scrapes until `series` reaches `want` (counters move as tasks finish).
async fn wait_for(admin: &str, series: &str, want: f64) -> Exposition {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = scrape(admin).await;
        if m.get(series) == want {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} stayed at {} (want {want})",
            m.get(series)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const ECHO: &str = "plugin=\"echo (built-in)\"";

#[tokio::test]
async fn metrics_follow_a_client_that_connects_sends_and_leaves() {
    let (server, admin) = start_admin(&["--plugin", "/echo=builtin:echo"]).await;
    let m = scrape(&admin).await;
    assert_eq!(m.get("wsserver_connections_open"), 0.0);
    assert_eq!(m.get("wsserver_connections_accepted_total"), 0.0);
    assert_eq!(
        m.get(&format!("wsserver_plugin_events_total{{{ECHO}}}")),
        0.0
    );

    let mut ws = ws_connect(&format!("{}/echo", server.url)).await;
    for _ in 0..3 {
        assert_echo(&mut ws, "hello").await;
    }
    // A write is counted just after it leaves: the client can see the echo
    // a moment before the counter moves.
    wait_for(&admin, "wsserver_sent_bytes_total", 21.0).await;
    let m = wait_for(
        &admin,
        &format!("wsserver_plugin_events_total{{{ECHO}}}"),
        5.0,
    )
    .await;
    assert_eq!(m.get("wsserver_connections_open"), 1.0);
    assert_eq!(m.get("wsserver_connections_accepted_total"), 1.0);
    assert_eq!(m.get("wsserver_messages_received_total"), 3.0);
    assert_eq!(m.get("wsserver_messages_sent_total"), 3.0);
    // Masked client frames: 2 header + 4 mask + 5 bytes; ours 2 + 5.
    assert_eq!(m.get("wsserver_received_bytes_total"), 33.0);
    assert_eq!(m.get("wsserver_sent_bytes_total"), 21.0);
    // The open request, connected, and three data-in.
    assert_eq!(
        m.get(&format!("wsserver_plugin_events_total{{{ECHO}}}")),
        5.0
    );
    let calls = m.get(&format!("wsserver_plugin_calls_total{{{ECHO}}}"));
    assert!((2.0..=5.0).contains(&calls), "{calls} calls");
    assert_eq!(
        m.get(&format!(
            "wsserver_plugin_call_duration_seconds_count{{{ECHO}}}"
        )),
        calls
    );
    assert!(
        m.get(&format!(
            "wsserver_plugin_call_duration_seconds_sum{{{ECHO}}}"
        )) > 0.0
    );
    assert_eq!(
        m.get(&format!("wsserver_plugin_traps_total{{{ECHO}}}")),
        0.0
    );
    assert_eq!(
        m.get(&format!("wsserver_plugin_queued_bytes{{{ECHO}}}")),
        0.0
    );

    // Refused by the handler (no route) and for a bad request.
    let mut c = RawClient::tcp(server.addr).await;
    c.send(
        UPGRADE_REQUEST
            .replace("GET / ", "GET /nowhere ")
            .as_bytes(),
    )
    .await;
    assert!(c.read_http_head().await.starts_with("HTTP/1.1 404"));
    let mut c = RawClient::tcp(server.addr).await;
    c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(c.read_http_head().await.starts_with("HTTP/1.1 4"));
    let m = scrape(&admin).await;
    assert_eq!(
        m.get("wsserver_connections_refused_total{reason=\"handler\"}"),
        1.0
    );
    assert_eq!(
        m.get("wsserver_connections_refused_total{reason=\"handshake_error\"}"),
        1.0
    );
    assert_eq!(
        m.get("wsserver_connections_refused_total{reason=\"max_connections\"}"),
        0.0
    );
    assert_eq!(m.get("wsserver_connections_accepted_total"), 1.0);

    ws.close(None).await.unwrap();
    wait_for(&admin, "wsserver_connections_open", 0.0).await;
}

#[tokio::test]
async fn refusals_are_counted_by_reason() {
    let (server, admin) = start_admin(&["--set", "MaxConnections=1"]).await;
    let mut a = ws_connect(&server.url).await;
    assert_echo(&mut a, "x").await;
    let mut b = RawClient::tcp(server.addr).await;
    b.send(UPGRADE_REQUEST.as_bytes()).await;
    assert!(b.read_http_head().await.starts_with("HTTP/1.1 503"));
    let m = scrape(&admin).await;
    assert_eq!(
        m.get("wsserver_connections_refused_total{reason=\"max_connections\"}"),
        1.0
    );
    assert_eq!(m.get("wsserver_connections_open"), 1.0);

    let (server, admin) = start_admin(&["--set", "BlockedClients=127.0.0.1"]).await;
    let mut c = RawClient::tcp(server.addr).await;
    c.send(UPGRADE_REQUEST.as_bytes()).await;
    assert!(c.closed_within(WAIT).await);
    let m = scrape(&admin).await;
    assert_eq!(
        m.get("wsserver_connections_refused_total{reason=\"client_filter\"}"),
        1.0
    );
    assert_eq!(m.get("wsserver_connections_accepted_total"), 0.0);
}

#[tokio::test]
async fn traps_deadline_hits_and_would_block_are_counted() {
    let trap = plugin("/trap", "trap");
    let looping = plugin("/loop", "loop");
    let flood = plugin("/flood", "flood");
    let (server, admin) =
        start_admin(&["--plugin", &trap, "--plugin", &looping, "--plugin", &flood]).await;
    for route in ["trap", "loop"] {
        let mut ws = ws_connect(&format!("{}/{route}", server.url)).await;
        ws.send(Message::text("boom")).await.unwrap();
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Error),
            other => panic!("{route}: expected close 1011, got {other:?}"),
        }
    }
    let m = scrape(&admin).await;
    assert_eq!(m.get("wsserver_plugin_traps_total{plugin=\"trap\"}"), 1.0);
    assert_eq!(
        m.get("wsserver_plugin_deadline_hits_total{plugin=\"trap\"}"),
        0.0
    );
    assert_eq!(
        m.get("wsserver_plugin_deadline_hits_total{plugin=\"loop\"}"),
        1.0
    );
    assert_eq!(m.get("wsserver_plugin_traps_total{plugin=\"loop\"}"), 0.0);
    // The looping call ran until its deadline (200 ms by default).
    assert!(
        m.get("wsserver_plugin_call_duration_seconds_sum{plugin=\"loop\"}") >= 0.15,
        "{m:?}"
    );
    assert_eq!(m.get("wsserver_send_would_block_total"), 0.0);

    // A client that does not read what the flood plugin sends.
    let mut flooded = ws_connect(&format!("{}/flood", server.url)).await;
    flooded.send(Message::text("go")).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while scrape(&admin).await.get("wsserver_send_would_block_total") == 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no would-block counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_heavy_tenant_beside_a_quick_one_is_counted_in_the_background() {
    let looping = plugin("/loop", "loop");
    let (server, admin) =
        start_admin(&["--plugin", &looping, "--plugin", "/echo=builtin:echo"]).await;
    let mut calm = ws_connect(&format!("{}/echo", server.url)).await;
    assert_echo(&mut calm, "warm").await;
    // Each message to the looping plugin spins until its CPU deadline
    // (200 ms) and ends in 1011; the echo answers meanwhile, so the
    // looping tenant's long turns ran beside quick ones: its next turn
    // (the next connection's open request) runs in the background.
    for _ in 0..2 {
        let mut heavy = ws_connect(&format!("{}/loop", server.url)).await;
        heavy.send(Message::text("boom")).await.unwrap();
        let closed = async {
            match tokio::time::timeout(WAIT, heavy.next()).await {
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    assert_eq!(frame.code, CloseCode::Error)
                }
                other => panic!("expected close 1011, got {other:?}"),
            }
        };
        let round_trips = async {
            for _ in 0..20 {
                assert_echo(&mut calm, "quick").await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::join!(closed, round_trips);
    }
    let m = scrape(&admin).await;
    assert!(
        m.get("wsserver_plugin_background_turns_total{plugin=\"loop\"}") >= 1.0,
        "{m:?}"
    );
    assert_eq!(
        m.get(&format!("wsserver_plugin_background_turns_total{{{ECHO}}}")),
        0.0
    );
    // The built-in echo runs its turns on the server's threads; a
    // component from a file stays on the executors unless told otherwise.
    assert!(
        m.get(&format!("wsserver_plugin_inline_turns_total{{{ECHO}}}")) >= 20.0,
        "{m:?}"
    );
    assert_eq!(
        m.get("wsserver_plugin_inline_turns_total{plugin=\"loop\"}"),
        0.0
    );
    let tenant = expect_json(&get(&admin, "/tenants/loop").await, 200);
    assert!(
        tenant["accounting"]["background_turns"].as_u64().unwrap() >= 1,
        "{tenant}"
    );
}

#[tokio::test]
async fn the_host_answers_open_requests_for_a_plugin_that_accepts_every_one() {
    let auth = plugin("/auth", "auth");
    let (server, admin) = start_admin(&["--plugin", "/echo=builtin:echo", "--plugin", &auth]).await;
    let connections = 6;
    for i in 0..connections {
        let mut ws = ws_connect(&format!("{}/echo", server.url)).await;
        ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Pong(payload)))) => assert_eq!(&payload[..], b"p"),
            other => panic!("expected the pong, got {other:?}"),
        }
        assert_echo(&mut ws, &format!("client {i}")).await;
        ws.close(None).await.unwrap();
    }
    let m = wait_for(&admin, "wsserver_connections_open", 0.0).await;
    // The echo keeps the SDK's default open request, connected and ping:
    // each of its instances is asked once and says so; the host answers
    // the requests and leaves those events out after that. Each client's
    // message and disconnected still reach it.
    let echo = expect_json(&get(&admin, "/tenants/echo%20(built-in)").await, 200);
    let instances = echo["instances"].as_u64().unwrap();
    assert!(instances < connections, "{echo}");
    let by_host = echo["accounting"]["opens_accepted_by_host"].as_u64();
    assert!(
        by_host >= Some(connections - instances) && by_host < Some(connections),
        "{echo}"
    );
    assert_eq!(
        m.get(&format!(
            "wsserver_plugin_opens_accepted_by_host_total{{{ECHO}}}"
        )),
        by_host.unwrap() as f64
    );
    let events = m.get(&format!("wsserver_plugin_events_total{{{ECHO}}}"));
    let (all, at_most) = (5 * connections, 2 * connections + 3 * instances);
    assert!(
        events >= (2 * connections) as f64 && events <= at_most as f64,
        "{events} of {all} events delivered"
    );

    // The auth plugin decides itself: it is asked every time, and still
    // refuses a client without its token after admitting others.
    let token = format!("{}/auth?token=wsserver-dev-token", server.url);
    for i in 0..3 {
        let mut ws = ws_connect(&token).await;
        assert_echo(&mut ws, &format!("authorized {i}")).await;
    }
    let mut c = RawClient::tcp(server.addr).await;
    c.send(UPGRADE_REQUEST.replace("GET / ", "GET /auth ").as_bytes())
        .await;
    let refused = c.read_http_response().await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let m = scrape(&admin).await;
    assert_eq!(
        m.get("wsserver_plugin_opens_accepted_by_host_total{plugin=\"auth\"}"),
        0.0
    );
}
