//! permessage-deflate in the real server: echo throughput and memory per
//! idle connection, with the extension off, in the Shared memory mode (the
//! default) and in the Dedicated one.
//!
//! `cargo bench --bench deflate_server` (release build of the binary) prints
//! figures and checks nothing about speed. Options after `--`:
//! `--idle N` connections for the Off/Shared memory figures (default
//! 10000), `--idle-dedicated N` for Dedicated (default 1000: ~420 KiB each),
//! `--seconds S` per throughput run (default 3).
//!
//! Throughput is given per CPU-second the server used (from /proc), since
//! the client shares the machine's two cores; the client sends precompressed
//! frames and does not inflate the echoes, so its cost stays small.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, FlushCompress};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn main() {
    let mut idle = 10_000;
    let mut idle_dedicated = 1_000;
    let mut seconds = 3.0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse::<f64>().ok());
        match arg.as_str() {
            "--idle" => idle = value().map_or(idle, |v| v as usize),
            "--idle-dedicated" => idle_dedicated = value().map_or(idle_dedicated, |v| v as usize),
            "--seconds" => seconds = value().unwrap_or(seconds),
            _ => {} // cargo bench passes --bench
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(idle, idle_dedicated, Duration::from_secs_f64(seconds)));
}

/// The three ways to run: settings, the client's offer, and whether the
/// server's echoes come back compressed.
struct Mode {
    name: &'static str,
    settings: &'static [&'static str],
    /// The client's Sec-WebSocket-Extensions offer.
    offer: &'static str,
}

const MODES: [Mode; 3] = [
    Mode {
        name: "deflate off",
        settings: &["EnablePermessageDeflate=False"],
        offer: "permessage-deflate",
    },
    Mode {
        name: "Shared (default)",
        settings: &[],
        offer: "permessage-deflate",
    },
    Mode {
        // The client resets its compressor so it can send the same
        // precompressed frame; the server keeps its compressor's context.
        name: "Dedicated",
        settings: &["DeflateMemoryMode=Dedicated"],
        offer: "permessage-deflate; client_no_context_takeover",
    },
];

async fn run(idle: usize, idle_dedicated: usize, duration: Duration) {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let chat = json(2_000);
    let big = json(16_000);
    let small = b"{\"type\":\"ping\",\"id\":12345}".to_vec();

    println!("== echo throughput, 50 connections x 16 messages in flight ==");
    println!(
        "{:<18} {:>9} {:>14} {:>16} {:>12}",
        "mode", "message", "messages/s", "msgs/server-CPU-s", "wire out/in"
    );
    for mode in &MODES {
        for (label, message) in [("26 B", &small), ("2 KB JSON", &chat), ("16 KB JSON", &big)] {
            let figures = throughput(mode, message, 50, 16, duration).await;
            println!(
                "{:<18} {:>9} {:>14.0} {:>16.0} {:>11.0}%",
                mode.name,
                label,
                figures.rate,
                figures.per_cpu_second,
                figures.wire_ratio * 100.0
            );
        }
    }

    println!();
    println!("== memory per idle connection (server RSS), after one 2 KB message each way ==");
    for mode in &MODES {
        let count = if mode.name == "Dedicated" {
            idle_dedicated
        } else {
            idle
        };
        let (handshake_only, after_message) = idle_memory(mode, &chat, count).await;
        println!(
            "{:<18} {count:>6} connections: {:>7.0} B each after the handshake, {:>7.0} B each after a message ({:.0} MiB per 10k)",
            mode.name,
            handshake_only,
            after_message,
            after_message * 10_000.0 / (1024.0 * 1024.0)
        );
    }
}

struct Throughput {
    rate: f64,
    per_cpu_second: f64,
    /// Bytes the server sent per byte of uncompressed payload.
    wire_ratio: f64,
}

async fn throughput(
    mode: &Mode,
    message: &[u8],
    connections: usize,
    depth: usize,
    duration: Duration,
) -> Throughput {
    let server = Server::start(mode.settings);
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(Client::connect(server.addr, mode.offer).await);
    }
    let compressed = clients[0].compressed;
    let frame = client_frame(message, compressed);
    let batch: Vec<u8> = frame.repeat(depth);
    // Warm up: one batch each.
    for c in &mut clients {
        c.round_trip(&batch, depth).await;
    }
    let cpu_before = server.cpu_seconds();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut c in clients {
        let batch = batch.clone();
        tasks.push(tokio::spawn(async move {
            let (mut messages, mut wire) = (0u64, 0u64);
            while start.elapsed() < duration {
                wire += c.round_trip(&batch, depth).await;
                messages += depth as u64;
            }
            (messages, wire)
        }));
    }
    let (mut messages, mut wire) = (0, 0);
    for task in tasks {
        let (m, w) = task.await.expect("client task");
        messages += m;
        wire += w;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds() - cpu_before;
    Throughput {
        rate: messages as f64 / elapsed,
        per_cpu_second: messages as f64 / cpu.max(1e-9),
        wire_ratio: wire as f64 / (messages as f64 * message.len() as f64),
    }
}

/// Server RSS per connection: after `count` handshakes, and after each has
/// also sent and received one message (zlib state engaged both ways).
async fn idle_memory(mode: &Mode, message: &[u8], count: usize) -> (f64, f64) {
    let server = Server::start(mode.settings);
    let base = server.rss_bytes();
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        clients.push(Client::connect(server.addr, mode.offer).await);
    }
    settle().await;
    let after_handshake = server.rss_bytes();
    let frame = client_frame(message, clients[0].compressed);
    for c in &mut clients {
        c.round_trip(&frame, 1).await;
    }
    settle().await;
    let after_message = server.rss_bytes();
    let per = |rss: u64| rss.saturating_sub(base) as f64 / count as f64;
    (per(after_handshake), per(after_message))
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// A `wsserver` process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(settings: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wsserver"));
        command.args(["--listen", "127.0.0.1:0", "--set", "MaxConnections=19000"]);
        command.args(["--set", "LogLevel=0"]);
        for setting in settings {
            command.args(["--set", setting]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wsserver");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("ready line");
        let addr = line
            .trim()
            .strip_prefix("listening on ws://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected ready line {line:?}"));
        Self { child, addr }
    }

    fn proc_file(&self, name: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{name}", self.child.id())).expect("/proc")
    }

    fn rss_bytes(&self) -> u64 {
        let pages: u64 = self
            .proc_file("statm")
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("statm");
        pages * 4096
    }

    /// User plus system CPU time in seconds.
    fn cpu_seconds(&self) -> f64 {
        let stat = self.proc_file("stat");
        let after_name = &stat[stat.rfind(')').expect("stat") + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        ticks as f64 / 100.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    stream: TcpStream,
    /// permessage-deflate was agreed.
    compressed: bool,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr, offer: &str) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut reader = BufReader::new(stream);
        let request = format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: {offer}\r\n\r\n"
        );
        reader
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("request");
        let mut compressed = false;
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).await.expect("response");
            if line == "\r\n" {
                break;
            }
            compressed |= line
                .to_ascii_lowercase()
                .starts_with("sec-websocket-extensions: permessage-deflate");
        }
        assert!(reader.buffer().is_empty());
        Self {
            stream: reader.into_inner(),
            compressed,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    /// Sends `batch` (holding `messages` frames) and reads that many echoes;
    /// returns the bytes received.
    async fn round_trip(&mut self, batch: &[u8], messages: usize) -> u64 {
        self.stream.write_all(batch).await.expect("send");
        let mut received = 0;
        let mut wire = 0u64;
        while received < messages {
            let mut used = 0;
            while let Some((fin, len)) = frame_len(&self.buf[used..]) {
                used += len;
                received += usize::from(fin);
            }
            wire += used as u64;
            self.buf.drain(..used);
            if received >= messages {
                break;
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "server closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
        wire
    }
}

/// A complete server frame at the start of `buf`: (FIN, its length).
fn frame_len(buf: &[u8]) -> Option<(bool, usize)> {
    let [b0, b1, ..] = *buf else { return None };
    let (len, header) = match b1 & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    (buf.len() >= header + len).then_some((b0 & 0x80 != 0, header + len))
}

/// One masked text frame carrying `message`, compressed when agreed (a
/// fresh stream per message, which every negotiation here allows).
fn client_frame(message: &[u8], compressed: bool) -> Vec<u8> {
    let payload = if compressed {
        let mut c = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(message.len() + 64);
        c.compress_vec(message, &mut out, FlushCompress::Sync)
            .expect("deflate");
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        out.truncate(out.len() - 4);
        out
    } else {
        message.to_vec()
    };
    let mut frame = vec![if compressed { 0xC1 } else { 0x81 }];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// JSON chat records, about `size` bytes.
fn json(size: usize) -> Vec<u8> {
    let mut out = String::from("[");
    let mut i = 0u64;
    while out.len() < size {
        out.push_str(&format!(
            r#"{{"id":{},"user":"user{}","room":"general","text":"message {} says hello to the room"}},"#,
            i * 2654435761 % 100_000,
            i % 23,
            i * 7919 % 1000
        ));
        i += 1;
    }
    out.push(']');
    out.into_bytes()
}
