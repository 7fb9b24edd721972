//! The plugin runtime through the real binary: every event and host
//! function (via the `probe` test plugin), the example plugins (echo, chat,
//! auth), routing, and hostile plugins stopped without hurting others.

use std::io::Write;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::common::*;

/// A plugin built from `plugins/`: a Rust one by the build, a C one
/// (`NAME-c`) by the test.
fn plugin_path(name: &str) -> std::path::PathBuf {
    if name.ends_with("-c") {
        return crate::c_plugins::c_plugin(name);
    }
    plugin_file(name)
}

/// A plugin from `plugins/`, as a --plugin argument for `route`.
fn plugin(route: &str, name: &str) -> String {
    format!("{route}={}", plugin_path(name).display())
}

/// Runs the probe tests against the probe plugin of each SDK: the Rust
/// `probe` and the C `probe-c` speak the same protocol, so each event and
/// host function is checked through both SDKs.
macro_rules! probe_tests {
    ($($test:ident),* $(,)?) => {
        mod rust_probe {
            $(#[tokio::test]
            async fn $test() {
                super::$test("probe").await
            })*
        }
        mod c_probe {
            $(#[tokio::test]
            async fn $test() {
                super::$test("probe-c").await
            })*
        }
    };
}

probe_tests!(
    open_request_answers_reach_the_client,
    data_ping_and_line_mode_events,
    disconnect_and_disconnected_events,
    pause_and_resume_hold_data_without_losing_it,
    connections_config_and_log,
    topics_fan_out_inside_one_plugin,
    a_plugin_can_only_address_its_own_connections,
);

async fn start_with(plugins: &[(&str, &str)]) -> ServerProcess {
    let flags: Vec<String> = plugins.iter().map(|(r, n)| plugin(r, n)).collect();
    let mut args: Vec<&str> = Vec::new();
    for f in &flags {
        args.extend(["--plugin", f]);
    }
    ServerProcess::start(&args).await
}

async fn say(ws: &mut Ws, command: &str) {
    ws.send(Message::text(command)).await.expect("send");
}

async fn open_request_answers_reach_the_client(probe: &str) {
    let server = start_with(&[("/", probe)]).await;
    // Once a first client is served, the component has compiled (the
    // request below cannot be retried on a 503 as ws_connect does).
    drop(ws_connect(&server.url).await);
    let mut request = format!("{}/room?x=1", server.url)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "other, probe.v1".parse().unwrap());
    request
        .headers_mut()
        .insert("Origin", "http://origin.test".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "probe.v1");
    assert_eq!(response.headers()["x-probe"], "accepted");
    let hello = text(&mut ws).await;
    assert!(hello.starts_with("event connected "), "{hello}");

    // The open request's fields, read back through connection-info.
    say(&mut ws, "info").await;
    let info = text(&mut ws).await;
    for part in [
        "uri=/room?x=1",
        &format!("host={}", server.addr),
        "origin=http://origin.test",
        "remote=127.0.0.1:",
        "local=127.0.0.1",
        "subprotocols=other,probe.v1",
        "accept_data=true",
        "connected=true",
    ] {
        assert!(info.contains(part), "{part} missing from {info}");
    }

    let mut c = RawClient::tcp(server.addr).await;
    c.send(
        UPGRADE_REQUEST
            .replace("GET /", "GET /?reject=403")
            .as_bytes(),
    )
    .await;
    let response = c.read_http_response().await;
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(response.contains("X-Probe: rejected"), "{response}");
}

async fn data_ping_and_line_mode_events(probe: &str) {
    let server = start_with(&[("/", probe)]).await;
    let (mut ws, _) = probe_client(&server.url).await;
    say(&mut ws, "echo héllo").await;
    assert_eq!(text(&mut ws).await, "héllo");

    // A client ping reaches the plugin (the host already answered it).
    ws.send(Message::Ping(Bytes::from_static(b"from-client")))
        .await
        .unwrap();
    assert_eq!(
        text(&mut ws).await,
        "event ping response=false payload=from-client"
    );
    // The plugin's pings, batched and direct: the pong comes back as an event.
    say(&mut ws, "ping batched").await;
    assert_eq!(
        text(&mut ws).await,
        "event ping response=true payload=batched"
    );
    say(&mut ws, "direct-ping direct").await;
    assert_eq!(text(&mut ws).await, "ok");
    assert_eq!(
        text(&mut ws).await,
        "event ping response=true payload=direct"
    );

    say(&mut ws, "line-mode on").await;
    assert_eq!(text(&mut ws).await, "line-mode on");
    say(&mut ws, "first\nsecond\npartial").await;
    assert_eq!(
        text(&mut ws).await,
        "line eol=true eom=false format=0 first"
    );
    assert_eq!(
        text(&mut ws).await,
        "line eol=true eom=false format=0 second"
    );
    assert_eq!(
        text(&mut ws).await,
        "line eol=false eom=true format=0 partial"
    );
    say(&mut ws, "line-mode off").await;
    assert_eq!(
        text(&mut ws).await,
        "line eol=false eom=true format=0 line-mode off"
    );
    assert_eq!(text(&mut ws).await, "line-mode off");
    say(&mut ws, "echo whole again").await;
    assert_eq!(text(&mut ws).await, "whole again");
}

async fn disconnect_and_disconnected_events(probe: &str) {
    let server = start_with(&[("/", probe)]).await;
    let (mut watcher, _) = probe_client(&server.url).await;
    say(&mut watcher, "subscribe watch").await;
    assert_eq!(text(&mut watcher).await, "subscribed watch");

    for command in ["close", "direct-close"] {
        let (mut ws, id) = probe_client(&server.url).await;
        say(&mut ws, &format!("{command} 4001 bye")).await;
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(
                    (frame.code, frame.reason.as_str()),
                    (CloseCode::from(4001), "bye")
                );
            }
            other => panic!("{command}: expected close 4001, got {other:?}"),
        }
        drop(ws);
        assert_eq!(
            text(&mut watcher).await,
            format!("event disconnected {id} 4001 bye")
        );
    }

    // A client that just drops its TCP connection: 1006.
    let (ws, id) = probe_client(&server.url).await;
    drop(ws);
    assert_eq!(
        text(&mut watcher).await,
        format!("event disconnected {id} 1006 connection closed without a close frame")
    );
}

async fn pause_and_resume_hold_data_without_losing_it(probe: &str) {
    let server = start_with(&[("/", probe)]).await;
    let (mut a, a_id) = probe_client(&server.url).await;
    let (mut b, _) = probe_client(&server.url).await;
    say(&mut a, "pause").await;
    // The pause takes effect when the plugin handles it; B watches for it
    // (data A sent before that moment is delivered).
    let mut paused = false;
    for _ in 0..100 {
        say(&mut b, &format!("info {a_id}")).await;
        if text(&mut b).await.contains("accept_data=false") {
            paused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(paused, "A never showed AcceptData false");
    say(&mut a, "echo held back").await;
    // Nothing for A while paused.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), a.next())
            .await
            .is_err()
    );
    say(&mut b, &format!("resume {a_id}")).await;
    assert_eq!(text(&mut a).await, "held back");
}

async fn connections_config_and_log(probe: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wsserver.toml");
    let probe = plugin_path(probe);
    std::fs::File::create(&config)
        .unwrap()
        .write_all(format!("[[plugin]]\nfile = {:?}\nroute = \"/\"\n[plugin.config]\n\"probe.key\" = \"granted value\"\n", probe.display().to_string()).as_bytes())
        .unwrap();
    let server = ServerProcess::start(&["--config", config.to_str().unwrap()]).await;
    let (mut a, a_id) = probe_client(&server.url).await;
    let (_b, b_id) = probe_client(&server.url).await;
    say(&mut a, "connections").await;
    let mut ids = [a_id, b_id];
    ids.sort_unstable();
    assert_eq!(
        text(&mut a).await,
        format!("connections {},{}", ids[0], ids[1])
    );
    say(&mut a, "config probe.key").await;
    assert_eq!(text(&mut a).await, "config granted value");
    say(&mut a, "config not.granted").await;
    assert_eq!(text(&mut a).await, "config (none)");
    say(&mut a, "log info probe-log-line-7731").await;
    assert_eq!(text(&mut a).await, "logged");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        server.stderr().contains("probe-log-line-7731"),
        "{}",
        server.stderr()
    );
}

async fn topics_fan_out_inside_one_plugin(probe: &str) {
    let server = start_with(&[("/", probe)]).await;
    let mut members = Vec::new();
    for _ in 0..3 {
        let (mut ws, id) = probe_client(&server.url).await;
        say(&mut ws, "subscribe news").await;
        assert_eq!(text(&mut ws).await, "subscribed news");
        members.push((ws, id));
    }
    say(&mut members[0].0, "count news").await;
    assert_eq!(text(&mut members[0].0).await, "count 3");
    say(&mut members[0].0, "publish news to all").await;
    for (ws, _) in &mut members {
        assert_eq!(text(ws).await, "to all");
    }
    say(&mut members[0].0, "publish-others news not to me").await;
    for (ws, _) in &mut members[1..] {
        assert_eq!(text(ws).await, "not to me");
    }
    say(&mut members[2].0, "unsubscribe news").await;
    assert_eq!(text(&mut members[2].0).await, "unsubscribed news");
    say(&mut members[2].0, "count news").await;
    assert_eq!(text(&mut members[2].0).await, "count 2");
    say(&mut members[1].0, "publish news fewer").await;
    assert_eq!(
        text(&mut members[0].0).await,
        "not to me".replace("not to me", "fewer")
    );
    assert_eq!(text(&mut members[1].0).await, "fewer");
    say(&mut members[0].0, "echo marker").await;
    assert_eq!(text(&mut members[0].0).await, "marker");
    say(&mut members[2].0, "echo nothing else came").await;
    assert_eq!(text(&mut members[2].0).await, "nothing else came");
}

async fn a_plugin_can_only_address_its_own_connections(probe: &str) {
    let server = start_with(&[("/probe", probe), ("/other", probe)]).await;
    let (mut mine, _) = probe_client(&format!("{}/probe", server.url)).await;
    let (mut theirs, their_id) = probe_client(&format!("{}/other", server.url)).await;
    say(&mut mine, &format!("send-to {their_id} intrusion")).await;
    assert_eq!(text(&mut mine).await, "event error code=126");
    say(&mut mine, &format!("direct-send-to {their_id} intrusion")).await;
    assert_eq!(text(&mut mine).await, "err invalid-connection");
    say(&mut mine, &format!("info {their_id}")).await;
    assert_eq!(text(&mut mine).await, "err invalid-connection");
    say(&mut theirs, "echo untouched").await;
    assert_eq!(text(&mut theirs).await, "untouched");
    say(&mut mine, "bad-text").await;
    assert_eq!(text(&mut mine).await, "event error code=10022");
}

#[tokio::test]
async fn routes_pick_the_plugin_by_path_and_host() {
    let probe = plugin("/", "probe");
    let echo = plugin("example.test/echo", "echo");
    let server = ServerProcess::start(&[
        "--plugin",
        &echo,
        "--plugin",
        &probe.replace("/=", "/probe="),
    ])
    .await;
    // Host route: only with that Host header.
    let mut c = RawClient::tcp(server.addr).await;
    c.send(
        UPGRADE_REQUEST
            .replace("GET / ", "GET /echo ")
            .replace("Host: 127.0.0.1", "Host: example.test")
            .as_bytes(),
    )
    .await;
    assert!(c.read_http_head().await.starts_with("HTTP/1.1 101"));
    c.send(&masked(0x81, b"via host route")).await;
    assert_eq!(c.read_frame().await.unwrap().payload, b"via host route");
    // Same path, other host: no route.
    let mut c = RawClient::tcp(server.addr).await;
    c.send(UPGRADE_REQUEST.replace("GET / ", "GET /echo ").as_bytes())
        .await;
    assert!(c.read_http_response().await.starts_with("HTTP/1.1 404"));
    // Path prefix on segment boundaries.
    let (_ws, _) = probe_client(&format!("{}/probe/deeper", server.url)).await;
    let mut c = RawClient::tcp(server.addr).await;
    c.send(
        UPGRADE_REQUEST
            .replace("GET / ", "GET /probely ")
            .as_bytes(),
    )
    .await;
    assert!(c.read_http_response().await.starts_with("HTTP/1.1 404"));
}

/// Of the routes that match, a host route wins over any path route, and
/// the longest path prefix over shorter ones, whatever their order.
#[tokio::test]
async fn the_most_specific_route_serves_a_request() {
    let server = ServerProcess::start(&[
        "--plugin",
        &plugin("example.test/", "auth"),
        "--plugin",
        &plugin("/", "echo"),
        "--plugin",
        &plugin("/private", "auth"),
    ])
    .await;
    let status = |path: &'static str, host: &'static str| {
        let addr = server.addr;
        async move {
            let mut c = RawClient::tcp(addr).await;
            let request = UPGRADE_REQUEST
                .replace("GET / ", &format!("GET {path} "))
                .replace("Host: 127.0.0.1", &format!("Host: {host}"));
            c.send(request.as_bytes()).await;
            let head = c.read_http_head().await;
            head.split(' ').nth(1).unwrap_or_default().to_owned()
        }
    };
    // The auth plugin refuses a request without its token with 401; the
    // echo accepts every request.
    for (path, host, expected) in [
        ("/x", "127.0.0.1", "101"),
        ("/private", "127.0.0.1", "401"),
        ("/private/a?q=1", "127.0.0.1", "401"),
        ("/privateer", "127.0.0.1", "101"),
        ("/x", "example.test", "401"),
        ("/private", "EXAMPLE.test:8080", "401"),
    ] {
        assert_eq!(status(path, host).await, expected, "{host}{path}");
    }
}

#[tokio::test]
async fn chat_broadcasts_to_the_other_members_of_a_room() {
    let server = start_with(&[("/rooms", "chat")]).await;
    let url = |room: &str| format!("{}/rooms/{room}", server.url);
    let mut lobby = Vec::new();
    for _ in 0..3 {
        lobby.push(ws_connect(&url("lobby")).await);
    }
    let mut elsewhere = ws_connect(&url("other")).await;
    // Connecting is asynchronous to the plugin: a message round trip
    // proves each member has joined before anyone speaks.
    for ws in lobby.iter_mut().chain([&mut elsewhere]) {
        ws.send(Message::Ping(Bytes::new())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    lobby[0].send(Message::text("hello room")).await.unwrap();
    for ws in &mut lobby[1..] {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if m.is_pong() {
            assert_eq!(text(ws).await, "hello room");
        } else {
            assert_eq!(m, Message::text("hello room"));
        }
    }
    lobby[2]
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    for i in [0, 1] {
        let got = loop {
            match tokio::time::timeout(WAIT, lobby[i].next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
            {
                Message::Pong(_) => continue,
                m => break m,
            }
        };
        assert_eq!(got, Message::binary(vec![1u8, 2, 3]), "member {i}");
    }
    // The other room and the sender heard nothing but pongs.
    for ws in [&mut elsewhere, &mut lobby[0]] {
        loop {
            match tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
                Err(_) => break,
                Ok(Some(Ok(Message::Pong(_)))) => continue,
                Ok(other) => panic!("unexpected {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn auth_refuses_without_a_token_and_picks_a_subprotocol() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("auth.toml");
    let auth = plugin_file("auth");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nfile = {:?}\n[plugin.config]\n\"auth.token\" = \"s3cret\"\n",
            auth.display().to_string()
        ),
    )
    .unwrap();
    let server = ServerProcess::start(&["--config", config.to_str().unwrap()]).await;

    let mut c = RawClient::tcp(server.addr).await;
    c.send(UPGRADE_REQUEST.as_bytes()).await;
    let refused = c.read_http_response().await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(
        refused.contains("WWW-Authenticate: Bearer realm=\"wsserver\""),
        "{refused}"
    );

    let mut c = RawClient::tcp(server.addr).await;
    c.send(
        UPGRADE_REQUEST
            .replace("GET / ", "GET /?token=wrong ")
            .as_bytes(),
    )
    .await;
    assert!(c.read_http_response().await.starts_with("HTTP/1.1 401"));

    let mut request = format!("{}/?token=s3cret", server.url)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "x.v9, chat.v1, chat.v2".parse().unwrap(),
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v1");
    assert_echo(&mut ws, "authorized").await;

    let mut request = server.url.clone().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", "Bearer s3cret".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_echo(&mut ws, "bearer works").await;
}

#[tokio::test]
async fn loop_membomb_and_trap_plugins_get_1011_while_echo_keeps_answering() {
    for hostile in ["loop", "membomb", "trap"] {
        let server = start_with(&[("/good", "echo"), ("/bad", hostile)]).await;
        let bad_url = format!("{}/bad", server.url);
        let attack = async {
            // Several victims, each killed with 1011; the plugin is replaced
            // and the next one meets a fresh instance.
            for round in 0..3 {
                let mut ws = ws_connect(&bad_url).await;
                ws.send(Message::text(format!("attack {round}")))
                    .await
                    .unwrap();
                match tokio::time::timeout(WAIT, ws.next())
                    .await
                    .expect("closed in time")
                {
                    Some(Ok(Message::Close(Some(frame)))) => {
                        assert_eq!(frame.code, CloseCode::Error, "{hostile}")
                    }
                    other => panic!("{hostile}: expected close 1011, got {other:?}"),
                }
            }
        };
        let answered = echo_stays_responsive(&format!("{}/good", server.url), attack).await;
        assert!(answered > 0, "{hostile}");
        assert!(
            server.stderr().contains("instance failed"),
            "{hostile}: no log line"
        );
    }
}

#[tokio::test]
async fn a_flooding_plugin_meets_would_block_and_ready_to_send() {
    let server = start_with(&[("/good", "echo"), ("/flood", "flood")]).await;
    let (mut flooded, _) = tokio_tungstenite::connect_async(format!("{}/flood", server.url))
        .await
        .unwrap();
    flooded.send(Message::text("go")).await.unwrap();
    let before = server.rss_kib();
    // Not reading: the plugin's sends stop at would-block, memory stays put.
    let answered = echo_stays_responsive(
        &format!("{}/good", server.url),
        tokio::time::sleep(Duration::from_secs(1)),
    )
    .await;
    assert!(answered > 10);
    let grown = server.rss_kib().saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "server grew by {grown} KiB under the flood"
    );
    // Reading drains the queue; ready-to-send lets the plugin go on.
    let mut received = 0usize;
    while received < 4 * 1024 * 1024 {
        match tokio::time::timeout(WAIT, flooded.next())
            .await
            .expect("flood continues")
            .unwrap()
            .unwrap()
        {
            Message::Binary(b) => received += b.len(),
            Message::Text(t) => received += t.len(),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_component_that_is_not_a_plugin_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm not really").unwrap();
    let out = run_to_exit(&["--plugin", &format!("/x={}", bogus.display())]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bogus") && err.contains("invalid component"),
        "{err}"
    );

    let out = run_to_exit(&["--plugin", "/x=/nonexistent/p.wasm"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/p.wasm"));
}
