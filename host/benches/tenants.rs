//! Figures, not assertions: how much one tenant's abuse slows another
//! tenant's clients. A `calm` tenant (the `versioned` plugin: an echo that
//! prefixes its version) is measured with
//! sequential echo round trips of 32 B while a `noisy` tenant on the same
//! server is
//!
//! - idle (the unloaded figure),
//! - flooded by clients sending as fast as they can, with and without a
//!   tenant rate,
//! - hit by clients whose messages make its plugin allocate until the
//!   memory cap stops it (the `membomb` plugin: a trap, close 1011, a
//!   fresh instance, again and again),
//! - flooded while a third tenant (`loop`) runs every message it gets
//!   until its CPU deadline: all three share the executor pool.
//!
//! It also times hot swaps of the calm tenant (SIGHUP, alternating two
//! configurations) under its own traffic: how long its clients wait.
//!
//!     cargo bench -p wsserver --bench tenants
//!     WSSERVER_BIN=path/to/other/wsserver cargo bench -p wsserver --bench tenants
//!
//! Load generator and server share the machine's cores, so the figures
//! compare the scenarios on one machine; they are not absolute capacity.

#[path = "../../tests/common/plugins.rs"]
#[allow(dead_code)] // shared with the tests; this bench uses a part
mod plugins;

#[path = "support/ready_line.rs"]
mod ready_line;

use ready_line::listening_url;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use plugins::plugin_file;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long each scenario measures round trips: longer than a rate's
/// refill period (1 s), so paused and read phases of a flood both count.
const MEASURE: Duration = Duration::from_secs(5);
/// Round trips before measuring (first calls, caches).
const WARM_UP: Duration = Duration::from_millis(300);
/// Concurrent clients of the noisy tenant.
const NOISY_CLIENTS: usize = 32;
/// Bound on any one wait.
const LIMIT: Duration = Duration::from_secs(30);

/// The `wsserver` binary, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(config: &Path) -> Self {
        // WSSERVER_BIN runs another build (e.g. main's) for a side-by-side
        // comparison.
        let binary = std::env::var_os("WSSERVER_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_wsserver").into());
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .args(["--set", "LogLevel=0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wsserver");
        let url = listening_url(&mut child);
        Self { child, url }
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// The configuration: `calm` on /calm, `noisy` on /noisy with `noisy`
/// extra keys; `version` is the calm tenant's configuration value.
fn write_config(path: &Path, noisy_plugin: &str, noisy: &str, version: &str) {
    let text = format!(
        "[settings]\nMaxConnections = 2000\n\
         [[tenant]]\nname = \"calm\"\nfile = {}\nroutes = [\"/calm\"]\n[tenant.config]\nversion = \"{version}\"\n\
         [[tenant]]\nname = \"looper\"\nfile = {}\nroutes = [\"/loop\"]\n\
         [[tenant]]\nname = \"noisy\"\nfile = {}\nroutes = [\"/noisy\"]\nmemory_limit = 67108864\n{noisy}\n",
        quoted(&plugin_file("versioned")),
        quoted(&plugin_file("loop")),
        quoted(&plugin_file(noisy_plugin)),
    );
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).expect("write config");
    std::fs::rename(&partial, path).expect("replace config");
}

async fn connect(url: &str) -> Ws {
    tokio::time::timeout(LIMIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect")
        .0
}

/// Sequential round trips on one calm connection for `period`; latencies
/// sorted. Runs on a thread and runtime of its own, so the noisy clients'
/// tasks never delay the measuring one inside this process (they still
/// share the cores).
async fn round_trips(url: &str, period: Duration) -> Vec<Duration> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        raise_priority();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(measure_round_trips(&url, period))
    })
    .await
    .expect("measuring thread")
}

/// Gives the calling thread (the calm client) a higher CPU priority than
/// the noisy clients, when allowed (root or CAP_SYS_NICE). On a real node
/// the flooding clients are other machines; here they share the two cores
/// with the server and the calm client, and without this the calm client's
/// own wait for a core is most of its p99 (see bench/RESULTS.md). The
/// server keeps its normal priority: it still competes with the flood.
fn raise_priority() {
    let Some(tid) = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|link| Some(link.file_name()?.to_str()?.to_owned()))
    else {
        return;
    };
    let raised = Command::new("renice")
        .args(["-n", "-10", "-p", &tid])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    static WARNED: std::sync::Once = std::sync::Once::new();
    if !raised {
        WARNED.call_once(|| eprintln!("note: could not raise the calm client's priority; its p99 includes waiting for a core"));
    }
}

async fn measure_round_trips(url: &str, period: Duration) -> Vec<Duration> {
    let mut ws = connect(&format!("{url}/calm")).await;
    let payload = "x".repeat(32);
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < period {
        let sent = Instant::now();
        ws.send(Message::text(payload.clone())).await.expect("send");
        loop {
            match tokio::time::timeout(LIMIT, ws.next()).await {
                Ok(Some(Ok(Message::Text(_)))) => break,
                Ok(Some(Ok(_))) => continue,
                other => panic!("calm tenant stopped answering: {other:?}"),
            }
        }
        latencies.push(sent.elapsed());
    }
    latencies.sort_unstable();
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Noisy clients sending 32 B messages back to back until aborted;
/// counts the answers they get.
fn flood(url: &str, served: Arc<AtomicU64>) -> Vec<JoinHandle<()>> {
    (0..NOISY_CLIENTS)
        .map(|_| {
            let (url, served) = (format!("{url}/noisy"), served.clone());
            tokio::spawn(async move {
                let ws = connect(&url).await;
                let (mut sink, mut stream) = ws.split();
                let reader = tokio::spawn(async move {
                    while let Some(Ok(message)) = stream.next().await {
                        if message.is_text() {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
                let payload = "n".repeat(32);
                loop {
                    for _ in 0..64 {
                        if sink.feed(Message::text(payload.clone())).await.is_err() {
                            return;
                        }
                    }
                    if sink.flush().await.is_err() {
                        return;
                    }
                    if reader.is_finished() {
                        return;
                    }
                }
            })
        })
        .collect()
}

/// Clients that each send one message to the memory bomb (which traps
/// under its cap and closes them with 1011), then reconnect, until
/// aborted; counts the closes.
fn bombs(url: &str, served: Arc<AtomicU64>) -> Vec<JoinHandle<()>> {
    fatal_messages(&format!("{url}/noisy"), served)
}

/// Clients of the looping tenant (each message runs to its CPU deadline,
/// then close 1011) beside the noisy tenant's flood: both on the shared
/// executors at once.
fn loop_and_flood(url: &str, served: Arc<AtomicU64>) -> Vec<JoinHandle<()>> {
    let mut tasks = fatal_messages(&format!("{url}/loop"), Arc::new(AtomicU64::new(0)));
    tasks.extend(flood(url, served));
    tasks
}

/// Four clients each sending one message that ends in a close, then
/// reconnecting, until aborted; counts the closes.
fn fatal_messages(url: &str, served: Arc<AtomicU64>) -> Vec<JoinHandle<()>> {
    (0..4)
        .map(|_| {
            let (url, served) = (url.to_owned(), served.clone());
            tokio::spawn(async move {
                loop {
                    let mut ws = connect(&url).await;
                    if ws.send(Message::text("boom")).await.is_err() {
                        continue;
                    }
                    while let Ok(Some(Ok(message))) = tokio::time::timeout(LIMIT, ws.next()).await {
                        if message.is_close() {
                            served.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            })
        })
        .collect()
}

/// Starts a noisy load against a server: its clients count the answers
/// they get (echoes, or closes after a trap).
type Load = fn(&str, Arc<AtomicU64>) -> Vec<JoinHandle<()>>;

/// Runs one scenario and prints its line.
async fn scenario(
    name: &str,
    dir: &Path,
    noisy_plugin: &str,
    noisy: &str,
    load: Option<Load>,
) -> Duration {
    let stem: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let config = dir.join(format!("{stem}.toml"));
    write_config(&config, noisy_plugin, noisy, "v1");
    let server = Server::start(&config);
    // Warm up the calm path (first calls, caches).
    round_trips(&server.url, WARM_UP).await;
    let served = Arc::new(AtomicU64::new(0));
    let loaders = load.map(|start| start(&server.url, served.clone()));
    if loaders.is_some() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let started = Instant::now();
    let before = served.load(Ordering::Relaxed);
    let latencies = round_trips(&server.url, MEASURE).await;
    let noisy_rate =
        (served.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64();
    // A flooding client may be stuck writing to a server that stopped
    // reading it (backpressure): do not wait for it.
    for task in loaders.into_iter().flatten() {
        task.abort();
    }
    let p50 = percentile(&latencies, 0.5);
    println!(
        "{name:<34} calm {:>5} round trips p50 {:>8.1?} p99 {:>8.1?} max {:>8.1?}   noisy answered {:>9.0}/s",
        latencies.len(),
        p50,
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
        noisy_rate
    );
    p50
}

/// Swaps the calm tenant back and forth by SIGHUP while a client does
/// round trips; prints how long a swap takes end to end and the slowest
/// round trip.
async fn swaps(dir: &Path) {
    const SWAPS: usize = 20;
    let config = dir.join("swaps.toml");
    write_config(&config, "echo", "", "v0");
    let server = Server::start(&config);
    let mut ws = connect(&format!("{}/calm", server.url)).await;
    let mut swap_times = Vec::new();
    let mut worst = Duration::ZERO;
    for version in 1..=SWAPS {
        write_config(&config, "echo", "", &format!("v{version}"));
        let asked = Instant::now();
        server.hangup();
        let prefix = format!("v{version} ");
        loop {
            let sent = Instant::now();
            ws.send(Message::text("ping")).await.expect("send");
            let reply = match tokio::time::timeout(LIMIT, ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
                other => panic!("calm tenant stopped answering: {other:?}"),
            };
            worst = worst.max(sent.elapsed());
            if reply.starts_with(&prefix) {
                break;
            }
            assert!(asked.elapsed() < LIMIT, "swap {version} never showed");
        }
        swap_times.push(asked.elapsed());
    }
    swap_times.sort_unstable();
    println!(
        "hot swap by SIGHUP ({SWAPS}x)             signal to first new answer p50 {:>8.1?} max {:>8.1?}; slowest round trip meanwhile {:>8.1?}",
        percentile(&swap_times, 0.5),
        swap_times[SWAPS - 1],
        worst
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    runtime.block_on(async {
        println!(
            "calm: sequential 32 B echo round trips for {MEASURE:?}; noisy: {NOISY_CLIENTS} flooding clients or 4 memory-bomb clients"
        );
        let unloaded = scenario("unloaded", dir.path(), "echo", "", None).await;
        let limited = scenario(
            "flood, tenant_rate = 1000/s (drop)",
            dir.path(),
            "echo",
            "tenant_rate = 1000",
            Some(flood),
        )
        .await;
        let unlimited = scenario("flood, no rate", dir.path(), "echo", "", Some(flood)).await;
        let bombed = scenario("memory bomb (64 MiB cap)", dir.path(), "membomb", "", Some(bombs)).await;
        let looped = scenario(
            "4 looping clients + flood, no rate",
            dir.path(),
            "echo",
            "",
            Some(loop_and_flood),
        )
        .await;
        for (name, p50) in [
            ("flood with a tenant rate", limited),
            ("flood without a rate", unlimited),
            ("memory bomb", bombed),
            ("looping tenant + flood", looped),
        ] {
            println!(
                "{name:<34} calm p50 = {:.2}x unloaded",
                p50.as_secs_f64() / unloaded.as_secs_f64()
            );
        }
        swaps(dir.path()).await;
    });
}
