//! Helpers shared by the end-to-end tests: the real `wsserver` binary as a
//! child process, a raw client that writes frames byte by byte as a broken
//! or hostile client would, tokio-tungstenite as an independent client, and
//! (in `tls`) certificates and TLS clients.
#![allow(dead_code)] // each test binary uses a different subset

pub mod plugins;
pub mod tls;

#[allow(unused_imports)] // each test binary uses a different subset
pub use plugins::{embedded_plugin, plugin_file};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, Lines,
};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

/// Upper bound for anything a test waits for.
pub const WAIT: Duration = Duration::from_secs(10);

/// Upper bound for an admin API answer: a swap compiles the component it
/// is given first (a 12 MB JavaScript one takes 5-20 s on a busy 2-core
/// machine) before answering.
pub const ANSWER_WAIT: Duration = Duration::from_secs(60);

/// The `wsserver` binary built for these tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wsserver"))
}

/// A running `wsserver` process, killed when dropped.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    pub url: String,
    stderr: Arc<Mutex<String>>,
    /// What it prints after the ready line.
    stdout: Lines<BufReader<ChildStdout>>,
}

impl ServerProcess {
    /// Starts `wsserver --listen 127.0.0.1:0 ARGS...` and waits for its
    /// ready line.
    pub async fn start(args: &[&str]) -> Self {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Self::start_exact(&all).await
    }

    /// Starts the server on the TOML file `config` with the admin API;
    /// returns it and the admin API's base URL.
    pub async fn start_config_with_admin(config: &std::path::Path) -> (Self, String) {
        let config = config.display().to_string();
        let mut server = Self::start(&["--admin", "127.0.0.1:0", "--config", &config]).await;
        let admin = server.admin_url().await;
        (server, admin)
    }

    /// Starts `wsserver ARGS...` as given.
    pub async fn start_exact(args: &[&str]) -> Self {
        Self::start_with_env(args, &[]).await
    }

    /// Starts `wsserver ARGS...` with extra environment variables (and no
    /// admin token from the test's own environment).
    pub async fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch(args, env, WAIT).await
    }

    /// Starts `wsserver ARGS...`, giving it `ready_within` to print its
    /// ready line: compiling a large (JavaScript or Python) component
    /// takes longer than `WAIT`.
    pub async fn start_waiting(args: &[&str], ready_within: Duration) -> Self {
        Self::launch(args, &[], ready_within).await
    }

    async fn launch(args: &[&str], env: &[(&str, &str)], ready_within: Duration) -> Self {
        let mut child = Command::new(binary())
            .args(args)
            .env("RUST_LOG", "debug")
            .env_remove("WSSERVER_ADMIN_TOKEN")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start wsserver");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = match timeout(ready_within, out.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => panic!(
                "wsserver {args:?} printed no ready line ({other:?}); stderr:\n{}",
                stderr.lock().unwrap()
            ),
        };
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let addr = url
            .split_once("://")
            .map_or(url.as_str(), |(_, addr)| addr)
            .parse()
            .unwrap_or_else(|_| panic!("bad address in {line:?}"));
        Self {
            child,
            addr,
            url,
            stderr,
            stdout: out,
        }
    }

    /// The admin API's base URL, from the line after the ready line
    /// (`admin on http://HOST:PORT`).
    pub async fn admin_url(&mut self) -> String {
        let line = match timeout(WAIT, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => panic!(
                "no admin line ({other:?}); stderr:\n{}",
                self.stderr.lock().unwrap()
            ),
        };
        line.strip_prefix("admin on ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
            .to_owned()
    }

    /// The next line the server prints to stdout.
    pub async fn next_stdout_line(&mut self) -> String {
        match timeout(WAIT, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => panic!(
                "no line on stdout ({other:?}); stderr:\n{}",
                self.stderr.lock().unwrap()
            ),
        }
    }

    /// Waits for the server to exit by itself.
    pub async fn wait_exit(mut self) -> std::process::ExitStatus {
        timeout(WAIT, self.child.wait())
            .await
            .expect("server exits in time")
            .expect("wait")
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("server still running")
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (up to `WAIT`) until the server's stderr holds `needle`;
    /// returns everything it wrote.
    pub async fn stderr_containing(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = self.stderr();
            if text.contains(needle) || tokio::time::Instant::now() >= deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGHUP: the server reads its tenants again.
    pub async fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .await
            .expect("kill");
        assert!(status.success(), "kill -HUP failed");
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.pid();
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill");
        timeout(WAIT, self.child.wait())
            .await
            .expect("server exits after SIGTERM")
            .expect("wait")
    }

    /// Resident memory of the server process in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS:")
            .trim_end_matches("kB")
            .trim()
            .parse()
            .expect("VmRSS")
    }

    /// The server process's OS threads.
    pub fn threads(&self) -> usize {
        self.status_field("Threads:").parse().expect("Threads")
    }

    /// A field of `/proc/PID/status`, trimmed.
    fn status_field(&self, name: &str) -> String {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in /proc/PID/status"))
            .trim()
            .to_owned()
    }
}

/// A TOML string holding `path`.
pub fn toml_path(path: &std::path::Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// The value of one series in a `/metrics` scrape.
pub async fn metric(admin: &str, series: &str) -> Option<f64> {
    let reply = http("GET", admin, "/metrics", None, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// Echo round trips on `url` until `until` completes (while a hostile
/// plugin runs elsewhere): every message answered; prints the latency
/// seen and returns how many round trips there were.
pub async fn echo_stays_responsive(
    url: &str,
    until: impl std::future::Future<Output = ()>,
) -> usize {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = ws_connect(url).await;
    let mut worst = Duration::ZERO;
    let mut count = 0usize;
    tokio::pin!(until);
    loop {
        let sent = std::time::Instant::now();
        let body = format!("m{count}");
        ws.send(Message::text(body.clone())).await.unwrap();
        let reply = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("echo answered in time")
            .unwrap()
            .unwrap();
        assert_eq!(reply, Message::text(body));
        worst = worst.max(sent.elapsed());
        count += 1;
        tokio::select! {
            _ = &mut until => break,
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
    println!("echo on {url}: {count} round trips, worst {worst:?}");
    count
}

/// The status line of the answer to an upgrade request for `path`.
pub async fn upgrade_status(server: &ServerProcess, path: &str, origin: Option<&str>) -> String {
    let mut client = RawClient::tcp(server.addr).await;
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n"
    );
    client.send(request.as_bytes()).await;
    let head = client.read_http_head().await;
    head.lines().next().unwrap_or_default().to_owned()
}

/// Runs `wsserver ARGS...` to completion (for argument errors).
pub async fn run_to_exit(args: &[&str]) -> std::process::Output {
    timeout(
        WAIT,
        Command::new(binary())
            .args(args)
            .env_remove("WSSERVER_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("wsserver exits")
    .expect("run wsserver")
}

/// Builds one client frame; `mask` None sends it unmasked (a violation).
pub fn frame(first_byte: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![first_byte];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A masked client frame with a fixed mask.
pub fn masked(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    frame(first_byte, payload, Some([0x5a, 0xa5, 0x3c, 0xc3]))
}

/// A frame the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFrame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// The close code of a close frame (None when it has no payload).
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, 8, "not a close frame: {self:?}");
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

pub const UPGRADE_REQUEST: &str = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A client speaking raw bytes, to send what well-behaved clients cannot.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    pub async fn tcp(addr: SocketAddr) -> Self {
        let stream = timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and completes the opening handshake, retrying while the
    /// route's tenant is still starting (see [`STARTING_WAIT`]).
    pub async fn connect(addr: SocketAddr) -> Self {
        let deadline = tokio::time::Instant::now() + STARTING_WAIT;
        loop {
            let mut c = Self::tcp(addr).await;
            c.send(UPGRADE_REQUEST.as_bytes()).await;
            let head = c.read_http_head().await;
            let starting = head.starts_with("HTTP/1.1 503") && head.contains("is starting");
            if starting && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            assert!(
                head.starts_with("HTTP/1.1 101"),
                "handshake refused: {head}"
            );
            return c;
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Reads an HTTP response head (status line and headers).
    pub async fn read_http_head(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return String::from_utf8_lossy(&head).into_owned();
            }
            assert!(
                self.fill().await,
                "connection closed before a response; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Reads the whole HTTP response (head and body) until the server
    /// closes the connection.
    pub async fn read_http_response(&mut self) -> String {
        while self.fill().await {}
        String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned()
    }

    /// Reads more bytes; false on EOF or reset.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match timeout(WAIT, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(_) => panic!("server sent nothing for {WAIT:?}"),
        }
    }

    /// The next frame, or None when the connection ends first.
    pub async fn read_frame(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Reads frames until a close frame; returns its code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            let f = self
                .read_frame()
                .await
                .expect("server closed the connection without a close frame");
            assert!(f.rsv == 0, "server frame with RSV bits: {f:?}");
            if f.opcode == 8 {
                return f.close_code();
            }
        }
    }

    /// Whether the server closes the TCP connection within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match timeout(wait, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

fn parse_server_frame(buf: &[u8]) -> Option<(ServerFrame, usize)> {
    let [b0, b1, ..] = *buf else { return None };
    assert!(b1 & 0x80 == 0, "server frames must not be masked");
    let (len, at) = match b1 & 0x7F {
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
    let payload = buf.get(at..at + len)?.to_vec();
    Some((
        ServerFrame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x7,
            opcode: b0 & 0x0F,
            payload,
        },
        at + len,
    ))
}

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// How long a test waits for a tenant whose component is still compiling
/// (the server answers 503 "is starting" meanwhile; on a loaded machine
/// even a small component can take longer than the start-up's wait).
pub const STARTING_WAIT: Duration = Duration::from_secs(120);

/// Connects with tokio-tungstenite, retrying while the route's tenant is
/// still starting.
pub async fn ws_connect(url: &str) -> Ws {
    use tokio_tungstenite::tungstenite::Error;
    let deadline = tokio::time::Instant::now() + STARTING_WAIT;
    loop {
        match timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
        {
            Ok((ws, _)) => return ws,
            Err(Error::Http(response))
                if response.status() == 503
                    && response
                        .headers()
                        .get("x-wsserver-reason")
                        .is_some_and(|r| r.to_str().unwrap_or("").contains("is starting"))
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("websocket connect: {e:?}"),
        }
    }
}

/// Sends a text message and expects it echoed.
pub async fn assert_echo<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    text: &str,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text(text)).await.expect("send");
    let reply = timeout(WAIT, ws.next())
        .await
        .expect("echo in time")
        .expect("stream open")
        .expect("message");
    assert_eq!(reply, Message::text(text));
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl HttpReply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One HTTP/1.1 request (hyper's client) to `base` + `path`, with a bearer
/// token and a body when given.
pub async fn http(
    method: &str,
    base: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> HttpReply {
    let body = body.unwrap_or_default().as_bytes().to_vec();
    http_with(method, base, path, token, None, body).await
}

/// [`http`] with any body and, when given, its `Content-Type`.
pub async fn http_with(
    method: &str,
    base: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> HttpReply {
    use http_body_util::{BodyExt, Full};
    let uri: hyper::Uri = format!("{base}{path}").parse().expect("URL");
    let authority = uri.authority().expect("HOST:PORT").to_string();
    let stream = timeout(WAIT, TcpStream::connect(&authority))
        .await
        .expect("connect in time")
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("HTTP handshake");
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(uri.path_and_query().expect("path").as_str())
        .header(hyper::header::HOST, &authority);
    if let Some(token) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(content_type) = content_type {
        request = request.header(hyper::header::CONTENT_TYPE, content_type);
    }
    let body = bytes::Bytes::from(body);
    let request = request.body(Full::new(body)).expect("request");
    let response = timeout(ANSWER_WAIT, sender.send_request(request))
        .await
        .expect("answer in time")
        .expect("answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = timeout(WAIT, response.into_body().collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes();
    HttpReply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).expect("UTF-8 body"),
    }
}

/// The next text message, past pings and pongs (tungstenite reports them
/// and answers pings itself).
pub async fn text(ws: &mut Ws) -> String {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match timeout(WAIT, ws.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(Message::Pong(_) | Message::Ping(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// Sends one text message.
pub async fn say(ws: &mut Ws, message: &str) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text(message)).await.expect("send");
}

/// Sends one text message and returns the next text message.
pub async fn ask(ws: &mut Ws, message: &str) -> String {
    say(ws, message).await;
    text(ws).await
}

/// Connects to a probe plugin (Rust, JavaScript or Python) and reads its
/// `event connected ID`.
pub async fn probe_client(url: &str) -> (Ws, u64) {
    let mut ws = ws_connect(url).await;
    let hello = text(&mut ws).await;
    let id = hello
        .strip_prefix("event connected ")
        .unwrap_or_else(|| panic!("first message {hello:?}"))
        .parse()
        .unwrap();
    (ws, id)
}
