//! The plugin runtime through the real binary: instances on demand,
//! hibernation with per-connection attachments, supervised failures (a
//! process out of plugin instances), and many tenants in one process on
//! the shared executors.

use std::io::Write;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::*;

/// A component built from `plugins/`, as a TOML string.
fn built(name: &str) -> String {
    format!("{:?}", plugin_file(name).display().to_string())
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// Starts the server on `config` with the admin API; returns it and the
/// admin API's base URL.
async fn start(config: &tempfile::NamedTempFile) -> (ServerProcess, String) {
    ServerProcess::start_config_with_admin(config.path()).await
}

/// `GET /tenants/{name}`'s accounting object.
async fn accounting(admin: &str, tenant: &str) -> Value {
    let reply = http("GET", admin, &format!("/tenants/{tenant}"), None, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["accounting"].clone()
}

/// Polls the tenant's accounting until `field` equals `want`.
pub async fn wait_accounting(admin: &str, tenant: &str, field: &str, want: u64) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let a = accounting(admin, tenant).await;
        if a[field] == want {
            return a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{tenant}: {field} stayed {} (want {want}): {a}",
            a[field]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ask(ws: &mut Ws, message: &str) -> String {
    ws.send(Message::text(message)).await.expect("send");
    text(ws).await
}

/// Connects to the probe at `url` and reads its `event connected ID`.
async fn probe_client(url: &str) -> Ws {
    let mut ws = ws_connect(url).await;
    let hello = text(&mut ws).await;
    assert!(hello.starts_with("event connected "), "{hello}");
    ws
}

#[tokio::test]
async fn a_hibernated_instance_wakes_for_the_next_message_and_the_attachment_is_kept() {
    let config = config_file(&format!(
        "[[tenant]]\nname = \"h\"\nfile = {}\nroute = \"/h\"\nhibernate_after_ms = 150\n",
        built("probe")
    ));
    let (server, admin) = start(&config).await;
    // No connection yet: no instance.
    let idle = accounting(&admin, "h").await;
    assert_eq!(
        (
            idle["instances_live"].as_u64(),
            idle["instantiations"].as_u64()
        ),
        (Some(0), Some(0)),
        "{idle}"
    );

    let mut ws = probe_client(&format!("{}/h", server.url)).await;
    assert_eq!(ask(&mut ws, "attach alice").await, "ok");
    assert_eq!(accounting(&admin, "h").await["instances_live"], 1);

    let asleep = wait_accounting(&admin, "h", "instances_hibernated", 1).await;
    assert_eq!(asleep["instances_live"], 0, "{asleep}");
    assert_eq!(asleep["memory_bytes"], 0, "{asleep}");
    let metrics = http("GET", &admin, "/metrics", None, None).await.body;
    assert!(
        metrics.contains("wsserver_plugin_instances_hibernated{plugin=\"h\"} 1"),
        "{metrics}"
    );

    // A ping is answered by the host and does not wake the instance.
    ws.send(Message::Ping(b"still there?".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(b"still there?".to_vec().into()));
    let after_ping = accounting(&admin, "h").await;
    assert_eq!(
        (
            after_ping["instances_hibernated"].as_u64(),
            after_ping["instantiations"].as_u64()
        ),
        (Some(1), Some(1)),
        "{after_ping}"
    );

    // The next message makes a fresh instance, which reads the attachment
    // the host kept.
    assert_eq!(ask(&mut ws, "attachment").await, "attachment alice");
    let awake = accounting(&admin, "h").await;
    assert_eq!(
        (
            awake["instances_live"].as_u64(),
            awake["instances_hibernated"].as_u64(),
            awake["instantiations"].as_u64()
        ),
        (Some(1), Some(0), Some(2)),
        "{awake}"
    );
    assert!(awake["guest_seconds"].as_f64().unwrap() > 0.0, "{awake}");
    assert!(awake["memory_bytes"].as_u64().unwrap() > 0, "{awake}");
}

#[tokio::test]
async fn out_of_instances_closes_the_waiting_connections_with_1011_and_refuses_new_ones_with_503() {
    // One live instance for the whole process: a second tenant's instance
    // cannot be made while the first holds it, a fault a test can cause.
    let tenant = |name: &str| {
        format!(
            "[[tenant]]\nname = \"{name}\"\nfile = {}\nroute = \"/{name}\"\nhibernate_after_ms = 150\n",
            built("probe")
        )
    };
    let config = config_file(&format!(
        "[runtime]\nmax_instances = 1\n{}{}",
        tenant("a"),
        tenant("b")
    ));
    let (server, admin) = start(&config).await;
    let mut b1 = probe_client(&format!("{}/b", server.url)).await;
    assert_eq!(ask(&mut b1, "echo before").await, "before");
    wait_accounting(&admin, "b", "instances_hibernated", 1).await;

    // Tenant a takes the only instance; b's client speaks: b cannot wake.
    let mut a1 = probe_client(&format!("{}/a", server.url)).await;
    b1.send(Message::text("echo after")).await.unwrap();
    let close = loop {
        match tokio::time::timeout(WAIT, b1.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close code"),
            Some(Ok(Message::Text(t))) => panic!("served despite no instance: {t}"),
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(close.code, CloseCode::Error, "{close:?}");
    let log = server.stderr_containing("cannot create an instance").await;
    assert!(log.contains("ERROR"), "logged at error level: {log}");
    assert!(log.contains("out of plugin instances"), "{log}");
    let failed = accounting(&admin, "b").await;
    assert!(
        failed["instance_failures"].as_u64().unwrap() >= 1,
        "{failed}"
    );
    let metrics = http("GET", &admin, "/metrics", None, None).await.body;
    assert!(
        metrics.contains("wsserver_plugin_instance_failures_total{plugin=\"b\"}"),
        "{metrics}"
    );

    // A new client of b is refused at once, with the reason.
    let mut raw = RawClient::tcp(server.addr).await;
    raw.send(b"GET /b HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").await;
    let head = raw.read_http_head().await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-wsserver-reason: cannot create an instance: out of plugin instances"),
        "{head}"
    );

    // a's client leaves and a hibernates: b's next client is served by a
    // fresh instance.
    a1.close(None).await.unwrap();
    wait_accounting(&admin, "a", "instances_live", 0).await;
    let mut b2 = probe_client(&format!("{}/b", server.url)).await;
    assert_eq!(ask(&mut b2, "echo served").await, "served");
}

#[tokio::test]
async fn two_thousand_tenants_start_and_each_serves_on_a_few_threads() {
    const TENANTS: usize = 2_000;
    let mut toml = String::new();
    for i in 0..TENANTS {
        toml.push_str(&format!(
            "[[tenant]]\nname = \"t{i}\"\nfile = \"builtin:echo\"\nroute = \"/t{i}\"\nmemory_limit = 16777216\n"
        ));
    }
    let config = config_file(&toml);
    let (server, admin) = start(&config).await;
    let url = server.url.clone();
    let mut tasks = tokio::task::JoinSet::new();
    // 40 clients at a time, each tenant once.
    for worker in 0..40 {
        let url = url.clone();
        tasks.spawn(async move {
            for i in (worker..TENANTS).step_by(40) {
                let mut ws = ws_connect(&format!("{url}/t{i}")).await;
                assert_echo(&mut ws, &format!("hello t{i}")).await;
                ws.close(None).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let threads = server.threads();
    let cores = std::thread::available_parallelism().unwrap().get();
    assert!(
        threads <= 2 * cores + 16,
        "{threads} threads for {TENANTS} tenants"
    );
    let last = accounting(&admin, &format!("t{}", TENANTS - 1)).await;
    assert_eq!(last["instantiations"], 1, "{last}");
}

/// Turns on the server's own threads (`inline_turns`): a guest printing
/// (WASI streams, which wasmtime-wasi waits on with a tokio runtime)
/// keeps its instance, and one asleep for an hour is woken when its call
/// is out of time and closed with 1011, like on the executors; the echo
/// beside them keeps answering.
#[tokio::test]
async fn a_turn_on_a_server_thread_may_print_and_sleep() {
    let config = config_file(&format!(
        "[[tenant]]\nname = \"probe\"\nfile = {}\nroute = \"/probe\"\ninline_turns = true\n\n\
         [[tenant]]\nname = \"sleepy\"\nfile = {}\nroute = \"/sleepy\"\ninline_turns = true\n\
         deadline_ms = 100\n\n\
         [[tenant]]\nname = \"echo\"\nfile = \"builtin:echo\"\nroute = \"/\"\n",
        built("probe"),
        built("hostile")
    ));
    let (server, admin) = start(&config).await;
    let mut ws = probe_client(&format!("{}/probe", server.url)).await;
    for round in 0..3 {
        assert_eq!(
            ask(&mut ws, "print hello from the guest").await,
            "printed",
            "round {round}"
        );
    }
    assert_eq!(ask(&mut ws, "echo still here").await, "still here");
    let probe = accounting(&admin, "probe").await;
    assert_eq!(probe["instantiations"], 1, "the instance was lost: {probe}");
    assert!(
        probe["inline_turns"].as_u64() >= Some(4),
        "not inline: {probe}"
    );

    let sleeper = async {
        let mut sleepy = ws_connect(&format!("{}/sleepy", server.url)).await;
        sleepy.send(Message::text("sleep-hour")).await.unwrap();
        let closed = loop {
            match tokio::time::timeout(WAIT, sleepy.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| f.code),
                Ok(Some(Ok(_))) => {}
                other => panic!("sleep-hour: expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(closed, Some(CloseCode::Error));
    };
    echo_stays_responsive(&format!("{}/calm", server.url), sleeper).await;
    assert_eq!(
        ask(&mut ws, "echo after the sleeper").await,
        "after the sleeper"
    );
}
