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
//! Every scenario runs twice: with the load generator and the server
//! sharing the machine's cores, and with the server on the first half of
//! the cores and the clients on the other half (`taskset`), as when the
//! clients are other machines. Sharing, the flood's own clients compete
//! with the server for the cores, and the calm tenant's tail mostly shows
//! the kernel's time slices; split, it shows the server's own fairness.
//! The figures compare scenarios on one machine; they are not absolute
//! capacity.

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

/// Where the server and the clients run.
#[derive(Clone)]
enum Placement {
    /// All of them on all the cores.
    Shared,
    /// The server on `server` and the clients on `clients` (CPU lists).
    Split { server: String, clients: String },
}

impl Placement {
    /// Shared, and split when there are two cores or more and `taskset`.
    fn all() -> Vec<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let taskset = Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        let mut all = vec![Self::Shared];
        if cores >= 2 && taskset {
            let half = cores / 2;
            all.push(Self::Split {
                server: format!("0-{}", half - 1),
                clients: format!("{half}-{}", cores - 1),
            });
        } else {
            eprintln!("note: one core or no taskset: the split placement is skipped");
        }
        all
    }

    fn describe(&self) -> String {
        match self {
            Self::Shared => "server and clients share every core".into(),
            Self::Split { server, clients } => {
                format!("server on cores {server}, clients on cores {clients}")
            }
        }
    }

    /// Moves this process (the clients, every thread) to its cores.
    fn place_clients(&self) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let list = match self {
            Self::Shared => format!("0-{}", cores - 1),
            Self::Split { clients, .. } => clients.clone(),
        };
        let placed = Command::new("taskset")
            .args(["-a", "-p", "-c", &list, &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        assert!(placed || matches!(self, Self::Shared), "taskset failed");
    }
}

impl Server {
    fn start(config: &Path, placement: &Placement) -> Self {
        // WSSERVER_BIN runs another build (e.g. main's) for a side-by-side
        // comparison.
        let binary = std::env::var_os("WSSERVER_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_wsserver").into());
        let mut command = match placement {
            Placement::Shared => Command::new(binary),
            Placement::Split { server, .. } => {
                let mut command = Command::new("taskset");
                command.args(["-c", server]).arg(binary);
                command
            }
        };
        let mut child = command
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

/// Runs one scenario and prints its line; returns the calm tenant's p50
/// and p99.
async fn scenario(
    name: &str,
    placement: &Placement,
    dir: &Path,
    noisy_plugin: &str,
    noisy: &str,
    load: Option<Load>,
) -> (Duration, Duration) {
    let stem: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let config = dir.join(format!("{stem}.toml"));
    write_config(&config, noisy_plugin, noisy, "v1");
    let server = Server::start(&config, placement);
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
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!(
        "{name:<34} calm {:>5} round trips p50 {:>8.1?} p99 {:>8.1?} max {:>8.1?}   noisy answered {:>9.0}/s",
        latencies.len(),
        p50,
        p99,
        latencies[latencies.len() - 1],
        noisy_rate
    );
    (p50, p99)
}

/// Swaps the calm tenant back and forth by SIGHUP while a client does
/// round trips; prints how long a swap takes end to end and the slowest
/// round trip.
async fn swaps(dir: &Path) {
    const SWAPS: usize = 20;
    let config = dir.join("swaps.toml");
    write_config(&config, "echo", "", "v0");
    let server = Server::start(&config, &Placement::Shared);
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
        for placement in Placement::all() {
            println!("\n{}:", placement.describe());
            placement.place_clients();
            scenarios(&placement, dir.path()).await;
        }
        Placement::Shared.place_clients();
        println!();
        swaps(dir.path()).await;
    });
}

/// Every noisy scenario beside the unloaded one, then the ratios of the
/// calm tenant's p50 and p99 to the unloaded figures.
async fn scenarios(placement: &Placement, dir: &Path) {
    let unloaded = scenario("unloaded", placement, dir, "echo", "", None).await;
    let loaded = [
        (
            "flood, tenant_rate = 1000/s (drop)",
            "echo",
            "tenant_rate = 1000",
            flood as Load,
        ),
        ("flood, no rate", "echo", "", flood),
        ("memory bomb (64 MiB cap)", "membomb", "", bombs),
        (
            "4 looping clients + flood, no rate",
            "echo",
            "",
            loop_and_flood,
        ),
    ];
    let mut figures = Vec::new();
    for (name, plugin, noisy, load) in loaded {
        figures.push((
            name,
            scenario(name, placement, dir, plugin, noisy, Some(load)).await,
        ));
    }
    for (name, (p50, p99)) in figures {
        println!(
            "{name:<34} calm p50 = {:.2}x, p99 = {:.2}x unloaded",
            p50.as_secs_f64() / unloaded.0.as_secs_f64(),
            p99.as_secs_f64() / unloaded.1.as_secs_f64()
        );
    }
}
