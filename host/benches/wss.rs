//! Figures, not assertions: echo throughput of `wss://` against plain
//! `ws://`, and full handshakes per second, measured against the real
//! `wsserver` binary (`--native-echo`, so no plugin cost) on 127.0.0.1 with a
//! tokio-tungstenite client over tokio-rustls in this process.
//!
//!     cargo bench -p wsserver --bench wss
//!
//! Client and server share the machine's cores, so the figures are for
//! comparing modes on one machine, not absolute capacity.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// Concurrent connections of the echo runs.
const CONNECTIONS: usize = 4;
/// (message size, messages per connection) of the echo runs: about a
/// second each.
const ECHO_RUNS: &[(usize, usize)] = &[(64, 500_000), (16 * 1024, 20_000)];
/// Each figure is the median of this many runs.
const REPEATS: usize = 3;
/// Concurrent clients opening connections, and connections each opens.
const OPENERS: usize = 8;
const OPENS_PER_OPENER: usize = 100;
/// Idle connections held open to measure the server's memory per connection.
const IDLE_CONNECTIONS: usize = 1000;
/// Bound on any one run.
const LIMIT: Duration = Duration::from_secs(120);

/// The `wsserver` binary, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(args: &[String]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsserver"))
            .args(["--native-echo", "--listen", "127.0.0.1:0"])
            .args(["--set", "MaxConnections=10000"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start wsserver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        let addr = line
            .trim()
            .rsplit_once("://")
            .and_then(|(_, addr)| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected ready line {line:?}"));
        Self { child, addr }
    }
}

impl Server {
    /// Resident memory of the server process in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("process status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the client connects.
#[derive(Clone)]
enum Mode {
    Plain,
    Tls(Arc<ClientConfig>),
}

/// A self-signed ECDSA P-256 certificate for localhost, written as a
/// PEMKeyFile for the server.
struct Certificate {
    _dir: tempfile::TempDir,
    path: String,
    der: CertificateDer<'static>,
}

impl Certificate {
    fn new() -> Self {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.pem");
        std::fs::write(&path, format!("{}{}", key.serialize_pem(), cert.pem())).expect("write");
        Self {
            _dir: dir,
            path: path.display().to_string(),
            der: cert.der().clone(),
        }
    }

    fn server_args(&self, protocols: &str) -> Vec<String> {
        [
            "UseSSL=True".to_owned(),
            format!("SSLCertStore={}", self.path),
            format!("SSLEnabledProtocols={protocols}"),
        ]
        .into_iter()
        .flat_map(|s| ["--set".to_owned(), s])
        .collect()
    }

    /// A client trusting the certificate, offering one TLS version.
    fn client(&self, version: &'static SupportedProtocolVersion) -> Mode {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).expect("root");
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[version])
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        // Every handshake full: no session resumption.
        config.resumption = rustls::client::Resumption::disabled();
        Mode::Tls(Arc::new(config))
    }
}

/// Sends `count` messages of `size` bytes on each connection while reading
/// the echoes; returns messages per second over all connections.
async fn echo_rate<S>(connections: Vec<WebSocketStream<S>>, size: usize, count: usize) -> f64
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let payload = vec![0x5a_u8; size];
    let start = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|ws| {
            let payload = payload.clone();
            tokio::spawn(async move {
                let (mut tx, mut rx) = ws.split();
                let sending = tokio::spawn(async move {
                    for _ in 0..count {
                        tx.feed(Message::binary(payload.clone()))
                            .await
                            .expect("send");
                    }
                    tx.flush().await.expect("flush");
                    tx
                });
                let mut received = 0;
                while received < count {
                    match rx.next().await.expect("open").expect("echo") {
                        Message::Binary(data) => {
                            assert_eq!(data.len(), size);
                            received += 1;
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                drop(sending.await.expect("sender"));
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("connection");
    }
    (count * CONNECTIONS) as f64 / start.elapsed().as_secs_f64()
}

/// Opens a plain WebSocket: TCP, then the upgrade.
async fn open_plain(addr: SocketAddr) -> WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .expect("upgrade");
    ws
}

/// Opens a WebSocket over TLS: TCP, a full handshake (the client keeps no
/// sessions), then the upgrade.
async fn open_tls(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let (ws, _) = tokio_tungstenite::client_async(format!("wss://localhost:{}/", addr.port()), tls)
        .await
        .expect("upgrade");
    ws
}

/// Opens CONNECTIONS connections in `mode` and runs [`echo_rate`] on them.
async fn echo(addr: SocketAddr, mode: &Mode, size: usize, count: usize) -> f64 {
    match mode {
        Mode::Plain => {
            let mut conns = Vec::new();
            for _ in 0..CONNECTIONS {
                conns.push(open_plain(addr).await);
            }
            echo_rate(conns, size, count).await
        }
        Mode::Tls(config) => {
            let mut conns = Vec::new();
            for _ in 0..CONNECTIONS {
                conns.push(open_tls(addr, config.clone()).await);
            }
            echo_rate(conns, size, count).await
        }
    }
}

/// Connections opened per second (to an open WebSocket, then closed by
/// dropping), by OPENERS clients at once.
async fn opens_per_second(addr: SocketAddr, mode: &Mode) -> f64 {
    let start = Instant::now();
    let openers: Vec<_> = (0..OPENERS)
        .map(|_| {
            let mode = mode.clone();
            tokio::spawn(async move {
                for _ in 0..OPENS_PER_OPENER {
                    match &mode {
                        Mode::Plain => drop(open_plain(addr).await),
                        Mode::Tls(config) => drop(open_tls(addr, config.clone()).await),
                    }
                }
            })
        })
        .collect();
    for opener in openers {
        opener.await.expect("opener");
    }
    (OPENERS * OPENS_PER_OPENER) as f64 / start.elapsed().as_secs_f64()
}

/// The resident memory per open, idle connection (after a message each, so
/// read paths have run) of a fresh server, in KiB.
async fn idle_kib_per_connection(args: &[String], mode: &Mode) -> f64 {
    let server = Server::start(args);
    async fn hold<S>(mut ws: WebSocketStream<S>) -> WebSocketStream<S>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        ws.send(Message::text("hi")).await.expect("send");
        ws.next().await.expect("open").expect("echo");
        ws
    }
    let before = server.rss_kib();
    let (mut plain, mut tls) = (Vec::new(), Vec::new());
    for _ in 0..IDLE_CONNECTIONS {
        match mode {
            Mode::Plain => plain.push(hold(open_plain(server.addr).await).await),
            Mode::Tls(config) => tls.push(hold(open_tls(server.addr, config.clone()).await).await),
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = server.rss_kib();
    drop((plain, tls));
    after.saturating_sub(before) as f64 / IDLE_CONNECTIONS as f64
}

fn median(mut figures: Vec<f64>) -> f64 {
    figures.sort_by(f64::total_cmp);
    figures[figures.len() / 2]
}

fn main() {
    let cert = Certificate::new();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let modes = [
        ("ws", Vec::new(), Mode::Plain),
        (
            "wss TLS 1.3",
            cert.server_args("12288"),
            cert.client(&rustls::version::TLS13),
        ),
        (
            "wss TLS 1.2",
            cert.server_args("3072"),
            cert.client(&rustls::version::TLS12),
        ),
    ];
    runtime.block_on(async {
        tokio::time::timeout(LIMIT * 4, async {
            let mut plain_rates = Vec::new();
            for (name, args, mode) in &modes {
                let server = Server::start(args);
                for (i, &(size, count)) in ECHO_RUNS.iter().enumerate() {
                    let mut rates = Vec::new();
                    for _ in 0..REPEATS {
                        let run = echo(server.addr, mode, size, count);
                        rates.push(
                            tokio::time::timeout(LIMIT, run)
                                .await
                                .expect("echo in time"),
                        );
                    }
                    let rate = median(rates);
                    let mb = rate * size as f64 / 1e6;
                    let versus = match plain_rates.get(i) {
                        Some(plain) => format!(", {:.0}% of ws", rate / plain * 100.0),
                        None => {
                            plain_rates.push(rate);
                            String::new()
                        }
                    };
                    println!(
                        "echo {name:<12} {size:>6} B x {CONNECTIONS} connections: \
                         {rate:>8.0} msg/s, {mb:>7.1} MB/s each way{versus}"
                    );
                }
                let mut rates = Vec::new();
                for _ in 0..REPEATS {
                    let run = opens_per_second(server.addr, mode);
                    rates.push(
                        tokio::time::timeout(LIMIT, run)
                            .await
                            .expect("opens in time"),
                    );
                }
                let opens = median(rates);
                println!(
                    "open {name:<12} {opens:>8.0} connections/s (TCP, TLS if any, upgrade; \
                     {OPENERS} clients at once, full handshakes)"
                );
                drop(server);
                let idle = tokio::time::timeout(LIMIT, idle_kib_per_connection(args, mode))
                    .await
                    .expect("idle connections in time");
                println!(
                    "idle {name:<12} {idle:>8.1} KiB of server memory per open connection \
                     ({IDLE_CONNECTIONS} connections)"
                );
            }
        })
        .await
        .expect("benchmark in time");
    });
}
