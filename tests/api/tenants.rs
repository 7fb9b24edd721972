//! The plugin runtime's tenant API in-process: `PluginRouter` serving a
//! `WsServer`, hot swaps and rollbacks through the Rust API (what the admin
//! API calls), with real clients that stay connected throughout.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use wsserver::plugin::{
    PluginEngine, PluginRouter, PluginSpec, Route, SwapError, SwapOutcome, Update,
};
use wsserver::{Handler, Settings, WsServer};

use crate::common::*;

/// A component built from `plugins/`.
fn component(name: &str) -> Vec<u8> {
    let path = plugin_file(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `versioned` plugin as tenant `name` on every path, answering with
/// `version`.
fn versioned(name: &str, version: &str) -> PluginSpec {
    let mut spec = PluginSpec::new(
        name,
        component("versioned"),
        vec![Route::parse("/").unwrap()],
    );
    spec.config.insert("version".into(), version.into());
    spec
}

fn config(pairs: &[(&str, &str)]) -> Option<std::collections::BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// A server whose handler is a router of `specs`.
struct Served {
    router: Arc<PluginRouter>,
    server: WsServer,
    url: String,
}

impl Served {
    async fn start(specs: Vec<PluginSpec>) -> Self {
        let engine = PluginEngine::new(None).unwrap();
        let declared = specs.len();
        let router = Arc::new(PluginRouter::start(&engine, specs).unwrap());
        // Start-up serves what compiled within its wait; on a busy machine
        // the rest is still compiling (its routes answer 503): wait for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while router.tenants().len() < declared {
            assert!(
                std::time::Instant::now() < deadline,
                "tenants did not become ready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let handler: Arc<dyn Handler> = router.clone();
        let server = WsServer::with_settings(handler, Settings::default());
        server.config("LocalHost=127.0.0.1").unwrap();
        server.config("LocalPort=0").unwrap();
        server.start_listening().await.unwrap();
        let url = format!("ws://{}", server.local_addr().unwrap());
        Self {
            router,
            server,
            url,
        }
    }

    /// A swap, off the async workers as its documentation asks.
    async fn swap(&self, tenant: &str, update: Update) -> Result<SwapOutcome, SwapError> {
        let (router, tenant) = (self.router.clone(), tenant.to_owned());
        tokio::task::spawn_blocking(move || router.swap(&tenant, update))
            .await
            .unwrap()
    }

    async fn rollback(&self, tenant: &str) -> Result<SwapOutcome, SwapError> {
        let (router, tenant) = (self.router.clone(), tenant.to_owned());
        tokio::task::spawn_blocking(move || router.rollback(&tenant))
            .await
            .unwrap()
    }
}

/// The next text message.
async fn text(ws: &mut Ws) -> String {
    match tokio::time::timeout(WAIT, ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

async fn ask(ws: &mut Ws, message: &str) -> String {
    ws.send(Message::text(message)).await.unwrap();
    text(ws).await
}

#[tokio::test]
async fn a_swap_keeps_the_connection_and_its_state_and_rollback_goes_back() {
    let t = Served::start(vec![versioned("live", "v1")]).await;
    let mut ws = ws_connect(&t.url).await;
    assert_eq!(ask(&mut ws, "a").await, "v1 1 a");
    let before = t.router.tenants()[0].clone();

    let swapped = t
        .swap(
            "live",
            Update {
                wasm: component("versioned"),
                config: config(&[("version", "v2")]),
            },
        )
        .await
        .unwrap();
    assert!(swapped.changed && swapped.state_carried);
    // Same connection, new version, the count carried over by lifecycle.
    assert_eq!(ask(&mut ws, "b").await, "v2 2 b");
    let after = t.router.tenants()[0].clone();
    assert_eq!(after.previous.as_ref(), Some(&before.version));
    assert_eq!(after.version, swapped.version);
    assert_eq!(after.counters.swaps, 1);

    let back = t.rollback("live").await.unwrap();
    assert_eq!(back.version, before.version);
    assert_eq!(ask(&mut ws, "c").await, "v1 3 c");
    // A second rollback undoes the first.
    t.rollback("live").await.unwrap();
    assert_eq!(ask(&mut ws, "d").await, "v2 4 d");
    let status = &t.router.tenants()[0];
    assert_eq!((status.counters.rollbacks, status.connections), (2, 1));

    // The running version again: nothing to do.
    let same = t
        .swap(
            "live",
            Update {
                wasm: component("versioned"),
                config: None,
            },
        )
        .await
        .unwrap();
    assert!(!same.changed);
    assert!(matches!(
        t.swap(
            "nobody",
            Update {
                wasm: Vec::new(),
                config: None
            }
        )
        .await,
        Err(SwapError::UnknownTenant(_))
    ));
}

#[tokio::test]
async fn a_failed_swap_leaves_the_old_version_serving() {
    let mut spec = versioned("live", "v1");
    // Too small for `oversized`, whose memory starts above 16 MiB.
    spec.limits.memory_bytes = 8 << 20;
    let t = Served::start(vec![spec]).await;
    let mut ws = ws_connect(&t.url).await;
    assert_eq!(ask(&mut ws, "a").await, "v1 1 a");

    let not_a_component = t
        .swap(
            "live",
            Update {
                wasm: b"\0asm but not really".to_vec(),
                config: None,
            },
        )
        .await;
    assert!(
        matches!(&not_a_component, Err(SwapError::Load(e)) if e.to_string().contains("invalid component")),
        "{not_a_component:?}"
    );
    assert_eq!(ask(&mut ws, "b").await, "v1 2 b");

    let does_not_instantiate = t
        .swap(
            "live",
            Update {
                wasm: component("oversized"),
                config: None,
            },
        )
        .await;
    assert!(
        matches!(&does_not_instantiate, Err(SwapError::Instantiate { .. })),
        "{does_not_instantiate:?}"
    );
    assert_eq!(ask(&mut ws, "c").await, "v1 3 c");

    let restore_refused = t
        .swap(
            "live",
            Update {
                wasm: component("versioned"),
                config: config(&[("version", "v2"), ("refuse-restore", "yes")]),
            },
        )
        .await;
    match &restore_refused {
        Err(SwapError::State { reason, .. }) => assert!(reason.contains("refuse"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(ask(&mut ws, "d").await, "v1 4 d");

    let status = &t.router.tenants()[0];
    assert_eq!(
        (status.counters.failed_swaps, status.counters.swaps),
        (3, 0)
    );
    assert_eq!(status.previous, None);
    assert!(matches!(
        t.rollback("live").await,
        Err(SwapError::NoPreviousVersion(_))
    ));
}

/// The `probe` plugin (no `lifecycle`) on every path.
fn probe(name: &str, instances: usize) -> PluginSpec {
    let mut spec = PluginSpec::new(name, component("probe"), vec![Route::parse("/").unwrap()]);
    spec.instances = instances;
    spec
}

#[tokio::test]
async fn without_lifecycle_the_new_version_hears_of_each_open_connection() {
    let t = Served::start(vec![probe("p", 1)]).await;
    let (mut first, first_id) = probe_client(&t.url).await;
    let (mut second, second_id) = probe_client(&t.url).await;
    let outcome = t
        .swap(
            "p",
            Update {
                wasm: component("probe"),
                config: config(&[("color", "blue")]),
            },
        )
        .await
        .unwrap();
    assert!(outcome.changed && !outcome.state_carried);
    // The new instance's first events: one `connected` per connection.
    assert_eq!(
        text(&mut first).await,
        format!("event connected {first_id}")
    );
    assert_eq!(
        text(&mut second).await,
        format!("event connected {second_id}")
    );
    assert_eq!(ask(&mut first, "config color").await, "config blue");
    assert_eq!(ask(&mut second, "echo still here").await, "still here");
}

#[tokio::test]
async fn instances_address_each_others_connections_and_swap_together() {
    let t = Served::start(vec![probe("p", 2)]).await;
    // Round robin: consecutive connections land on different instances.
    let (mut a, a_id) = probe_client(&t.url).await;
    let (mut b, b_id) = probe_client(&t.url).await;
    let mut ids = [a_id, b_id];
    ids.sort_unstable();
    assert_eq!(
        ask(&mut a, "connections").await,
        format!("connections {},{}", ids[0], ids[1])
    );
    a.send(Message::text(format!("send-to {b_id} across")))
        .await
        .unwrap();
    assert_eq!(text(&mut b).await, "across");
    b.send(Message::text("subscribe room")).await.unwrap();
    assert_eq!(text(&mut b).await, "subscribed room");
    a.send(Message::text("publish room to all")).await.unwrap();
    assert_eq!(text(&mut b).await, "to all");
    assert_eq!(t.router.tenants()[0].instances, 2);

    t.swap(
        "p",
        Update {
            wasm: component("probe"),
            config: config(&[("color", "red")]),
        },
    )
    .await
    .unwrap();
    for (ws, id) in [(&mut a, a_id), (&mut b, b_id)] {
        assert_eq!(text(ws).await, format!("event connected {id}"));
        assert_eq!(ask(ws, "config color").await, "config red");
    }
    // Subscriptions are the host's: they survive the swap.
    a.send(Message::text("publish room after")).await.unwrap();
    assert_eq!(text(&mut b).await, "after");
}

#[tokio::test]
async fn a_restore_error_on_one_instance_keeps_every_instance_on_the_old_version() {
    let mut spec = versioned("live", "v1");
    spec.instances = 3;
    let t = Served::start(vec![spec]).await;
    // On instance 0; instances 1 and 2 serve nobody yet, so only 0 has a
    // state that `refuse-restore` refuses.
    let mut first = ws_connect(&t.url).await;
    assert_eq!(ask(&mut first, "a").await, "v1 1 a");
    let refused = t
        .swap(
            "live",
            Update {
                wasm: component("versioned"),
                config: config(&[("version", "v2"), ("refuse-restore", "yes")]),
            },
        )
        .await;
    match &refused {
        Err(SwapError::State { instance, .. }) => assert_eq!(*instance, 0),
        other => panic!("{other:?}"),
    }
    assert_eq!(ask(&mut first, "b").await, "v1 2 b");
    // Instances 1 and 2, ready to switch, stayed on v1 too.
    let mut clients = vec![first];
    for _ in 0..2 {
        let mut ws = ws_connect(&t.url).await;
        assert_eq!(ask(&mut ws, "b").await, "v1 1 b");
        clients.push(ws);
    }
    t.swap(
        "live",
        Update {
            wasm: component("versioned"),
            config: config(&[("version", "v2")]),
        },
    )
    .await
    .unwrap();
    let mut answers = Vec::new();
    for ws in &mut clients {
        answers.push(ask(ws, "c").await);
    }
    assert_eq!(answers, ["v2 3 c", "v2 2 c", "v2 2 c"]);
    t.server.shutdown().await;
}
