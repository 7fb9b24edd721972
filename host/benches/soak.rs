//! A bounded soak run, figures not assertions: clients churn across several
//! tenants for SOAK_SECONDS (default 600) while the tenants are hot-swapped
//! every few seconds, and the server's resident memory, open descriptors
//! and threads are sampled as it goes.
//!
//! Each client connects to one tenant (the `versioned` plugin: an echo that
//! prefixes its version and a per-connection count), checks every answer
//! (the count must go on across swaps), then leaves one of three ways: a
//! closing handshake, a bare TCP close, or a reset (SO_LINGER 0). At the
//! end every message sent must have had its answer, and after the clients
//! are gone memory, descriptors and threads should be back near where the
//! warm-up left them.
//!
//!     SOAK_SECONDS=600 cargo bench -p wsserver --bench soak

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
use plugins::plugin_file;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

const TENANTS: usize = 4;
const CLIENTS: usize = 32;
const SWAP_EVERY: Duration = Duration::from_secs(5);
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Before the first sample that counts as the baseline.
const WARM_UP: Duration = Duration::from_secs(20);
/// Bound on any one wait.
const LIMIT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Tally {
    connections: AtomicU64,
    sent: AtomicU64,
    answered: AtomicU64,
    wrong: AtomicU64,
    failed_connects: AtomicU64,
    closes: [AtomicU64; 3],
}

/// The server's resident memory, descriptors and threads.
#[derive(Clone, Copy, Debug)]
struct Sample {
    rss_kib: u64,
    fds: usize,
    threads: u64,
}

fn sample(pid: u32) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Sample {
        rss_kib: field("VmRSS:"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count()),
        threads: field("Threads:"),
    }
}

fn write_config(path: &Path, version: &str) {
    let plugin = plugin_file("versioned");
    let mut text = String::from("[settings]\nMaxConnections = 4000\nLogLevel = 0\n");
    for t in 0..TENANTS {
        text += &format!(
            "[[tenant]]\nname = \"t{t}\"\nfile = {:?}\nroutes = [\"/t{t}\"]\n[tenant.config]\nversion = \"{version}\"\n",
            plugin.display().to_string()
        );
    }
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).expect("write config");
    std::fs::rename(&partial, path).expect("replace config");
}

fn start(config: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsserver"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start wsserver");
    let url = listening_url(&mut child);
    (child, url)
}

/// One client's life: connect, `messages` checked round trips, leave by
/// `how` (0 closing handshake, 1 TCP close, 2 reset).
async fn session(url: &str, messages: u64, how: usize, tally: &Tally) {
    let Ok(Ok((mut ws, _))) =
        tokio::time::timeout(LIMIT, tokio_tungstenite::connect_async(url)).await
    else {
        tally.failed_connects.fetch_add(1, Ordering::Relaxed);
        return;
    };
    tally.connections.fetch_add(1, Ordering::Relaxed);
    for n in 1..=messages {
        let body = format!("m{n}");
        tally.sent.fetch_add(1, Ordering::Relaxed);
        if ws.send(Message::text(body.clone())).await.is_err() {
            return;
        }
        match tokio::time::timeout(LIMIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(reply)))) => {
                // "VERSION COUNT TEXT": the count goes on across swaps.
                let mut parts = reply.splitn(3, ' ');
                let (_, count, text) = (parts.next(), parts.next(), parts.next());
                if count == Some(&n.to_string()) && text == Some(&body) {
                    tally.answered.fetch_add(1, Ordering::Relaxed);
                } else {
                    tally.wrong.fetch_add(1, Ordering::Relaxed);
                    eprintln!("unexpected answer {reply:?} to {body:?}");
                }
            }
            other => {
                tally.wrong.fetch_add(1, Ordering::Relaxed);
                eprintln!("no answer to {body:?}: {other:?}");
                return;
            }
        }
    }
    tally.closes[how].fetch_add(1, Ordering::Relaxed);
    match how {
        0 => {
            let _ = ws.close(None).await;
            while let Ok(Some(Ok(_))) = tokio::time::timeout(LIMIT, ws.next()).await {}
        }
        1 => drop(ws),
        _ => {
            if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
                let _ = tcp.set_zero_linger();
            }
            drop(ws);
        }
    }
}

fn print_sample(at: Duration, s: Sample, tally: &Tally) {
    println!(
        "{:>6.0} s  rss {:>8} KiB  fds {:>5}  threads {:>3}  connections {:>8}  messages {:>9}",
        at.as_secs_f64(),
        s.rss_kib,
        s.fds,
        s.threads,
        tally.connections.load(Ordering::Relaxed),
        tally.answered.load(Ordering::Relaxed),
    );
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let run_for = Duration::from_secs(seconds);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("soak.toml");
    write_config(&config, "v1");
    let (mut child, url) = start(&config);
    let pid = child.id();
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let before = sample(pid);
    println!(
        "soak: {TENANTS} tenants, {CLIENTS} clients churning, a swap every {SWAP_EVERY:?}, {seconds} s"
    );
    print_sample(Duration::ZERO, before, &tally);

    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (url, tally) = (url.clone(), tally.clone());
            tokio::spawn(async move {
                let mut turn = c;
                while started.elapsed() < run_for {
                    let tenant = turn % TENANTS;
                    let messages = 1 + (turn as u64 * 7) % 20;
                    session(&format!("{url}/t{tenant}"), messages, turn % 3, &tally).await;
                    turn += CLIENTS;
                }
            })
        })
        .collect();

    let mut swaps = 0u64;
    let mut baseline = None;
    let mut next_sample = SAMPLE_EVERY;
    while started.elapsed() < run_for {
        tokio::time::sleep(SWAP_EVERY).await;
        swaps += 1;
        write_config(&config, if swaps % 2 == 1 { "v2" } else { "v1" });
        let _ = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status();
        if started.elapsed() >= next_sample {
            next_sample += SAMPLE_EVERY;
            let s = sample(pid);
            if baseline.is_none() && started.elapsed() >= WARM_UP {
                baseline = Some(s);
            }
            print_sample(started.elapsed(), s, &tally);
        }
    }
    for client in clients {
        let _ = client.await;
    }
    // The last connections finish closing (CloseTimeout is 5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let end = sample(pid);
    print_sample(started.elapsed(), end, &tally);
    let baseline = baseline.unwrap_or(before);
    let count = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "\nconnections {} (closing handshake {}, TCP close {}, reset {}), failed connects {}",
        count(&tally.connections),
        count(&tally.closes[0]),
        count(&tally.closes[1]),
        count(&tally.closes[2]),
        count(&tally.failed_connects),
    );
    println!(
        "messages sent {}, answered correctly {}, wrong or missing {}; {swaps} hot swaps",
        count(&tally.sent),
        count(&tally.answered),
        count(&tally.wrong),
    );
    println!(
        "after warm-up -> end: rss {} -> {} KiB, fds {} -> {}, threads {} -> {}",
        baseline.rss_kib, end.rss_kib, baseline.fds, end.fds, baseline.threads, end.threads
    );
    let _ = child.kill();
    let _ = child.wait();
}
