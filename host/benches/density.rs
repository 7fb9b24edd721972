//! Figures, not assertions: what ten thousand tenants cost in one process.
//!
//! One TOML declares N tenants (`/t0` .. `/tN-1`, each the built-in echo,
//! `memory_limit = 16 MiB`, `hibernate_after_ms`). The bench starts the
//! real binary on it twice (the first run fills the compiled-component
//! cache, the second is timed), then:
//!
//! 1. ready time, OS threads and RSS before any client;
//! 2. one client per tenant (kept open), one echo each: all must answer;
//!    RSS with every instance live;
//! 3. waits until every instance has hibernated (connections still open):
//!    RSS again;
//! 4. the cold path: a sample of the hibernated tenants each get one
//!    message, one at a time; round trip p50/p99, then the same again
//!    with the instances awake (the warm path) for comparison.
//!
//! Run it with:
//!
//!     cargo bench -p wsserver --bench density
//!     DENSITY_TENANTS=2000 cargo bench -p wsserver --bench density
//!
//! Client and server share the machine's cores; memory figures are the
//! server's alone (/proc/PID/status).

#[path = "support/ready_line.rs"]
mod ready_line;

use ready_line::listening_url;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Bound on any one wait.
const LIMIT: Duration = Duration::from_secs(60);
/// Clients connecting at once.
const CONCURRENCY: usize = 64;
/// Idle time before an instance hibernates.
const HIBERNATE_AFTER_MS: u64 = 3_000;
/// Tenants whose cold path is timed.
const COLD_SAMPLE: usize = 1_000;

struct Server {
    child: Child,
    url: String,
    started: Instant,
    ready: Duration,
}

impl Server {
    fn start(config: &Path, cache: &Path) -> Self {
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsserver"))
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .arg("--plugin-cache")
            .arg(cache)
            .args(["--set", "LogLevel=0", "--set", "MaxConnections=20000"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start wsserver");
        let url = listening_url(&mut child);
        let ready = started.elapsed();
        Self {
            child,
            url,
            started,
            ready,
        }
    }

    /// A field of /proc/PID/status, in its unit (kB for memory).
    fn status(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in status"))
    }

    fn rss_kib(&self) -> u64 {
        self.status("VmRSS:")
    }

    fn threads(&self) -> u64 {
        self.status("Threads:")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(path: &Path, tenants: usize) {
    let mut text = String::new();
    for i in 0..tenants {
        text.push_str(&format!(
            "[[tenant]]\nname = \"t{i}\"\nfile = \"builtin:echo\"\nroute = \"/t{i}\"\n\
             memory_limit = 16777216\nhibernate_after_ms = {HIBERNATE_AFTER_MS}\n"
        ));
    }
    std::fs::write(path, text).expect("write config");
}

async fn connect(url: &str) -> Ws {
    tokio::time::timeout(LIMIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect")
        .0
}

/// Sends one message and waits for its echo; the round trip.
async fn round_trip(ws: &mut Ws, text: &str) -> Duration {
    let sent = Instant::now();
    ws.send(Message::text(text)).await.expect("send");
    loop {
        match tokio::time::timeout(LIMIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str() == text => return sent.elapsed(),
            Ok(Some(Ok(Message::Text(t)))) => panic!("{text}: got {t}"),
            Ok(Some(Ok(_))) => continue,
            other => panic!("{text}: no echo: {other:?}"),
        }
    }
}

/// One client per tenant, `CONCURRENCY` connecting at once, one echo
/// each; the clients, in tenant order, and how many answered.
async fn connect_all(url: &str, tenants: usize) -> (Vec<Ws>, usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENCY {
        let url = url.to_owned();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            for i in (worker..tenants).step_by(CONCURRENCY) {
                let mut ws = connect(&format!("{url}/t{i}")).await;
                round_trip(&mut ws, &format!("hello t{i}")).await;
                mine.push((i, ws));
            }
            mine
        });
    }
    let mut all = Vec::with_capacity(tenants);
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("client task"));
    }
    all.sort_by_key(|(i, _)| *i);
    let answered = all.len();
    (all.into_iter().map(|(_, ws)| ws).collect(), answered)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn per_tenant(kib: u64, base: u64, tenants: usize) -> f64 {
    kib.saturating_sub(base) as f64 / tenants as f64
}

fn main() {
    let tenants: usize = std::env::var("DENSITY_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache");
    let empty = dir.path().join("empty.toml");
    write_config(&empty, 1);
    let config = dir.path().join("tenants.toml");
    write_config(&config, tenants);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());

    // A server with one tenant, twice: the first fills the cache, the
    // second (loading from it, as every later start does) is the
    // process's own footprint.
    drop(Server::start(&empty, &cache));
    let base = Server::start(&empty, &cache);
    std::thread::sleep(Duration::from_millis(300));
    let base_rss = base.rss_kib();
    drop(base);

    let server = Server::start(&config, &cache);
    std::thread::sleep(Duration::from_millis(300));
    let idle_rss = server.rss_kib();
    println!("{tenants} tenants (built-in echo, memory_limit 16 MiB), {cores} cores");
    println!(
        "ready (component compiled, from the cache) {:>8.2?}",
        server.ready
    );
    println!(
        "OS threads before any client          {:>8}",
        server.threads()
    );
    println!(
        "RSS: one-tenant server {base_rss} KiB; {tenants} tenants, no client {idle_rss} KiB = {:.1} KiB per tenant",
        per_tenant(idle_rss, base_rss, tenants)
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let started = Instant::now();
        let (mut clients, answered) = connect_all(&server.url, tenants).await;
        let connect_time = started.elapsed();
        let live_rss = server.rss_kib();
        println!(
            "one client each, one echo each: {answered}/{tenants} answered in {connect_time:.2?}; threads {}",
            server.threads()
        );
        println!(
            "RSS with every instance live and its connection open: {live_rss} KiB = {:.1} KiB per tenant",
            per_tenant(live_rss, base_rss, tenants)
        );

        // Every instance hibernates; the connections stay open.
        tokio::time::sleep(Duration::from_millis(HIBERNATE_AFTER_MS + 1_500)).await;
        let hibernated_rss = server.rss_kib();
        println!(
            "RSS after they hibernated (connections open): {hibernated_rss} KiB = {:.1} KiB per tenant; threads {}",
            per_tenant(hibernated_rss, base_rss, tenants),
            server.threads()
        );
        let gib = |kib_per_tenant: f64| kib_per_tenant * 100_000.0 / (1024.0 * 1024.0);
        println!(
            "so 100,000 tenants: {:.1} GiB idle, {:.1} GiB hibernated with a connection each, {:.1} GiB all live (past max_instances: more processes)",
            gib(per_tenant(idle_rss, base_rss, tenants)),
            gib(per_tenant(hibernated_rss, base_rss, tenants)),
            gib(per_tenant(live_rss, base_rss, tenants)),
        );

        // The cold path, one tenant at a time, then the warm path on the
        // same connections.
        let sample = COLD_SAMPLE.min(tenants);
        let step = (tenants / sample).max(1);
        let mut cold = Vec::with_capacity(sample);
        for i in (0..tenants).step_by(step).take(sample) {
            cold.push(round_trip(&mut clients[i], &format!("wake t{i}")).await);
        }
        let mut warm = Vec::with_capacity(sample);
        for i in (0..tenants).step_by(step).take(sample) {
            warm.push(round_trip(&mut clients[i], &format!("again t{i}")).await);
        }
        cold.sort_unstable();
        warm.sort_unstable();
        println!(
            "first message to a hibernated tenant ({sample} tenants, one at a time): p50 {:.1?} p99 {:.1?} max {:.1?}",
            percentile(&cold, 0.5),
            percentile(&cold, 0.99),
            cold[cold.len() - 1]
        );
        println!(
            "the next message (instance awake):                               p50 {:.1?} p99 {:.1?} max {:.1?}",
            percentile(&warm, 0.5),
            percentile(&warm, 0.99),
            warm[warm.len() - 1]
        );
        println!(
            "server up {:.1?}; OS threads at the end {}",
            server.started.elapsed(),
            server.threads()
        );
    });
}
