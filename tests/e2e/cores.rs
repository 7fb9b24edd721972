//! Which serving threads new connections go to (AdaptiveCores), seen from
//! outside: a thread that serves a connection is woken by its traffic, so
//! its count of voluntary context switches grows; a thread with no
//! connection sleeps through it.

use std::collections::BTreeMap;

use crate::common::*;

/// Voluntary context switches of each extra serving thread
/// (`wsserver-core-N`), by name.
fn core_switches(server: &ServerProcess) -> BTreeMap<String, u64> {
    let mut switches = BTreeMap::new();
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.pid())).expect("procfs");
    for task in tasks.flatten() {
        let path = task.path();
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        let name = name.trim();
        if !name.starts_with("wsserver-core-") {
            continue;
        }
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        let count = status
            .lines()
            .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("voluntary_ctxt_switches in status");
        switches.insert(name.to_owned(), count);
    }
    switches
}

/// Opens `clients` connections and echoes `rounds` messages on each;
/// returns how much each extra core's switch count grew meanwhile.
async fn traffic_per_core(server: &ServerProcess, clients: usize, rounds: usize) -> Vec<u64> {
    let before = core_switches(server);
    assert_eq!(before.len(), 2, "two extra serving threads: {before:?}");
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(ws_connect(&server.url).await);
    }
    for round in 0..rounds {
        for (i, ws) in conns.iter_mut().enumerate() {
            assert_echo(ws, &format!("client {i} round {round}")).await;
        }
    }
    let after = core_switches(server);
    before
        .iter()
        .map(|(name, count)| after[name] - count)
        .collect()
}

/// The server on three serving threads with `settings`, its admin API's
/// URL, and how many threads take new connections at the start.
async fn start_on_three_threads(settings: &[&str]) -> (ServerProcess, String, Option<f64>) {
    let mut args = vec!["--threads", "3", "--admin", "127.0.0.1:0"];
    for setting in settings {
        args.extend(["--set", setting]);
    }
    let mut server = ServerProcess::start(&args).await;
    let admin = server.admin_url().await;
    let accepting = metric(&admin, "wsserver_cores_accepting").await;
    (server, admin, accepting)
}

#[tokio::test]
async fn new_connections_go_to_one_core_while_the_load_is_light() {
    // ParkDelay=0: no parking lot, whose clock would wake the threads.
    let (server, admin, accepting) = start_on_three_threads(&["ParkDelay=0"]).await;
    assert_eq!(accepting, Some(1.0));
    let grew = traffic_per_core(&server, 6, 20).await;
    // 6 clients × 20 echoes: a thread serving any of them would have been
    // woken about a hundred times.
    assert!(grew.iter().all(|&n| n <= 3), "extra cores woke: {grew:?}");
    assert_eq!(metric(&admin, "wsserver_cores_accepting").await, Some(1.0));
}

#[tokio::test]
async fn without_adaptive_cores_connections_are_spread_over_every_core_and_park_there() {
    let (server, admin, accepting) =
        start_on_three_threads(&["AdaptiveCores=false", "ParkDelay=100"]).await;
    assert_eq!(accepting, Some(3.0));
    let grew = traffic_per_core(&server, 6, 20).await;
    assert!(
        grew.iter().all(|&n| n >= 10),
        "an extra core idled: {grew:?}"
    );

    // Each core's parking lot takes its own idle connections, and they
    // answer from there.
    let mut conns = Vec::new();
    for _ in 0..6 {
        conns.push(ws_connect(&server.url).await);
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(&admin, "wsserver_connections_parked").await != Some(6.0) {
        assert!(tokio::time::Instant::now() < deadline, "not all parked");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for (i, ws) in conns.iter_mut().enumerate() {
        assert_echo(ws, &format!("parked {i}")).await;
    }
}
