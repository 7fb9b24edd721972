//! Topics across nodes: three `wsserver` processes share one real
//! `redis-server` (Debian package `redis-server`, started here on a free
//! loopback port) and their clients meet in the same rooms.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

/// How long a test waits to be sure that nothing (more) arrives.
const QUIET: Duration = Duration::from_millis(400);

/// A `redis-server` of its own on a free loopback port, killed when
/// dropped.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Self {
            child: None,
            port,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        redis.run().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it
    /// answers.
    async fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs (Debian package redis-server; .ci/run installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while self.connection().await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the server at once (SIGKILL): no goodbye to its clients.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    /// How many nodes subscribe to a tenant's topic: Redis's own answer.
    async fn subscribers(&self, tenant: &str, topic: &str) -> i64 {
        let channel = format!("wsserver:{}:{tenant}:{topic}", tenant.len());
        let mut connection = self.connection().await.expect("redis connection");
        let (_, count): (String, i64) = redis::cmd("PUBSUB")
            .arg("SHARDNUMSUB")
            .arg(&channel)
            .query_async(&mut connection)
            .await
            .expect("PUBSUB SHARDNUMSUB");
        count
    }

    /// Waits until `nodes` nodes subscribe to the tenant's topic.
    async fn wait_for_subscribers(&self, tenant: &str, topic: &str, nodes: i64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.subscribers(tenant, topic).await;
            if now == nodes {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{nodes} nodes should subscribe to {tenant}/{topic}; {now} do"
            );
            sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A node: the server and its admin API.
struct Node {
    server: ServerProcess,
    admin: String,
}

/// Starts a node serving the tenants of `toml` (tables only) with the
/// cluster's Redis.
async fn node(dir: &Path, index: usize, toml: &str, redis: &Redis) -> Node {
    let path = dir.join(format!("node{index}.toml"));
    std::fs::write(&path, toml).expect("write config");
    let path = path.to_str().expect("UTF-8 path").to_owned();
    let url = redis.url();
    let mut server =
        ServerProcess::start(&["--config", &path, "--redis", &url, "--admin", "127.0.0.1:0"]).await;
    let admin = server.admin_url().await;
    Node { server, admin }
}

fn chat_tenant() -> String {
    "[[tenant]]\nname = \"chat\"\nfile = \"builtin:chat\"\nroutes = [\"/\"]\n".to_owned()
}

/// Tenants `acme` (`/acme`) and `globex` (`/globex`), both the probe.
fn probe_tenants() -> String {
    let probe = plugin_file("probe");
    let probe = probe.display();
    format!(
        "[[tenant]]\nname = \"acme\"\nfile = \"{probe}\"\nroutes = [\"/acme\"]\n\
         [[tenant]]\nname = \"globex\"\nfile = \"{probe}\"\nroutes = [\"/globex\"]\n"
    )
}

async fn chat_member(node: &Node, room: &str) -> Ws {
    ws_connect(&format!("{}{room}", node.server.url)).await
}

/// Connects to the probe and reads its `event connected ID`.
async fn probe_client(node: &Node, path: &str) -> Ws {
    let mut ws = ws_connect(&format!("{}{path}", node.server.url)).await;
    let hello = text(&mut ws).await;
    assert!(hello.starts_with("event connected "), "{hello}");
    ws
}

/// Sends a probe command and returns its reply.
async fn ask(ws: &mut Ws, command: &str) -> String {
    ws.send(Message::text(command)).await.expect("send");
    text(ws).await
}

/// Nothing arrives on `ws` for a while (pings aside).
async fn assert_quiet(ws: &mut Ws, who: &str) {
    let deadline = Instant::now() + QUIET;
    loop {
        match timeout(
            deadline.saturating_duration_since(Instant::now()),
            ws.next(),
        )
        .await
        {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => panic!("{who} should receive nothing more, got {other:?}"),
        }
    }
}

/// Polls until `check` returns true.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} did not happen in time");
        sleep(Duration::from_millis(50)).await;
    }
}

/// A metric's value in a node's /metrics text.
async fn metric(node: &Node, name: &str) -> f64 {
    let reply = http("GET", &node.admin, "/metrics", None, None).await;
    assert_eq!(reply.status, 200);
    reply
        .body
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{}", reply.body))
        .parse()
        .expect("a number")
}

/// `GET /tenants/{tenant}/topics` as (topic, subscribers, local).
async fn topics(node: &Node, tenant: &str) -> Vec<(String, u64, u64)> {
    let reply = http(
        "GET",
        &node.admin,
        &format!("/tenants/{tenant}/topics"),
        None,
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .map(|t| {
            (
                t["topic"].as_str().unwrap().to_owned(),
                t["subscribers"].as_u64().unwrap(),
                t["local"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_chat_room_spans_three_nodes_and_each_member_gets_each_message_once() {
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(node(dir.path(), i, &chat_tenant(), &redis).await);
    }
    // Two members per node, in room /lobby; one member elsewhere.
    let mut members = Vec::new();
    for node in &nodes {
        for _ in 0..2 {
            members.push(chat_member(node, "/lobby").await);
        }
    }
    let mut outsider = chat_member(&nodes[1], "/kitchen").await;
    redis.wait_for_subscribers("chat", "/lobby", 3).await;
    redis.wait_for_subscribers("chat", "/kitchen", 1).await;

    members[0]
        .send(Message::text("hello from node 1"))
        .await
        .unwrap();
    for (i, member) in members.iter_mut().enumerate().skip(1) {
        assert_eq!(text(member).await, "hello from node 1", "member {i}");
    }
    for (i, member) in members.iter_mut().enumerate() {
        assert_quiet(member, &format!("member {i}")).await;
    }
    assert_quiet(&mut outsider, "the member of another room").await;

    // One publisher's messages arrive in order on another node.
    for n in 0..200 {
        members[2]
            .send(Message::text(format!("m{n}")))
            .await
            .unwrap();
    }
    for n in 0..200 {
        assert_eq!(text(&mut members[5]).await, format!("m{n}"));
    }
    for n in 0..200 {
        assert_eq!(text(&mut members[0]).await, format!("m{n}"));
    }

    let status = http("GET", &nodes[0].admin, "/cluster", None, None)
        .await
        .json();
    assert_eq!(status["enabled"], true);
    assert_eq!(status["connected"], true);
    assert_eq!(status["redis"], redis.url());
    assert!(status["published"].as_u64().unwrap() >= 1, "{status}");
    let node3 = http("GET", &nodes[2].admin, "/cluster", None, None)
        .await
        .json();
    assert!(node3["received"].as_u64().unwrap() >= 201, "{node3}");
    assert_ne!(status["node"], node3["node"]);
}

#[tokio::test]
async fn tenants_with_the_same_topic_see_nothing_of_each_other_across_nodes() {
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first = node(dir.path(), 0, &probe_tenants(), &redis).await;
    let second = node(dir.path(), 1, &probe_tenants(), &redis).await;
    let mut acme_1 = probe_client(&first, "/acme").await;
    let mut acme_2 = probe_client(&second, "/acme").await;
    let mut globex_2 = probe_client(&second, "/globex").await;
    for ws in [&mut acme_1, &mut acme_2, &mut globex_2] {
        assert_eq!(ask(ws, "subscribe news").await, "subscribed news");
    }
    redis.wait_for_subscribers("acme", "news", 2).await;
    redis.wait_for_subscribers("globex", "news", 1).await;

    acme_1
        .send(Message::text("publish news for acme"))
        .await
        .unwrap();
    assert_eq!(text(&mut acme_1).await, "for acme");
    assert_eq!(text(&mut acme_2).await, "for acme");
    assert_quiet(&mut globex_2, "globex's subscriber").await;

    globex_2
        .send(Message::text("publish news for globex"))
        .await
        .unwrap();
    assert_eq!(text(&mut globex_2).await, "for globex");
    assert_quiet(&mut acme_1, "acme's subscriber on node 1").await;
    assert_quiet(&mut acme_2, "acme's subscriber on node 2").await;
}

#[tokio::test]
async fn subscriber_counts_add_up_across_nodes_and_nodes_leave_empty_channels() {
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(node(dir.path(), i, &probe_tenants(), &redis).await);
    }
    // 1 + 2 + 3 subscribers of acme's "room"; one of globex's.
    let mut clients = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for _ in 0..=i {
            let mut ws = probe_client(node, "/acme").await;
            assert_eq!(ask(&mut ws, "subscribe room").await, "subscribed room");
            clients.push(ws);
        }
    }
    let mut globex = probe_client(&nodes[0], "/globex").await;
    assert_eq!(ask(&mut globex, "subscribe room").await, "subscribed room");

    // The plugin's host function, on each node.
    for (i, client) in [0, 1, 3].into_iter().enumerate() {
        let ws = &mut clients[client];
        eventually(&format!("count 6 on node {i}"), async || {
            ask(ws, "count room").await == "count 6"
        })
        .await;
    }
    assert_eq!(ask(&mut globex, "count room").await, "count 1");
    // The admin API.
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(
            topics(node, "acme").await,
            [("room".to_owned(), 6, i as u64 + 1)]
        );
    }

    // Node 2's members leave: the count drops and node 2 leaves the channel.
    redis.wait_for_subscribers("acme", "room", 3).await;
    let leaving: Vec<Ws> = clients.drain(1..3).collect();
    for mut ws in leaving {
        ws.close(None).await.unwrap();
    }
    redis.wait_for_subscribers("acme", "room", 2).await;
    let ws = &mut clients[0];
    eventually("count 4 after two left", async || {
        ask(ws, "count room").await == "count 4"
    })
    .await;
    eventually("the admin API's count 4", async || {
        topics(&nodes[1], "acme").await == [("room".to_owned(), 4, 0)]
    })
    .await;
}

#[tokio::test]
async fn the_http_publish_reaches_clients_on_every_node() {
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(node(dir.path(), i, &chat_tenant(), &redis).await);
    }
    let mut members = Vec::new();
    for node in &nodes {
        members.push(chat_member(node, "/news").await);
    }
    redis.wait_for_subscribers("chat", "/news", 3).await;

    let reply = http(
        "POST",
        &nodes[1].admin,
        "/tenants/chat/publish",
        None,
        Some(r#"{"topic": "/news", "format": "text", "data": "extra!"}"#),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["delivered_here"], 1);
    for (i, member) in members.iter_mut().enumerate() {
        assert_eq!(text(member).await, "extra!", "member on node {i}");
        assert_quiet(member, &format!("member on node {i}")).await;
    }

    // Binary data in base64.
    let reply = http(
        "POST",
        &nodes[0].admin,
        "/tenants/chat/publish",
        None,
        Some(r#"{"topic": "/news", "format": "binary", "data": "AAH/"}"#),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    for member in members.iter_mut() {
        let message = timeout(WAIT, member.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(message, Message::binary(vec![0u8, 1, 255]));
    }

    // Mistakes get clear answers.
    let bad = [
        (
            "/tenants/nobody/publish",
            r#"{"topic": "t", "data": "x"}"#,
            404,
        ),
        (
            "/tenants/chat/publish",
            r#"{"topic": "t", "format": "binary", "data": "%%"}"#,
            400,
        ),
        (
            "/tenants/chat/publish",
            r#"{"topic": "t", "format": "morse", "data": "x"}"#,
            400,
        ),
        ("/tenants/chat/publish", r#"{"data": "x"}"#, 400),
    ];
    for (path, body, status) in bad {
        let reply = http("POST", &nodes[0].admin, path, None, Some(body)).await;
        assert_eq!(reply.status, status, "{path} {body}: {}", reply.body);
        assert!(reply.json()["error"].is_string());
    }
    let reply = http("GET", &nodes[0].admin, "/tenants/chat/publish", None, None).await;
    assert_eq!((reply.status, reply.header("allow")), (405, Some("POST")));
}

#[tokio::test]
async fn a_redis_restart_stops_only_cross_node_delivery_and_only_for_a_while() {
    let mut redis = Redis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first = node(dir.path(), 0, &chat_tenant(), &redis).await;
    let second = node(dir.path(), 1, &chat_tenant(), &redis).await;
    let mut sender = chat_member(&first, "/room").await;
    let mut local = chat_member(&first, "/room").await;
    let mut remote = chat_member(&second, "/room").await;
    redis.wait_for_subscribers("chat", "/room", 2).await;
    sender.send(Message::text("before")).await.unwrap();
    assert_eq!(text(&mut local).await, "before");
    assert_eq!(text(&mut remote).await, "before");

    redis.kill().await;
    // Local delivery goes on, message after message, while Redis is down.
    for n in 0..20 {
        let message = format!("during {n}");
        sender.send(Message::text(message.clone())).await.unwrap();
        assert_eq!(text(&mut local).await, message);
        sleep(Duration::from_millis(25)).await;
    }
    eventually("the outage in /metrics", async || {
        metric(&first, "wsserver_cluster_connected").await == 0.0
            && metric(&first, "wsserver_cluster_publish_failures_total").await > 0.0
    })
    .await;
    assert_eq!(
        metric(&first, "wsserver_cluster_outages_total").await,
        1.0,
        "{}",
        first.server.stderr()
    );
    let status = http("GET", &first.admin, "/cluster", None, None)
        .await
        .json();
    assert_eq!(status["connected"], false);
    assert!(status["down_since"].is_string(), "{status}");
    // The node still takes new clients.
    let mut late = chat_member(&first, "/room").await;

    redis.run().await;
    // Cross-node delivery comes back once the nodes have subscribed again.
    let started = Instant::now();
    redis.wait_for_subscribers("chat", "/room", 2).await;
    eventually("/metrics showing the link up again", async || {
        metric(&first, "wsserver_cluster_connected").await == 1.0
    })
    .await;
    let back_after = started.elapsed();
    assert!(back_after < Duration::from_secs(8), "{back_after:?}");
    sender.send(Message::text("after")).await.unwrap();
    assert_eq!(text(&mut remote).await, "after");
    assert_eq!(text(&mut local).await, "after");
    assert_eq!(text(&mut late).await, "after");
    // Nothing sent during the outage arrives late on the other node.
    assert_quiet(&mut remote, "the member on the other node").await;

    // One warning per outage, not one per attempt.
    let log = first.server.stderr();
    assert_eq!(log.matches("is unreachable").count(), 1, "{log}");
    assert!(log.contains("connected to Redis at"), "{log}");
}
