//! Tenants through the real binary: `[[tenant]]` tables, isolation between
//! tenants, per-tenant admission (max connections, Origins, message size)
//! and rates, and hot swaps by SIGHUP and by file watch while clients stay
//! connected.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::*;

/// A component built from `plugins/`.
fn built(name: &str) -> PathBuf {
    plugin_file(name)
}

/// Replaces `path` at once (write then rename), as an operator's deploy
/// would: a reader never sees half a file.
fn replace_file(path: &Path, contents: &[u8]) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, contents).unwrap();
    std::fs::rename(&partial, path).unwrap();
}

/// A config in `dir` of two tenants running the plugin `name`: "a" on
/// `/a` and "b" on `/b`.
fn two_tenants(dir: &Path, name: &str) -> PathBuf {
    let config = dir.join("wsserver.toml");
    let file = toml_path(&built(name));
    std::fs::write(
        &config,
        format!(
            "[[tenant]]\nname = \"a\"\nfile = {file}\nroutes = [\"/a\"]\n\
             [[tenant]]\nname = \"b\"\nfile = {file}\nroutes = [\"/b\"]\n"
        ),
    )
    .unwrap();
    config
}

async fn start_config(path: &Path) -> ServerProcess {
    ServerProcess::start(&["--config", &path.display().to_string()]).await
}

async fn ask(ws: &mut Ws, message: &str) -> String {
    ws.send(Message::text(message)).await.expect("send");
    text(ws).await
}

#[tokio::test]
async fn a_tenant_cannot_see_send_to_or_close_another_tenants_connections() {
    let dir = tempfile::tempdir().unwrap();
    let config = two_tenants(dir.path(), "probe");
    let server = start_config(&config).await;
    let (mut mine, my_id) = probe_client(&format!("{}/a", server.url)).await;
    let (mut theirs, their_id) = probe_client(&format!("{}/b", server.url)).await;

    assert_eq!(
        ask(&mut mine, "connections").await,
        format!("connections {my_id}")
    );
    assert_eq!(
        ask(&mut mine, &format!("info {their_id}")).await,
        "err invalid-connection"
    );
    for attempt in [
        format!("send-to {their_id} intrusion"),
        format!("close-to {their_id}"),
    ] {
        assert_eq!(ask(&mut mine, &attempt).await, "event error code=126");
    }
    for attempt in [
        format!("direct-send-to {their_id} intrusion"),
        format!("direct-close-to {their_id}"),
    ] {
        assert_eq!(ask(&mut mine, &attempt).await, "err invalid-connection");
    }
    // Topics are per tenant: the same name does not cross over.
    assert_eq!(ask(&mut theirs, "subscribe news").await, "subscribed news");
    mine.send(Message::text("publish news leaked"))
        .await
        .unwrap();
    assert_eq!(ask(&mut theirs, "echo untouched").await, "untouched");
}

/// Tenants served by one thread: in each round of it, reads of one
/// tenant's connections follow the other's, so what one tenant's instance
/// has staged is handed over before the other's events are staged. Every
/// message of every client comes back, in order, text and binary alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_sharing_one_thread_each_get_every_message_back() {
    const CLIENTS: usize = 3;
    const MESSAGES: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let config = two_tenants(dir.path(), "echo");
    let server =
        ServerProcess::start(&["--config", &config.display().to_string(), "--threads", "1"]).await;
    let mut clients = Vec::new();
    for tenant in ["a", "b"] {
        for client in 0..CLIENTS {
            let mut ws = ws_connect(&format!("{}/{tenant}", server.url)).await;
            clients.push(tokio::spawn(async move {
                // One message at a time: each read is one small message,
                // which waits for the other connections of the round.
                for i in 0..MESSAGES {
                    let body = format!("{tenant}{client}:{i}");
                    let sent = if i % 2 == 0 {
                        Message::binary(body.clone().into_bytes())
                    } else {
                        Message::text(body.clone())
                    };
                    ws.send(sent.clone()).await.expect("send");
                    match tokio::time::timeout(WAIT, ws.next()).await {
                        Ok(Some(Ok(reply))) if reply == sent => {}
                        other => panic!("{body}: got {other:?}"),
                    }
                }
            }));
        }
    }
    for client in clients {
        client
            .await
            .expect("every client got each of its messages back");
    }
}

#[tokio::test]
async fn each_tenant_admits_by_its_own_limits() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wsserver.toml");
    let echo = toml_path(&built("echo"));
    std::fs::write(
        &config,
        format!(
            "[[tenant]]\nname = \"small\"\nfile = {echo}\nroutes = [\"/small\"]\nmax_connections = 2\n\
             [[tenant]]\nname = \"guarded\"\nfile = {echo}\nroutes = [\"/guarded\"]\n\
             allowed_origins = [\"https://good.test\"]\nmax_message_size = 16\n\
             [[tenant]]\nname = \"open\"\nfile = {echo}\nroutes = [\"/open\"]\n"
        ),
    )
    .unwrap();
    let (server, admin) = ServerProcess::start_config_with_admin(&config).await;

    // max_connections: the third is refused before the plugin sees it.
    let first = ws_connect(&format!("{}/small", server.url)).await;
    let mut second = ws_connect(&format!("{}/small", server.url)).await;
    assert_eq!(
        upgrade_status(&server, "/small", None).await,
        "HTTP/1.1 503 Service Unavailable"
    );
    // Another tenant still has room.
    let mut open = ws_connect(&format!("{}/open", server.url)).await;
    assert_echo(&mut open, &"x".repeat(100)).await;
    // A place comes back when a connection ends.
    drop(first);
    let mut admitted = false;
    for _ in 0..100 {
        if upgrade_status(&server, "/small", None)
            .await
            .starts_with("HTTP/1.1 101")
        {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "the closed connection's place never came back");
    assert_echo(&mut second, "still served").await;

    // Origins: listed ones (any case) and none at all pass, others get 403.
    assert_eq!(
        upgrade_status(&server, "/guarded", Some("https://evil.test")).await,
        "HTTP/1.1 403 Forbidden"
    );
    let mut request = format!("{}/guarded", server.url)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Origin", "https://GOOD.test".parse().unwrap());
    let (mut guarded, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    // max_message_size: 16 bytes pass, 17 close with 1009.
    assert_echo(&mut guarded, "sixteen bytes ok").await;
    guarded
        .send(Message::text("seventeen bytes!!"))
        .await
        .unwrap();
    match tokio::time::timeout(WAIT, guarded.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
    assert!(
        upgrade_status(&server, "/guarded", None)
            .await
            .starts_with("HTTP/1.1 101")
    );
    // The place may have been refused more than once while it came back.
    let full = metric(
        &admin,
        "wsserver_tenant_refused_total{tenant=\"small\",reason=\"max_connections\"}",
    )
    .await;
    assert!(full.is_some_and(|n| n >= 1.0), "{full:?}");
    for (series, want) in [
        (
            "wsserver_tenant_refused_total{tenant=\"guarded\",reason=\"origin\"}",
            1.0,
        ),
        (
            "wsserver_tenant_refused_total{tenant=\"open\",reason=\"origin\"}",
            0.0,
        ),
    ] {
        assert_eq!(metric(&admin, series).await, Some(want), "{series}");
    }
}

#[tokio::test]
async fn over_its_rate_a_client_loses_messages_or_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wsserver.toml");
    let probe = toml_path(&built("probe"));
    // Five a second: a burst of 30 meets drops, then pauses.
    std::fs::write(
        &config,
        format!(
            "[[tenant]]\nname = \"dropping\"\nfile = {probe}\nroutes = [\"/drop\"]\nconnection_rate = 5\n\
             [[tenant]]\nname = \"closing\"\nfile = {probe}\nroutes = [\"/close\"]\n\
             connection_rate = 1\nover_rate = \"close\"\n"
        ),
    )
    .unwrap();
    let (server, admin) = ServerProcess::start_config_with_admin(&config).await;

    let (mut ws, _) = probe_client(&format!("{}/drop", server.url)).await;
    for n in 0..30 {
        ws.send(Message::text(format!("echo {n}"))).await.unwrap();
    }
    // Once the dropping client is read again and a token is back, a
    // marker gets through.
    let mut replies = Vec::new();
    'marker: for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        ws.send(Message::text("echo marker")).await.unwrap();
        loop {
            match tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "marker" => break 'marker,
                Ok(Some(Ok(Message::Text(t)))) => replies.push(t.to_string()),
                Ok(other) => panic!("after {replies:?}: {other:?}"),
                Err(_) => break,
            }
        }
    }
    let echoed: Vec<usize> = replies.iter().filter_map(|r| r.parse().ok()).collect();
    let errors = replies
        .iter()
        .filter(|r| *r == "event error code=1008")
        .count();
    assert_eq!(echoed.first(), Some(&0), "{replies:?}");
    assert!(echoed.len() < 30, "nothing was dropped: {replies:?}");
    assert!(echoed.windows(2).all(|w| w[0] < w[1]), "{replies:?}");
    assert!(errors >= 1, "no error event for the drops: {replies:?}");
    assert_eq!(echoed.len() + errors, replies.len(), "{replies:?}");

    let (mut ws, _) = probe_client(&format!("{}/close", server.url)).await;
    for n in 0..5 {
        // The server may have closed already: later sends can fail. Binary
        // this time: whole binary messages take a path of their own.
        let _ = ws.send(Message::binary(format!("echo {n}"))).await;
    }
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(_))) => continue,
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Policy);
                break;
            }
            other => panic!("expected close 1008, got {other:?}"),
        }
    }
    let over = |tenant: &str, action: &str| {
        format!("wsserver_tenant_over_rate_total{{tenant=\"{tenant}\",action=\"{action}\"}}")
    };
    let dropped = metric(&admin, &over("dropping", "dropped")).await;
    assert!(
        dropped.is_some_and(|n| n >= (30 - echoed.len()) as f64),
        "{dropped:?}"
    );
    assert_eq!(metric(&admin, &over("closing", "closed")).await, Some(1.0));
    assert_eq!(metric(&admin, &over("dropping", "closed")).await, Some(0.0));
}

/// The configuration of the swap tests: the `versioned` plugin as tenant
/// `live`, answering with `version`.
fn versioned_tenant(file: &Path, version: &str, extra: &str) -> String {
    format!(
        "[settings]\nMaxConnections = 1000\n\
         [[tenant]]\nname = \"live\"\nfile = {}\n{extra}\n[tenant.config]\nversion = \"{version}\"\n",
        toml_path(file)
    )
}

/// What one client of the swap test checks on every answer
/// (`vVERSION COUNT N`): N is the next number it sent (each message
/// answered once, in order), COUNT is N + 1 (the plugin's state went
/// through every swap), and VERSION never goes back.
async fn numbered_client(
    mut ws: Ws,
    index: usize,
    latest: Arc<Vec<AtomicUsize>>,
    stop: Arc<AtomicBool>,
) -> Result<usize, String> {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let (mut sent, mut answered, mut version) = (0usize, 0usize, 0usize);
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if stopping && answered == sent {
            return Ok(answered);
        }
        tokio::select! {
            _ = tick.tick(), if !stopping => {
                ws.send(Message::text(sent.to_string()))
                    .await
                    .map_err(|e| format!("client {index}: send {sent}: {e}"))?;
                sent += 1;
            }
            reply = tokio::time::timeout(WAIT, ws.next()) => {
                let reply = match reply {
                    Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
                    other => {
                        return Err(format!("client {index} after {answered} answers: {other:?}"));
                    }
                };
                let fields: Vec<usize> = reply
                    .trim_start_matches('v')
                    .split(' ')
                    .filter_map(|f| f.parse().ok())
                    .collect();
                let [v, count, n] = fields[..] else {
                    return Err(format!("client {index}: unexpected answer {reply:?}"));
                };
                if n != answered || count != answered + 1 || v < version {
                    return Err(format!(
                        "client {index}: answer {reply:?} after {answered} answers of version {version}"
                    ));
                }
                version = v;
                latest[index].store(v, Ordering::Relaxed);
                answered += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_keep_talking_through_ten_swaps() {
    const CLIENTS: usize = 200;
    const SWAPS: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wsserver.toml");
    let wasm = built("versioned");
    // Two instances: connections are spread over both, and both switch.
    let write = |version: usize| {
        let text = versioned_tenant(&wasm, &format!("v{version}"), "instances = 2");
        replace_file(&config, text.as_bytes());
    };
    write(0);
    let server = start_config(&config).await;
    let latest: Arc<Vec<AtomicUsize>> =
        Arc::new((0..CLIENTS).map(|_| AtomicUsize::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for index in 0..CLIENTS {
        let ws = ws_connect(&server.url).await;
        clients.push(tokio::spawn(numbered_client(
            ws,
            index,
            latest.clone(),
            stop.clone(),
        )));
    }
    for version in 1..=SWAPS {
        write(version);
        server.hangup().await;
        // Every client sees the new version's answers.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while latest.iter().any(|v| v.load(Ordering::Relaxed) < version) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "swap {version}: not every client saw it; stderr:\n{}",
                server.stderr()
            );
            assert!(
                !clients.iter().any(|c| c.is_finished()),
                "a client stopped during swap {version}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Traffic goes on between swaps too.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for client in clients {
        answered += client.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    }
    println!(
        "{CLIENTS} clients, {SWAPS} swaps: {answered} messages answered exactly once, in order"
    );
    let log = server.stderr();
    assert_eq!(
        log.matches("reload: tenant live now serves").count(),
        SWAPS,
        "{log}"
    );
    assert!(!log.contains("instance failed"), "{log}");
}

#[tokio::test]
async fn a_swap_that_fails_leaves_the_running_version_serving() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wsserver.toml");
    // Under 16 MiB: `oversized` compiles and links but cannot instantiate.
    let cap = "memory_limit = 8388608";
    replace_file(
        &config,
        versioned_tenant(&built("versioned"), "v1", cap).as_bytes(),
    );
    let server = start_config(&config).await;
    let mut ws = ws_connect(&server.url).await;
    assert_eq!(ask(&mut ws, "a").await, "v1 1 a");

    replace_file(
        &config,
        versioned_tenant(&built("oversized"), "v2", cap).as_bytes(),
    );
    server.hangup().await;
    let log = server.stderr_containing("cannot be instantiated").await;
    assert!(log.contains("keeps its running version"), "{log}");
    assert_eq!(ask(&mut ws, "b").await, "v1 2 b");

    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm not a component").unwrap();
    replace_file(&config, versioned_tenant(&garbage, "v2", cap).as_bytes());
    server.hangup().await;
    server.stderr_containing("invalid component").await;
    assert_eq!(ask(&mut ws, "c").await, "v1 3 c");

    replace_file(
        &config,
        versioned_tenant(&built("versioned"), "v2", cap).as_bytes(),
    );
    server.hangup().await;
    server.stderr_containing("tenant live now serves").await;
    assert_eq!(ask(&mut ws, "d").await, "v2 4 d");
}

#[tokio::test]
async fn a_watched_file_is_swapped_in_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.wasm");
    std::fs::copy(built("echo"), &app).unwrap();
    let config = dir.path().join("wsserver.toml");
    std::fs::write(
        &config,
        "[[tenant]]\nname = \"app\"\nfile = \"app.wasm\"\nwatch = true\n",
    )
    .unwrap();
    let server = start_config(&config).await;
    let mut ws = ws_connect(&server.url).await;
    assert_eq!(ask(&mut ws, "echo hi").await, "echo hi");

    // The echo exports lifecycle, the probe does not: the probe starts
    // fresh and first hears of the open connection.
    replace_file(&app, &std::fs::read(built("probe")).unwrap());
    let notice = text(&mut ws).await;
    assert!(notice.starts_with("event connected "), "{notice}");
    assert_eq!(ask(&mut ws, "echo hi").await, "hi");
    let log = server.stderr_containing("now serving").await;
    assert!(log.contains("app.wasm changed"), "{log}");
}

#[tokio::test]
async fn forty_watched_tenants_share_one_watch_thread() {
    const TENANTS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let mut toml = String::new();
    for i in 0..TENANTS {
        std::fs::copy(built("echo"), dir.path().join(format!("t{i}.wasm"))).unwrap();
        toml.push_str(&format!(
            "[[tenant]]\nname = \"t{i}\"\nfile = \"t{i}.wasm\"\nroutes = [\"/t{i}\"]\nwatch = true\n"
        ));
    }
    let config = dir.path().join("wsserver.toml");
    std::fs::write(&config, toml).unwrap();
    let server = start_config(&config).await;
    let threads = server.threads();
    let cores = std::thread::available_parallelism().unwrap().get();
    assert!(
        threads <= 2 * cores + 16,
        "{threads} threads for {TENANTS} watched tenants"
    );
    // The one thread still sees each file: the last tenant's changes.
    let mut ws = ws_connect(&format!("{}/t{}", server.url, TENANTS - 1)).await;
    assert_eq!(ask(&mut ws, "echo hi").await, "echo hi");
    let last = dir.path().join(format!("t{}.wasm", TENANTS - 1));
    replace_file(&last, &std::fs::read(built("probe")).unwrap());
    let notice = text(&mut ws).await;
    assert!(notice.starts_with("event connected "), "{notice}");
    assert_eq!(ask(&mut ws, "echo hi").await, "hi");
    let mut first = ws_connect(&format!("{}/t0", server.url)).await;
    assert_eq!(ask(&mut first, "echo hi").await, "echo hi");
}

#[tokio::test]
async fn plugin_flags_naming_one_file_twice_still_serve() {
    let echo = built("echo").display().to_string();
    let server = ServerProcess::start(&[
        "--plugin",
        &format!("/a={echo}"),
        "--plugin",
        &format!("/b={echo}"),
    ])
    .await;
    for path in ["/a", "/b"] {
        let mut ws = ws_connect(&format!("{}{path}", server.url)).await;
        assert_echo(&mut ws, path).await;
    }
}

/// What the admin API reports as a component's version.
fn digest(component: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(component)))
}

#[tokio::test]
async fn the_admin_api_swaps_and_rolls_back_a_tenant_and_metrics_count_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wsserver.toml");
    let versioned = std::fs::read(built("versioned")).unwrap();
    // Under 16 MiB: `oversized` cannot be instantiated.
    replace_file(
        &config,
        versioned_tenant(&built("versioned"), "v1", "memory_limit = 8388608").as_bytes(),
    );
    let (server, admin) = ServerProcess::start_config_with_admin(&config).await;
    let mut ws = ws_connect(&server.url).await;
    assert_eq!(ask(&mut ws, "a").await, "v1 1 a");

    let listed = http("GET", &admin, "/tenants", None, None).await.json();
    let live = &listed["tenants"][0];
    assert_eq!(live["name"], "live");
    assert_eq!(
        (live["instances"].as_u64(), live["connections"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(live["current"]["version"], digest(&versioned));
    assert!(live["previous"].is_null(), "{listed}");

    // New configuration, same component: the state goes along.
    let swapped = http(
        "POST",
        &admin,
        "/tenants/live/swap",
        None,
        Some(r#"{"config": {"version": "v2"}}"#),
    )
    .await;
    assert_eq!(swapped.status, 200, "{}", swapped.body);
    let swapped = swapped.json();
    assert_eq!(
        (
            swapped["changed"].as_bool(),
            swapped["state_carried"].as_bool()
        ),
        (Some(true), Some(true))
    );
    assert_eq!(ask(&mut ws, "b").await, "v2 2 b");

    // An uploaded component that cannot be instantiated: refused, v2 serves.
    let refused = http_with(
        "POST",
        &admin,
        "/tenants/live/swap",
        None,
        Some("application/wasm"),
        std::fs::read(built("oversized")).unwrap(),
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains("cannot be instantiated")
    );
    assert_eq!(ask(&mut ws, "c").await, "v2 3 c");
    let missing = http(
        "POST",
        &admin,
        "/tenants/live/swap",
        None,
        Some(r#"{"file": "/nonexistent/x.wasm"}"#),
    )
    .await;
    assert_eq!(missing.status, 400, "{}", missing.body);

    let rolled = http("POST", &admin, "/tenants/live/rollback", None, None).await;
    assert_eq!(rolled.status, 200, "{}", rolled.body);
    assert_eq!(ask(&mut ws, "d").await, "v1 4 d");
    assert_eq!(
        http("POST", &admin, "/tenants/nobody/rollback", None, None)
            .await
            .status,
        404
    );

    let live = http("GET", &admin, "/tenants/live", None, None)
        .await
        .json();
    assert_eq!(
        (
            live["swaps"].as_u64(),
            live["failed_swaps"].as_u64(),
            live["rollbacks"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{live}"
    );
    assert_eq!(live["previous"]["version"], digest(&versioned));
    let plugins = http("GET", &admin, "/plugins", None, None).await.json();
    assert_eq!(plugins["plugins"][0]["version"], digest(&versioned));

    let tenant = "tenant=\"live\"";
    for (series, want) in [
        (format!("wsserver_tenant_swaps_total{{{tenant}}}"), 1.0),
        (
            format!("wsserver_tenant_swap_failures_total{{{tenant}}}"),
            1.0,
        ),
        (format!("wsserver_tenant_rollbacks_total{{{tenant}}}"), 1.0),
        (format!("wsserver_tenant_connections{{{tenant}}}"), 1.0),
        (
            format!(
                "wsserver_tenant_version_info{{{tenant},version=\"{}\"}}",
                digest(&versioned)
            ),
            1.0,
        ),
    ] {
        assert_eq!(metric(&admin, &series).await, Some(want), "{series}");
    }
    // Per-tenant event counts: the open request, connected, four messages.
    let events = metric(&admin, "wsserver_plugin_events_total{plugin=\"live\"}").await;
    assert!(events.is_some_and(|n| n >= 6.0), "{events:?}");
}

#[tokio::test]
async fn the_admin_api_has_no_tenant_to_swap_on_the_native_echo() {
    let mut server = ServerProcess::start(&["--admin", "127.0.0.1:0", "--native-echo"]).await;
    let admin = server.admin_url().await;
    let reply = http("POST", &admin, "/tenants/echo/swap", None, None).await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    let listed = http("GET", &admin, "/tenants", None, None).await.json();
    assert_eq!(listed["tenants"], serde_json::json!([]));
}

#[tokio::test]
async fn a_version_swapped_in_answers_its_own_open_requests() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wsserver.toml");
    std::fs::write(
        &config,
        format!(
            "[[tenant]]\nname = \"live\"\nfile = {:?}\nroutes = [\"/\"]\n",
            built("echo").display().to_string()
        ),
    )
    .unwrap();
    let (server, admin) = ServerProcess::start_config_with_admin(&config).await;
    // The echo accepts every request: after the first, the host answers.
    for i in 0..3 {
        let mut ws = ws_connect(&server.url).await;
        assert_eq!(ask(&mut ws, &format!("hi {i}")).await, format!("hi {i}"));
    }
    let status = http("GET", &admin, "/tenants/live", None, None)
        .await
        .json();
    assert!(
        status["accounting"]["opens_accepted_by_host"].as_u64() >= Some(1),
        "{status}"
    );
    let mut kept = ws_connect(&server.url).await;

    // The auth plugin decides: none of its requests is answered for it.
    let swapped = http_with(
        "POST",
        &admin,
        "/tenants/live/swap",
        None,
        Some("application/wasm"),
        std::fs::read(built("auth")).unwrap(),
    )
    .await;
    assert_eq!(swapped.status, 200, "{}", swapped.body);
    for _ in 0..3 {
        assert_refused_401(server.addr).await;
    }
    let mut admitted = ws_connect(&format!("{}/?token=wsserver-dev-token", server.url)).await;
    assert_eq!(ask(&mut admitted, "in").await, "in");
    assert_eq!(ask(&mut kept, "still here").await, "still here");

    // Back and forth: once a swap has returned, the echo's "accept every
    // request" no longer holds, even for a request sent at once.
    for round in 0..5 {
        let rolled = http("POST", &admin, "/tenants/live/rollback", None, None).await;
        assert_eq!(rolled.status, 200, "{}", rolled.body);
        let mut ws = ws_connect(&server.url).await;
        assert_eq!(ask(&mut ws, "back").await, "back");
        let mut again = ws_connect(&server.url).await;
        assert_eq!(ask(&mut again, "by host").await, "by host");
        if round < 4 {
            let swapped = http("POST", &admin, "/tenants/live/rollback", None, None).await;
            assert_eq!(swapped.status, 200, "{}", swapped.body);
            assert_refused_401(server.addr).await;
        }
    }
}

/// Sends an upgrade request without a token and expects the auth plugin's
/// 401, then the end of the connection.
async fn assert_refused_401(addr: std::net::SocketAddr) {
    let mut c = RawClient::tcp(addr).await;
    c.send(UPGRADE_REQUEST.as_bytes()).await;
    let refused = c.read_http_response().await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
}
