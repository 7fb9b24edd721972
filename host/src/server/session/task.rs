//! A connection's task from accept to end: admission, the TLS handshake
//! with UseSSL and the opening handshake (see [`upgrade`](super::super::upgrade)),
//! then the session loop ([`Session`]), then the Disconnected event and
//! the socket's shutdown. Only the session record stays in the task for
//! the connection's life; every other phase is boxed and freed once done.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at};
use tokio_rustls::server::TlsStream;

use super::parking::{ParkingLot, Rest};
use super::{Registration, Session, TurnEnd};
use crate::net::listener::configure_accepted;
use crate::net::tls::TlsServerConfig;
use crate::server::ServerShared;
use crate::server::connection::{ConnLimits, ConnShared, ConnState, Connection};
use crate::server::events::{LogLevel, LogType};
use crate::server::metrics::RefusalReason;
use crate::server::settings::Settings;
use crate::server::tls;
use crate::server::upgrade::{self, REFUSAL_LINGER};

/// A connection as the listener accepted it.
pub(crate) struct Accepted {
    pub server: Arc<ServerShared>,
    pub stream: AcceptedStream,
    pub remote: SocketAddr,
    /// The listener's address when it is bound to one (not a wildcard).
    pub local: Option<SocketAddr>,
    /// The TCP_NODELAY the socket inherited from the listener, if known.
    pub no_delay: Option<bool>,
    /// The server's TLS configuration when UseSSL is on.
    pub tls: Option<Arc<TlsServerConfig>>,
    /// The serving core's parking lot, unless parking is off.
    pub lot: Option<Arc<ParkingLot>>,
}

/// The accepted socket: with the accepting thread's reactor when served
/// there, or out of it on its way to another core, whose reactor it joins
/// when its task first runs.
pub(crate) enum AcceptedStream {
    Registered(TcpStream),
    HandedOver(std::net::TcpStream),
}

/// Serves one accepted TCP connection to its end.
pub(crate) fn serve(accepted: Box<Accepted>) -> ConnectionTask {
    ConnectionTask(Task::Opening(Box::pin(open(accepted))))
}

/// A connection's task. Tokio keeps a task's future for the connection's
/// whole life (in a cell of the future's size plus 96 B, 128-byte
/// aligned), so this one holds a plain connection's session record inline
/// and nothing else: the handshakes, a TLS session and the ending run in
/// boxed futures that exist only while they do. Written out by hand
/// because an `async fn` keeps its arguments and temporaries beside the
/// record (240 B against 120 B in a release build).
pub(crate) struct ConnectionTask(Task);

impl ConnectionTask {
    /// The task of a session back from its parking lot.
    pub(super) fn resumed(session: Session<TcpStream>) -> Self {
        Self(Task::Live(session))
    }
}

enum Task {
    /// Admission, the TLS handshake with UseSSL, the opening handshake.
    Opening(Pin<Box<dyn Future<Output = Option<Handshaken>> + Send>>),
    /// A plain connection's session loop.
    Live(Session<TcpStream>),
    /// A TLS connection's session loop, or a session's ending.
    Boxed(Pin<Box<dyn Future<Output = ()> + Send>>),
    Done,
}

impl Future for ConnectionTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let task = &mut self.get_mut().0;
        loop {
            match task {
                Task::Opening(opening) => {
                    *task = match ready!(opening.as_mut().poll(cx)) {
                        None => Task::Done,
                        Some(Handshaken::Plain(session)) => Task::Live(session),
                        Some(Handshaken::Tls(session)) => Task::Boxed(Box::pin(session.live())),
                    }
                }
                Task::Live(session) => match session.poll_turn(cx) {
                    Poll::Pending => {
                        if !session.rested_enough(cx) {
                            return Poll::Pending;
                        }
                        let Task::Live(session) = std::mem::replace(task, Task::Done) else {
                            unreachable!("matched as live");
                        };
                        match session.park_in_lot() {
                            // Stays at work: polled again at once.
                            Some(session) => *task = Task::Live(session),
                            // Parked (or ended): the lot brings it back.
                            None => return Poll::Ready(()),
                        }
                    }
                    Poll::Ready(TurnEnd::Yield) => {
                        // A deferred wake-up: other connections' I/O is
                        // polled before this one runs again (a plain
                        // self-wake would queue it ahead of their
                        // readiness). The first poll of yield_now hands the
                        // waker to the scheduler; nothing else is kept.
                        let _ = pin!(tokio::task::yield_now()).poll(cx);
                        return Poll::Pending;
                    }
                    Poll::Ready(TurnEnd::Requeue) => {
                        // A plain self-wake: the runtime queues this task
                        // behind the ones already ready, before it polls
                        // for I/O again.
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    Poll::Ready(TurnEnd::Ended) => {
                        if let Task::Live(session) = std::mem::replace(task, Task::Done) {
                            let mut stream = session.end();
                            // A plain socket's shutdown is one system call
                            // that does not wait: no boxed, timed ending
                            // unless it ever did.
                            if Pin::new(&mut stream).poll_shutdown(cx).is_pending() {
                                *task = Task::Boxed(Box::pin(shut_down(stream)));
                            }
                        }
                    }
                },
                Task::Boxed(future) => {
                    ready!(future.as_mut().poll(cx));
                    *task = Task::Done;
                }
                Task::Done => return Poll::Ready(()),
            }
        }
    }
}

/// A session whose handshakes are done.
enum Handshaken {
    Plain(Session<TcpStream>),
    Tls(Box<Session<TlsStream<TcpStream>>>),
}

/// Admission, the TLS handshake with UseSSL and the opening handshake; a
/// session ready to run, or None when the connection has ended.
async fn open(accepted: Box<Accepted>) -> Option<Handshaken> {
    let Accepted {
        server,
        stream,
        remote,
        local,
        no_delay,
        tls,
        lot,
    } = *accepted;
    let mut stream = match stream {
        AcceptedStream::Registered(stream) => stream,
        AcceptedStream::HandedOver(stream) => match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(e) => {
                server.handler.error(
                    None,
                    crate::server::io_error_code(&e),
                    &format!("cannot serve {remote} on its core: {e}"),
                );
                return None;
            }
        },
    };
    let settings = server.settings();
    let local = local.or_else(|| stream.local_addr().ok())?;
    if !upgrade::admit(
        &server,
        &mut stream,
        remote,
        local,
        &settings,
        tls.is_some(),
    )
    .await
    {
        return None;
    }
    if let Err(e) = configure_accepted(&stream, &settings.accepted_options(), no_delay) {
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
        request_head: OnceLock::new(),
        tls: OnceLock::new(),
        attachment: OnceLock::new(),
        accept_data: AtomicBool::new(true),
        owner_fast: AtomicBool::new(false),
        state: Mutex::new(ConnState::new(
            settings.max_line_length,
            settings.default_timeout,
        )),
    }));
    server.table.insert(conn.clone());
    let registration = Registration { conn };
    // HandshakeTimeout bounds the TLS and the WebSocket handshakes together.
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(settings.handshake_timeout.into());
    match tls {
        None => Session::open(stream, registration, settings, deadline, Rest::new(lot))
            .await
            .map(Handshaken::Plain),
        // Boxed: a TLS session's state is kilobytes, which every plain
        // connection's opening future would otherwise hold room for.
        Some(config) => Box::pin(open_tls(stream, registration, settings, deadline, config)).await,
    }
}

/// The TLS handshake, then the opening handshake over TLS.
async fn open_tls(
    stream: TcpStream,
    registration: Registration,
    settings: Arc<Settings>,
    deadline: tokio::time::Instant,
    config: Arc<TlsServerConfig>,
) -> Option<Handshaken> {
    let stream = tls::handshake(&config, stream, &registration, deadline).await?;
    Session::open(stream, registration, settings, deadline, Rest::new(None))
        .await
        .map(|session| Handshaken::Tls(Box::new(session)))
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// The opening handshake, then the Connected and ReadyToSend events; or
    /// None when the connection must end (the refusal has been written).
    pub(super) async fn open(
        mut stream: S,
        conn: Registration,
        settings: Arc<Settings>,
        deadline: tokio::time::Instant,
        rest: Rest,
    ) -> Option<Self> {
        let server = &conn.0.server;
        let opened =
            match timeout_at(deadline, upgrade::handshake(&mut stream, &conn, &settings)).await {
                Ok(Some(opened)) => opened,
                Ok(None) => {
                    // The slot is free before the client sees the connection end.
                    drop(conn);
                    return None;
                }
                Err(_) => {
                    server.refused(
                        Some(&conn),
                        RefusalReason::HandshakeTimeout,
                        LogType::Error,
                        format_args!("opening handshake timed out"),
                    );
                    drop(conn);
                    return None;
                }
            };
        server.metrics.connection_accepted();
        // Frames that arrived with the upgrade request are read bytes too.
        if !opened.leftover.is_empty() {
            server.metrics.received(opened.leftover.len(), 0);
        }
        if server.logs(LogLevel::Info) {
            let request = conn.request();
            let uri = request.as_ref().map_or("", |r| r.request_uri());
            server.log(
                Some(&conn),
                LogLevel::Info,
                LogType::Info,
                format_args!("connected {} {uri}", conn.remote_addr()),
            );
        }
        server.handler.connected(&conn);
        server.handler.ready_to_send(&conn);
        Some(Self::new(stream, conn, settings, opened, rest))
    }
    /// The session loop, then the ending.
    async fn live(mut self) {
        loop {
            match poll_fn(|cx| self.poll_turn(cx)).await {
                // Deferred, as in ConnectionTask.
                TurnEnd::Yield => tokio::task::yield_now().await,
                TurnEnd::Requeue => requeue().await,
                TurnEnd::Ended => break,
            }
        }
        self.finish().await;
    }

    /// The Disconnected event, the release of the connection's slot, and a
    /// bounded shutdown of the stream.
    async fn finish(self) {
        shut_down(self.end()).await;
    }

    /// The Disconnected event and the release of the connection's slot;
    /// the stream, still to be shut down.
    fn end(self) -> S {
        let Self {
            stream,
            conn,
            mut closing,
            busy,
            ..
        } = self;
        drop(busy);
        closing.report_end(&conn);
        // The slot is free before the client sees the connection end, so a
        // client that reconnects at once finds room.
        drop(conn);
        stream
    }
}

/// Pending once, with the task woken at once: it runs again behind the
/// tasks already ready (as in ConnectionTask).
async fn requeue() {
    let mut woken = false;
    poll_fn(|cx| {
        if std::mem::replace(&mut woken, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Shuts the stream down, within a bound: a client that stopped reading
/// cannot hold us here (TLS writes its close_notify).
async fn shut_down<S: AsyncWrite + Unpin>(mut stream: S) {
    let _ = timeout(REFUSAL_LINGER, stream.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what an async fn returns.
    fn future_size<A, F: Future>(_: impl FnOnce(A) -> F) -> usize {
        size_of::<F>()
    }

    /// Every connection allocates the opening phase's future and moves it
    /// into place whole: what TLS or a refusal keeps is boxed where it is
    /// needed instead. 1 KiB is also glibc's bound for allocations served
    /// from its per-thread cache (3.2 KiB in a debug build before).
    #[test]
    fn the_opening_future_stays_small() {
        let size = future_size(open);
        println!("opening future: {size} B");
        assert!(size <= 1024, "the opening future holds {size} bytes");
    }
}
