//! A connection's task: admission, the TLS handshake with UseSSL, the
//! opening handshake, then one loop that reads, dispatches events, and
//! writes until the closing handshake ends. Everything after admission is
//! generic over the stream, plain TCP or TLS.
//!
//! The loop runs inside a single future: each turn moves frames queued by
//! senders into the write list, writes them in one vectored write, then
//! reads into a per-thread scratch buffer and dispatches what arrived, so an
//! idle connection holds no read buffer and everything a turn produces
//! leaves in one write.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Sleep, sleep, timeout, timeout_at};

use super::ServerShared;
use super::connection::{ConnLimits, ConnShared, ConnState, Connection};
use super::error::io_error_code;
use super::handler::{
    BoxFuture, ConnectionRequest, DataFormat, DataIn, Handler, LogLevel, LogType, OpenRequest,
};
use super::line_mode::LineSplitter;
use super::metrics::RefusalReason;
use super::outbound::{WriteList, empty_slices};
use super::settings::Settings;
use super::static_files::{self, PlainGet};
use super::tls;
use crate::net::listener::configure_accepted;
use crate::net::tls::TlsServerConfig;
use crate::protocol::ProtocolError;
use crate::protocol::close::{ABNORMAL, GOING_AWAY, INTERNAL_ERROR, NO_STATUS};
use crate::protocol::deflate::{Agreement, Deflater, Inflater, Negotiated, negotiate};
use crate::protocol::frame::OpCode;
use crate::protocol::handshake::{
    HandshakeError, check_header, parse_request, write_accept_response, write_error_response,
};
use crate::protocol::receiver::{DataChunk, Incoming, MessageKind, Receiver};

/// Bytes read per read call, into the per-thread scratch buffer.
const READ_BUFFER: usize = 64 * 1024;
/// Rounds a connection may run before yielding to other tasks.
const ROUNDS_PER_TURN: usize = 16;
/// A BufferMessage buffer larger than this is freed after its message.
const KEEP_MESSAGE_BUFFER: usize = 64 * 1024;
/// How long a refused client gets to read our HTTP error response (or TLS
/// close_notify).
pub(super) const REFUSAL_LINGER: Duration = Duration::from_secs(1);

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_BUFFER].into_boxed_slice());
}

/// Serves one accepted TCP connection to its end; `tls` is the server's
/// TLS configuration when UseSSL is on.
pub(crate) async fn serve(
    server: Arc<ServerShared>,
    mut stream: TcpStream,
    remote: SocketAddr,
    tls: Option<Arc<TlsServerConfig>>,
) {
    let settings = server.settings();
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let ip = remote.ip().to_canonical();
    let mut request = ConnectionRequest {
        remote,
        local,
        accept: settings.allowed_clients.matches(ip) && !settings.blocked_clients.matches(ip),
    };
    server.handler.connection_request(&mut request);
    if !request.accept {
        server
            .metrics
            .connection_refused(RefusalReason::ClientFilter);
        server.log(
            None,
            LogLevel::Info,
            LogType::Info,
            format_args!("refused connection from {remote}"),
        );
        return;
    }
    if !server.table.try_admit(settings.max_connections as usize) {
        server
            .metrics
            .connection_refused(RefusalReason::MaxConnections);
        server.log(
            None,
            LogLevel::Info,
            LogType::Error,
            format_args!(
                "refused connection from {remote}: MaxConnections ({}) reached",
                settings.max_connections
            ),
        );
        // A TLS client could not read a plain HTTP answer, and a handshake
        // costs what an overloaded server lacks: it is just closed. Boxed,
        // like the handshakes below: the task's own state stays the size of
        // an idle connection.
        if tls.is_none() {
            Box::pin(refuse(&mut stream, 503, &[], &[], "MaxConnections reached")).await;
        }
        server.table.release();
        return;
    }
    if let Err(e) = configure_accepted(&stream, &settings) {
        server.log(
            None,
            LogLevel::Verbose,
            LogType::Error,
            format_args!("socket options for {remote}: {e}"),
        );
    }
    let conn = Connection(Arc::new(ConnShared {
        id: server.next_connection_id(),
        remote,
        local,
        server: server.clone(),
        limits: ConnLimits {
            max_frame_size: settings.max_frame_size,
            max_send_queue: settings.max_send_queue,
        },
        request: OnceLock::new(),
        tls: OnceLock::new(),
        attachment: OnceLock::new(),
        accept_data: AtomicBool::new(true),
        state: Mutex::new(ConnState::new(
            settings.max_line_length,
            settings.default_timeout,
        )),
    }));
    server.table.insert(conn.clone());
    let registration = Registration { conn: &conn };

    match tls {
        None => {
            run(
                &mut stream,
                &settings,
                handshake_deadline(&settings),
                registration,
            )
            .await
        }
        // Boxed: the TLS state lives on the heap, so a plain connection's
        // task is not sized for it.
        Some(config) => {
            let deadline = handshake_deadline(&settings);
            Box::pin(run_tls(&config, stream, &settings, deadline, registration)).await;
        }
    }
}

/// HandshakeTimeout from now: it bounds the TLS and the WebSocket
/// handshakes together.
fn handshake_deadline(settings: &Settings) -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(settings.handshake_timeout.into())
}

/// The TLS handshake, then the WebSocket over the TLS stream.
async fn run_tls(
    config: &TlsServerConfig,
    stream: TcpStream,
    settings: &Settings,
    deadline: tokio::time::Instant,
    registration: Registration<'_>,
) {
    if let Some(mut stream) = tls::handshake(config, stream, registration.conn, deadline).await {
        run(&mut stream, settings, deadline, registration).await;
    }
}

/// The WebSocket part of a connection: the opening handshake, the session
/// loop and the Disconnected event, after which `registration` is released.
/// The stream stays with the caller, so the task holds it once.
async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    settings: &Settings,
    deadline: tokio::time::Instant,
    registration: Registration<'_>,
) {
    let conn = registration.conn;
    let server = &conn.0.server;
    // The handshake's buffers and futures live on the heap only while it
    // runs, not in every idle connection's task.
    let opening = Box::pin(timeout_at(deadline, open(stream, conn, settings)));
    let opened = match opening.await {
        Ok(Some(opened)) => opened,
        Ok(None) => return,
        Err(_) => {
            server
                .metrics
                .connection_refused(RefusalReason::HandshakeTimeout);
            server.log(
                Some(conn),
                LogLevel::Info,
                LogType::Error,
                format_args!("opening handshake timed out"),
            );
            return;
        }
    };
    server.metrics.connection_accepted();
    // Frames that arrived with the upgrade request are read bytes too.
    if !opened.leftover.is_empty() {
        server.metrics.received(opened.leftover.len(), 0);
    }
    server.log(
        Some(conn),
        LogLevel::Info,
        LogType::Info,
        format_args!(
            "connected {} {}",
            conn.remote_addr(),
            conn.request().map_or("", |r| r.request_uri.as_str())
        ),
    );
    server.handler.connected(conn);
    server.handler.ready_to_send(conn);

    let mut session = Session::new(stream, conn.clone(), settings, opened);
    poll_fn(|cx| session.poll_run(cx)).await;
    server.metrics.connection_closed();
    let (code, description) = session.ending.take().unwrap_or((ABNORMAL, String::new()));
    {
        let mut st = conn.lock();
        st.closing = true;
        st.connected = false;
        st.transfer = None;
    }
    // Gone from Connections during Disconnected, but still admitted until
    // it returns, so Shutdown waits for every Disconnected.
    server.table.unlist(conn.id());
    server.log(
        Some(conn),
        LogLevel::Info,
        LogType::Info,
        format_args!("disconnected {}: {code} {description}", conn.remote_addr()),
    );
    server.handler.disconnected(conn, code, &description);
    // The slot is free before the client sees the connection end, so a
    // client that reconnects at once finds room.
    drop(registration);
    // Best effort: a client that stopped reading cannot hold us here.
    let _ = timeout(REFUSAL_LINGER, session.stream.shutdown()).await;
}

/// Answers a plain GET from the static site the handler names for its
/// path, then ends the connection; false when no site serves it (the
/// caller answers 426).
async fn serve_static<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    conn: &Connection,
    head: &[u8],
) -> bool {
    let server = &conn.0.server;
    let Some(request) = PlainGet::parse(head) else {
        return false;
    };
    let Some(mount) = server.handler.static_site(request.path(), &request.host) else {
        return false;
    };
    let answered = Box::pin(static_files::answer(stream, &request, &mount)).await;
    server.log(
        Some(conn),
        LogLevel::Verbose,
        LogType::Verbose,
        format_args!(
            "GET {} (static): {}",
            request.uri,
            match &answered {
                Ok(status) => status.to_string(),
                Err(e) => e.to_string(),
            }
        ),
    );
    let _ = timeout(REFUSAL_LINGER, stream.shutdown()).await;
    true
}

/// Removes the connection from the table and releases its admission
/// however its task ends.
struct Registration<'a> {
    conn: &'a Connection,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let table = &self.conn.0.server.table;
        table.unlist(self.conn.id());
        table.release();
    }
}

/// What the opening handshake hands the session.
struct Opened {
    /// Bytes the client sent after its request.
    leftover: Vec<u8>,
    /// The permessage-deflate parameters, when the extension was agreed.
    deflate: Option<Negotiated>,
    /// MaxMessageSize for this connection: the setting, or the handler's
    /// smaller limit.
    max_message_size: u64,
}

/// Reads the upgrade request, asks the handler, and answers; or `None`
/// when the connection must end (the refusal has been written).
async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    conn: &Connection,
    settings: &Settings,
) -> Option<Opened> {
    let server = &conn.0.server;
    let max = settings.max_request_header_size;
    let mut buf = Vec::with_capacity(max.min(2048));
    let (request, head_len) = loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().min(max));
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        match parse_request(&buf, max) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) => continue,
            Err(HandshakeError::NotUpgrade) if serve_static(stream, conn, &buf).await => {
                return None;
            }
            Err(e) => {
                server
                    .metrics
                    .connection_refused(RefusalReason::HandshakeError);
                server.log(
                    Some(conn),
                    LogLevel::Info,
                    LogType::Error,
                    format_args!("refused handshake: {e}"),
                );
                refuse(
                    stream,
                    e.status(),
                    e.response_headers(),
                    &[],
                    &format!("{e}\n"),
                )
                .await;
                return None;
            }
        }
    };
    let leftover = buf[head_len..].to_vec();
    drop(buf);
    let open_request = Arc::new(OpenRequest {
        connection_id: conn.id(),
        request_uri: request.uri,
        host: request.host,
        origin: request.origin,
        subprotocols: request.subprotocols,
        extensions: request.extensions,
        request_headers: request.headers,
        remote: conn.remote_addr(),
        local: conn.local_addr(),
        tls: conn.tls().cloned(),
    });
    // Set once, before the handler runs.
    let _ = conn.0.request.set(open_request.clone());
    if settings.log_level >= LogLevel::Verbose as u8 {
        server.log(
            Some(conn),
            LogLevel::Verbose,
            LogType::Verbose,
            format_args!(
                "open request:\r\nGET {} HTTP/1.1\r\n{}",
                open_request.request_uri,
                open_request.request_headers_text()
            ),
        );
    }
    let response = server
        .handler
        .open_request(conn, open_request.clone())
        .await;
    let headers: Vec<(String, String)> = response
        .response_headers
        .into_iter()
        .filter(|(name, value)| match check_header(name, value) {
            Ok(()) if is_handshake_header(name) => {
                server.log(
                    Some(conn),
                    LogLevel::Info,
                    LogType::Error,
                    format_args!(
                        "handler response: {name} belongs to the handshake; header dropped"
                    ),
                );
                false
            }
            Ok(()) => true,
            Err(e) => {
                server.log(
                    Some(conn),
                    LogLevel::Info,
                    LogType::Error,
                    format_args!("handler response: {e}; header dropped"),
                );
                false
            }
        })
        .collect();
    match response.status_code {
        101 => {
            let subprotocol = response.subprotocol.filter(|p| {
                let offered = open_request.subprotocols.iter().any(|o| o == p);
                if !offered {
                    server.log(
                        Some(conn),
                        LogLevel::Info,
                        LogType::Error,
                        format_args!("handler chose subprotocol {p:?}, which the client did not offer; omitted"),
                    );
                }
                offered
            });
            let deflate = negotiate_deflate(conn, &open_request, settings);
            let mut out = Vec::with_capacity(256);
            write_accept_response(
                &mut out,
                &request.key,
                subprotocol.as_deref(),
                deflate
                    .as_ref()
                    .map(|agreement| agreement.response.as_str()),
                &headers,
            );
            stream.write_all(&out).await.ok()?;
            {
                let mut st = conn.lock();
                st.connected = true;
                st.deflate_threshold = deflate.is_some().then_some(settings.deflate.threshold);
            }
            Some(Opened {
                leftover,
                deflate: deflate.map(|agreement| agreement.params),
                max_message_size: connection_message_limit(
                    settings.max_message_size,
                    response.max_message_size,
                ),
            })
        }
        status => {
            server.metrics.connection_refused(RefusalReason::Handler);
            let status = if (200..=599).contains(&status) {
                server.log(
                    Some(conn),
                    LogLevel::Info,
                    LogType::Info,
                    format_args!("handler refused the open request with {status}"),
                );
                status
            } else {
                server.log(
                    Some(conn),
                    LogLevel::Info,
                    LogType::Error,
                    format_args!(
                        "handler answered with invalid status {status}; refusing with 500"
                    ),
                );
                500
            };
            // Refused: no longer among the Connections while the client
            // reads the response.
            server.table.unlist(conn.id());
            refuse(stream, status, &[], &headers, "").await;
            None
        }
    }
}

/// The smaller of MaxMessageSize (0: no limit) and the handler's limit
/// for one connection.
fn connection_message_limit(setting: u64, handler: Option<u64>) -> u64 {
    // 0 means "no limit" to the receiver: a handler's 0 means 1 byte.
    match (setting, handler.map(|limit| limit.max(1))) {
        (_, None) => setting,
        (0, Some(limit)) => limit,
        (setting, Some(limit)) => setting.min(limit),
    }
}

/// Picks permessage-deflate parameters from the client's offers (every
/// Sec-WebSocket-Extensions header, in order) when EnablePermessageDeflate
/// allows it.
fn negotiate_deflate(
    conn: &Connection,
    request: &OpenRequest,
    settings: &Settings,
) -> Option<Agreement> {
    let offers: Vec<&str> = request
        .request_headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, value)| value.as_str())
        .collect();
    if offers.is_empty() {
        return None;
    }
    let agreement = negotiate(&offers, &settings.deflate);
    conn.0.server.log(
        Some(conn),
        LogLevel::Verbose,
        LogType::Verbose,
        format_args!(
            "extensions offered: {}; agreed: {}",
            request.extensions,
            agreement.as_ref().map_or("none", |a| a.response.as_str())
        ),
    );
    agreement
}

/// Headers the server writes itself; a handler may not set them.
fn is_handshake_header(name: &str) -> bool {
    [
        "upgrade",
        "connection",
        "content-length",
        "transfer-encoding",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
        || name
            .get(..14)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("sec-websocket-"))
}

/// Writes an HTTP error response and closes, giving the client a moment
/// to read it (closing with unread input would reset the connection and
/// could destroy the response in flight).
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    headers: &[(&str, &str)],
    extra: &[(String, String)],
    body: &str,
) {
    let mut out = Vec::with_capacity(256);
    write_error_response(&mut out, status, headers, extra, body);
    let linger = async {
        stream.write_all(&out).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), io::Error>(())
    };
    let _ = timeout(REFUSAL_LINGER, linger).await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// Our close frame is queued or sent. With `wait`, reading goes on
    /// until the client's close frame or EOF.
    Closing {
        wait: bool,
    },
    /// The closing handshake is complete: flush and end.
    Finishing,
}

/// A connection failed by a protocol error, waiting for the handler.
struct Failing {
    code: u16,
    description: String,
    flushed: Pin<Box<tokio::time::Timeout<BoxFuture<()>>>>,
}

/// What one round of the loop achieved.
enum Step {
    Progress,
    Blocked,
    Done,
}

/// Per-connection event dispatch: assembles what the receiver yields into
/// DataIn/Ping events per BufferMessage and line mode.
struct Dispatch {
    conn: Connection,
    handler: Arc<dyn Handler>,
    buffer_message: bool,
    message: Vec<u8>,
    kind: MessageKind,
    lines: LineSplitter,
    line_mode: bool,
    max_line_length: usize,
    /// A close frame arrived: its code and reason.
    close: Option<(Option<u16>, String)>,
    /// Data messages completed since the server's counters last took them.
    messages_received: u64,
}

impl Dispatch {
    fn on_event(&mut self, event: Incoming<'_>) -> ControlFlow<()> {
        match event {
            Incoming::Data(chunk) => {
                self.on_data(chunk);
                if self.conn.accepting_data() {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            }
            Incoming::Ping(payload) => {
                self.queue_pong(payload);
                self.handler.ping(&self.conn, payload, false);
                ControlFlow::Continue(())
            }
            Incoming::Pong(payload) => {
                self.handler.ping(&self.conn, payload, true);
                ControlFlow::Continue(())
            }
            Incoming::Close(frame) => {
                self.close = Some((frame.code, frame.reason.to_owned()));
                ControlFlow::Break(())
            }
        }
    }

    fn on_data(&mut self, chunk: DataChunk<'_>) {
        if chunk.first {
            self.kind = chunk.kind;
        }
        if chunk.last {
            self.messages_received += 1;
        }
        let first_format = match self.kind {
            MessageKind::Text => DataFormat::Text,
            MessageKind::Binary => DataFormat::Binary,
        };
        let Self {
            conn,
            handler,
            message,
            lines,
            ..
        } = self;
        let (data, first, eom): (&[u8], bool, bool) = if !self.buffer_message {
            (chunk.data, chunk.first, chunk.last)
        } else if !chunk.last {
            message.extend_from_slice(chunk.data);
            return;
        } else if message.is_empty() {
            (chunk.data, true, true)
        } else {
            message.extend_from_slice(chunk.data);
            (message.as_slice(), true, true)
        };
        if self.line_mode {
            lines.push(data, eom, self.max_line_length, &mut |line, eol, eom| {
                deliver_line(handler.as_ref(), conn, line, eol, eom)
            });
        } else {
            let format = if first {
                first_format
            } else {
                DataFormat::Continuation
            };
            handler.data_in(
                conn,
                &DataIn {
                    format,
                    data,
                    eom,
                    eol: false,
                },
            );
        }
        if self.buffer_message && eom {
            message.clear();
            if message.capacity() > KEEP_MESSAGE_BUFFER {
                *message = Vec::new();
            }
        }
    }

    /// Delivers the lines a pause held back in line mode.
    fn resume_lines(&mut self) {
        let Self {
            conn,
            handler,
            lines,
            max_line_length,
            ..
        } = self;
        lines.resume(*max_line_length, &mut |line, eol, eom| {
            deliver_line(handler.as_ref(), conn, line, eol, eom)
        });
    }

    /// Answers a ping, unless closing or the client is not reading what we
    /// send (RFC 6455 §5.5.3 lets us answer only the latest ping).
    fn queue_pong(&self, payload: &[u8]) {
        let mut st = self.conn.lock();
        if !st.closing && st.out.queued() <= self.conn.0.limits.max_send_queue {
            st.out.push_frame(true, OpCode::Pong, payload);
        }
    }
}

/// Fires DataIn for one line; breaks when the handler paused data.
fn deliver_line(
    handler: &dyn Handler,
    conn: &Connection,
    line: &[u8],
    eol: bool,
    eom: bool,
) -> ControlFlow<()> {
    let event = DataIn {
        format: DataFormat::Continuation,
        data: line,
        eom,
        eol,
    };
    handler.data_in(conn, &event);
    if conn.accepting_data() {
        ControlFlow::Continue(())
    } else {
        ControlFlow::Break(())
    }
}

/// Fires after a quiet period to check for client inactivity.
struct IdleTimer {
    limit: Duration,
    last_activity: Instant,
    sleep: Pin<Box<Sleep>>,
}

struct Session<S> {
    stream: S,
    conn: Connection,
    receiver: Receiver,
    dispatch: Dispatch,
    writes: WriteList,
    /// permessage-deflate's compressor, when negotiated: queued messages
    /// are compressed here, by the connection's own task.
    deflater: Option<Deflater>,
    /// Input read but not yet dispatched: the handler paused data.
    held: Vec<u8>,
    phase: Phase,
    /// After a protocol error input is read only to see the client go.
    discard_input: bool,
    /// A protocol error waits for the handler's earlier events before the
    /// close frame.
    failing: Option<Failing>,
    write_shut: bool,
    wait_for_close_response: bool,
    close_timeout: Duration,
    close_timer: Option<Pin<Box<Sleep>>>,
    idle: Option<IdleTimer>,
    /// The Disconnected event's code and description, once known.
    ending: Option<(u16, String)>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn new(stream: S, conn: Connection, settings: &Settings, opened: Opened) -> Self {
        let handler = conn.0.server.handler.clone();
        let idle = (settings.idle_timeout > 0).then(|| {
            let limit = Duration::from_secs(settings.idle_timeout.into());
            IdleTimer {
                limit,
                last_activity: Instant::now(),
                sleep: Box::pin(sleep(limit)),
            }
        });
        Self {
            stream,
            receiver: Receiver::new(
                opened.max_message_size,
                opened.deflate.as_ref().map(Inflater::new),
            ),
            dispatch: Dispatch {
                conn: conn.clone(),
                handler,
                buffer_message: settings.buffer_message,
                message: Vec::new(),
                kind: MessageKind::Binary,
                lines: LineSplitter::default(),
                line_mode: false,
                max_line_length: settings.max_line_length,
                close: None,
                messages_received: 0,
            },
            conn,
            writes: WriteList::default(),
            deflater: opened
                .deflate
                .map(|negotiated| Deflater::new(&negotiated, &settings.deflate)),
            held: opened.leftover,
            phase: Phase::Open,
            discard_input: false,
            failing: None,
            write_shut: false,
            wait_for_close_response: settings.wait_for_close_response,
            close_timeout: Duration::from_secs(settings.close_timeout.into()),
            close_timer: None,
            idle,
            ending: None,
        }
    }

    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..ROUNDS_PER_TURN {
            match self.round(cx) {
                Step::Progress => continue,
                Step::Done => return Poll::Ready(()),
                Step::Blocked => {}
            }
            if self.park(cx) {
                continue;
            }
            match self.poll_timers(cx) {
                Poll::Ready(true) => return Poll::Ready(()),
                Poll::Ready(false) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
        // Let other connections run; this one resumes at once.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Takes queued work, writes, then reads and dispatches.
    fn round(&mut self, cx: &mut Context<'_>) -> Step {
        self.poll_failing(cx);
        let (queued, close_request, ready, messages_sent) = {
            let mut st = self.conn.lock();
            st.task_active = true;
            // Owed when a refused sender's queue emptied without a write
            // of ours (e.g. a SendFile that ended as its last frame left).
            let ready = st.take_ready_to_send();
            let close_request = st
                .close_request
                .take()
                .filter(|_| self.phase == Phase::Open);
            if let Some((code, reason)) = &close_request {
                Connection::queue_close_frame(&mut st, Some(*code), reason);
            }
            let messages_sent = st.out.move_to(&mut self.writes);
            self.dispatch.line_mode = st.line_mode;
            self.dispatch.max_line_length = st.max_line_length;
            (st.out.queued(), close_request, ready, messages_sent)
        };
        if messages_sent > 0 {
            self.conn.0.server.metrics.messages_sent(messages_sent);
        }
        if ready {
            self.dispatch.handler.ready_to_send(&self.conn);
        }
        if let Some((code, reason)) = close_request {
            self.start_closing(code, reason, self.wait_for_close_response);
        }
        self.compress_queued();

        let flushed = match self.poll_flush(cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(e)) => {
                self.fail_io(e);
                return Step::Done;
            }
            Poll::Pending => false,
        };
        if flushed {
            match self.phase {
                Phase::Finishing | Phase::Closing { wait: false } => return Step::Done,
                Phase::Closing { wait: true } if self.discard_input && !self.write_shut => {
                    // After a protocol error input is no longer parsed, so
                    // the client's close reply would go unseen: FIN after
                    // our close frame lets it end the connection at once.
                    if let Poll::Ready(r) = Pin::new(&mut self.stream).poll_shutdown(cx) {
                        self.write_shut = true;
                        if r.is_err() {
                            return Step::Done;
                        }
                    }
                }
                _ => {}
            }
        }

        // A client that does not read what we send is not read from either
        // (until the socket takes our bytes again), bounding our queue.
        let throttled = !flushed && queued > self.conn.0.limits.max_send_queue / 2;
        if !self.conn.accepting_data() || throttled {
            return Step::Blocked;
        }
        // Lines held back by a pause come before any later input.
        if self.dispatch.lines.has_held() {
            self.dispatch.resume_lines();
            return Step::Progress;
        }
        if self.has_input_waiting() {
            let mut held = std::mem::take(&mut self.held);
            let used = self.process(&mut held);
            self.count_received(0);
            if used < held.len() && !self.receiver.is_closed() {
                held.drain(..used);
                self.held = held;
            }
            return Step::Progress;
        }
        match self.poll_read(cx) {
            Poll::Ready(Ok(true)) => Step::Progress,
            Poll::Ready(Ok(false)) => {
                if self.phase == Phase::Open && self.failing.is_none() {
                    self.ending =
                        Some((ABNORMAL, "connection closed without a close frame".into()));
                }
                Step::Done
            }
            Poll::Ready(Err(e)) => {
                self.fail_io(e);
                Step::Done
            }
            Poll::Pending => Step::Blocked,
        }
    }

    /// Compresses the messages just taken from the queue (outside its lock)
    /// and corrects the queue's byte count.
    fn compress_queued(&mut self) {
        let Some(deflater) = self.deflater.as_mut() else {
            return;
        };
        let deflated = self
            .writes
            .deflate(deflater, self.conn.0.limits.max_frame_size);
        if deflated.before != deflated.after {
            self.conn.lock().out.recount(&deflated);
        }
        if let Some(e) = deflated.error {
            self.fail("server error", INTERNAL_ERROR, e.to_string());
        }
    }

    /// Whether received input waits to be dispatched: held back while data
    /// was paused, or output a paused inflater still holds.
    fn has_input_waiting(&self) -> bool {
        !self.held.is_empty() || (!self.discard_input && self.receiver.has_pending_output())
    }

    /// Writes the write list; accounts what left and fires ReadyToSend
    /// when a refused sender may try again.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Self { stream, writes, .. } = self;
        let mut written = 0;
        let result = loop {
            if writes.is_empty() {
                // TLS holds records the socket did not take yet; for plain
                // TCP this is a no-op.
                break Pin::new(&mut *stream).poll_flush(cx);
            }
            let mut slices = empty_slices();
            let n = writes.io_slices(&mut slices);
            match Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    writes.advance(n);
                    written += n;
                }
                Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                Poll::Pending => break Poll::Pending,
            }
        };
        if written > 0 {
            writes.release_if_idle();
            self.conn.0.server.metrics.bytes_sent(written);
            let limits = self.conn.0.limits;
            let ready = {
                let mut st = self.conn.lock();
                st.out.written(written);
                let queued = st.out.queued();
                if queued <= limits.max_send_queue / 2
                    && let Some(room) = st.transfer.as_mut().and_then(|t| t.room.take())
                {
                    let _ = room.send(());
                }
                st.take_ready_to_send()
            };
            if ready {
                self.dispatch.handler.ready_to_send(&self.conn);
            }
        }
        result
    }

    /// Reads into the scratch buffer and dispatches; `false` at EOF.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.read_into(cx, &mut scratch),
            // Only if a handler polled another connection on this thread
            // from inside an event.
            Err(_) => self.read_into(cx, &mut vec![0; READ_BUFFER]),
        })
    }

    fn read_into(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<bool>> {
        let mut read = ReadBuf::new(buf);
        match ready!(Pin::new(&mut self.stream).poll_read(cx, &mut read)) {
            Ok(()) => {}
            // A TLS client that drops TCP without close_notify: the same as
            // a plain one closing; the WebSocket close tells a clean end.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(false)),
            Err(e) => return Poll::Ready(Err(e)),
        }
        let n = read.filled().len();
        if n == 0 {
            return Poll::Ready(Ok(false));
        }
        if let Some(idle) = self.idle.as_mut() {
            idle.last_activity = Instant::now();
        }
        let input = &mut buf[..n];
        let used = self.process(input);
        self.count_received(n);
        if used < n && !self.receiver.is_closed() {
            self.held.extend_from_slice(&input[used..]);
        }
        Poll::Ready(Ok(true))
    }

    /// Adds one read's bytes, and the messages dispatched since, to the
    /// server's counters.
    fn count_received(&mut self, bytes: usize) {
        let messages = std::mem::take(&mut self.dispatch.messages_received);
        self.conn.0.server.metrics.received(bytes, messages);
    }

    /// Feeds input to the receiver and dispatches events; returns the bytes
    /// consumed (fewer when the handler paused data).
    fn process(&mut self, input: &mut [u8]) -> usize {
        if self.discard_input {
            return input.len();
        }
        let dispatch = &mut self.dispatch;
        let fed = self
            .receiver
            .feed(input, &mut |event| dispatch.on_event(event));
        self.dispatch.handler.input_done(&self.conn);
        match fed {
            Ok(used) => {
                if let Some((code, reason)) = self.dispatch.close.take() {
                    self.on_close_frame(code, reason);
                }
                used
            }
            Err(e) => {
                self.fail_protocol(e);
                input.len()
            }
        }
    }

    /// The client's close frame: answer it (RFC 6455 §5.5.1) or, if we
    /// closed first, it completes the handshake.
    fn on_close_frame(&mut self, code: Option<u16>, reason: String) {
        if self.phase == Phase::Open {
            let mut st = self.conn.lock();
            st.closing = true;
            st.close_request = None;
            Connection::queue_close_frame(&mut st, code, "");
        }
        self.ending = Some((code.unwrap_or(NO_STATUS), reason));
        self.phase = Phase::Finishing;
        self.arm_close_timer();
    }

    /// Fails the connection with the close code the violation calls for.
    fn fail_protocol(&mut self, e: ProtocolError) {
        self.fail("protocol error", e.close_code(), e.to_string());
    }

    /// Closes with `code` and `description` at once and reads no more
    /// input; `what` says in the log whose fault it was.
    fn fail(&mut self, what: &str, code: u16, description: String) {
        self.conn.0.server.log(
            Some(&self.conn),
            LogLevel::Info,
            LogType::Error,
            format_args!("{what}: {description}; closing with {code}"),
        );
        self.discard_input = true;
        if self.phase != Phase::Open || self.failing.is_some() {
            return;
        }
        match self.dispatch.handler.flush_events(&self.conn) {
            Some(flushed) => {
                // Reported if the client leaves before the close is sent.
                self.ending = Some((code, description.clone()));
                self.failing = Some(Failing {
                    code,
                    description,
                    flushed: Box::pin(tokio::time::timeout(self.close_timeout, flushed)),
                });
            }
            None => self.send_failure_close(code, description),
        }
    }

    /// Queues the close frame that fails the connection.
    fn send_failure_close(&mut self, code: u16, description: String) {
        let mut st = self.conn.lock();
        st.closing = true;
        st.close_request = None;
        Connection::queue_close_frame(&mut st, Some(code), &description);
        drop(st);
        self.start_closing(code, description, true);
    }

    /// Closes a failing connection once the handler has flushed its
    /// events (or CloseTimeout has passed).
    fn poll_failing(&mut self, cx: &mut Context<'_>) {
        let Some(failing) = self.failing.as_mut() else {
            return;
        };
        if failing.flushed.as_mut().poll(cx).is_pending() {
            return;
        }
        if let Some(Failing {
            code, description, ..
        }) = self.failing.take()
        {
            self.send_failure_close(code, description);
        }
    }

    fn start_closing(&mut self, code: u16, reason: String, wait: bool) {
        self.ending = Some((code, reason));
        self.phase = Phase::Closing { wait };
        self.arm_close_timer();
    }

    fn fail_io(&mut self, e: io::Error) {
        if self.phase == Phase::Open {
            let server = &self.conn.0.server;
            server
                .handler
                .error(Some(&self.conn), io_error_code(&e), &e.to_string());
            self.ending = Some((ABNORMAL, e.to_string()));
        }
    }

    fn arm_close_timer(&mut self) {
        if self.close_timer.is_none() {
            self.close_timer = Some(Box::pin(sleep(self.close_timeout)));
        }
    }

    /// Registers for wake-ups; returns true if work arrived meanwhile.
    fn park(&mut self, cx: &mut Context<'_>) -> bool {
        let mut st = self.conn.lock();
        if st.out.has_chunks() || st.close_request.is_some() {
            return true;
        }
        let input_waits = self.has_input_waiting() || self.dispatch.lines.has_held();
        if input_waits && self.conn.accepting_data() {
            return true;
        }
        st.task_active = false;
        if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.waker = Some(cx.waker().clone());
        }
        false
    }

    /// Ready(true) ends the session, Ready(false) means a close started.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if let Some(timer) = self.close_timer.as_mut()
            && timer.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(true);
        }
        if self.phase != Phase::Open {
            return Poll::Pending;
        }
        let Some(idle) = self.idle.as_mut() else {
            return Poll::Pending;
        };
        loop {
            if idle.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let quiet_until = idle.last_activity + idle.limit;
            if Instant::now() < quiet_until {
                idle.sleep.as_mut().reset(quiet_until.into());
                continue;
            }
            let mut st = self.conn.lock();
            st.closing = true;
            Connection::queue_close_frame(&mut st, Some(GOING_AWAY), "idle timeout");
            drop(st);
            self.start_closing(
                GOING_AWAY,
                "idle timeout".into(),
                self.wait_for_close_response,
            );
            return Poll::Ready(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::WsServer;

    /// Every idle connection keeps its task's state: keep it small (the
    /// handshake's buffers are boxed and freed once it is done).
    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let server = WsServer::new(crate::server::echo::EchoHandler::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, remote) = listener.accept().await.unwrap();
        let task = serve(server.shared.clone(), stream, remote, None);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1024, "a connection task holds {size} bytes");
    }
}
