//! The closing handshake (RFC 6455 §7) as one state machine. Every way a
//! connection starts to close goes through it: a Close asked for by the
//! handler or the embedding API, the client's close frame, a protocol
//! error, an I/O error, IdleTimeout. It alone marks the connection closing
//! for senders ([`queue_close`]), and it knows the Disconnected event's
//! code and description.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;
use tokio::time::{Sleep, Timeout, sleep, timeout};

use crate::protocol::close::{ABNORMAL, GOING_AWAY, NO_STATUS};
use crate::server::connection::{ConnState, Connection};
use crate::server::error::io_error_code;
use crate::server::events::{BoxFuture, LogLevel, LogType};
use crate::server::settings::Settings;

/// Where a connection is in its closing handshake; each phase holds what
/// only it needs, out of line, so an open connection's record stays small.
enum Phase {
    /// Data flows. IdleTimeout, when set, is watched only here.
    Open { idle: Option<Box<IdleTimer>> },
    /// A close frame is owed, after a protocol error (input is no longer
    /// parsed) or in reply to the client's: it waits until the handler has
    /// handled the events it already has (or CloseTimeout has passed), so
    /// their replies leave first.
    Flushing(Box<Flushing>),
    /// Our close frame is queued or sent. With `wait`, reading goes on
    /// until the client's close frame or EOF; `write_shut` once our FIN
    /// went out. Ends at CloseTimeout at the latest.
    Closing {
        wait: bool,
        write_shut: bool,
        timer: Pin<Box<Sleep>>,
    },
    /// The handshake is complete: flush and end (at most CloseTimeout).
    Finishing { timer: Pin<Box<Sleep>> },
}

/// A close frame waiting for the handler's events to be handled.
struct Flushing {
    owed: Owed,
    flushed: Pin<Box<Timeout<BoxFuture<()>>>>,
}

/// The close frame a [`Flushing`] connection owes.
enum Owed {
    /// A protocol error's, with its code and description.
    Failure { code: u16, description: String },
    /// The reply to the client's close frame, with the client's code.
    Reply(Option<u16>),
}

/// Fires after a quiet period to check for client inactivity.
struct IdleTimer {
    limit: Duration,
    last_activity: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl IdleTimer {
    /// Ready once the client has been quiet for the whole limit.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            let quiet_until = self.last_activity + self.limit;
            if Instant::now() >= quiet_until {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(quiet_until.into());
        }
    }
}

/// A connection's closing state machine.
pub(super) struct CloseHandshake {
    phase: Phase,
    /// The Disconnected event's code and description, once known (boxed:
    /// an open connection holds a null pointer).
    ending: Option<Box<(u16, String)>>,
    /// After a protocol error input is read only to see the client go.
    discard_input: bool,
    wait_for_close_response: bool,
    /// CloseTimeout in seconds.
    close_timeout: u32,
}

/// Queues our close frame and refuses every later send: the one place a
/// session marks its connection closing.
fn queue_close(st: &mut ConnState, code: Option<u16>, reason: &str) {
    st.closing = true;
    st.take_close_request();
    Connection::queue_close_frame(st, code, reason);
}

impl CloseHandshake {
    pub fn new(settings: &Settings) -> Self {
        let idle = (settings.idle_timeout > 0).then(|| {
            let limit = Duration::from_secs(settings.idle_timeout.into());
            Box::new(IdleTimer {
                limit,
                last_activity: Instant::now(),
                sleep: Box::pin(sleep(limit)),
            })
        });
        Self {
            phase: Phase::Open { idle },
            ending: None,
            discard_input: false,
            wait_for_close_response: settings.wait_for_close_response,
            close_timeout: settings.close_timeout,
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open { .. })
    }

    /// Open with no timer, nothing decided: a record made again from the
    /// settings would be the same (what a parked session relies on).
    pub fn is_quiet(&self) -> bool {
        matches!(self.phase, Phase::Open { idle: None })
            && self.ending.is_none()
            && !self.discard_input
    }

    /// Whether input is only read to see the client go (after a protocol
    /// error).
    pub fn discards_input(&self) -> bool {
        self.discard_input
    }

    /// The client sent something: the idle timer starts over.
    pub fn touch(&mut self) {
        if let Phase::Open { idle: Some(idle) } = &mut self.phase {
            idle.last_activity = Instant::now();
        }
    }

    /// The session's end: sends fail from now on, the connection leaves
    /// the Connections list and the Disconnected event fires. The caller
    /// then releases the connection's slot.
    pub fn report_end(&mut self, conn: &Connection) {
        let server = &conn.0.server;
        server.metrics.connection_closed();
        let (code, description) = self.take_ending();
        {
            // Sends fail from now on; a SendFile stops.
            let mut st = conn.lock();
            st.closing = true;
            st.connected = false;
            st.end_transfer();
        }
        // Gone from Connections during Disconnected, but still admitted
        // until it returns, so Shutdown waits for every Disconnected.
        server.table.unlist(conn.id());
        server.log(
            Some(conn),
            LogLevel::Info,
            LogType::Info,
            format_args!("disconnected {}: {code} {description}", conn.remote_addr()),
        );
        server.handler.disconnected(conn, code, &description);
    }

    /// The Disconnected event's code and description.
    fn take_ending(&mut self) -> (u16, String) {
        self.ending
            .take()
            .map_or((ABNORMAL, String::new()), |ending| *ending)
    }

    fn close_timeout(&self) -> Duration {
        Duration::from_secs(self.close_timeout.into())
    }

    fn end_with(&mut self, code: u16, description: String) {
        self.ending = Some(Box::new((code, description)));
    }

    fn close_timer(&self) -> Pin<Box<Sleep>> {
        Box::pin(sleep(self.close_timeout()))
    }

    fn enter_closing(&mut self, code: u16, reason: String, wait: bool) {
        self.end_with(code, reason);
        self.phase = Phase::Closing {
            wait,
            write_shut: false,
            timer: self.close_timer(),
        };
    }

    /// With the connection's state locked: a Close the handler or the API
    /// asked for starts the handshake while the connection is open.
    pub fn take_requested(&mut self, st: &mut ConnState) {
        let Some((code, reason)) = st.take_close_request() else {
            return;
        };
        if self.is_open() {
            queue_close(st, Some(code), &reason);
            self.enter_closing(code, reason, self.wait_for_close_response);
        }
    }

    /// The client's close frame: answered (RFC 6455 §5.5.1) unless we
    /// closed first, when it completes the handshake.
    /// A handler that handles events asynchronously (a plugin) first
    /// handles the ones that came before the close frame, so the replies
    /// to them are not refused: a client may send its last messages and
    /// its close frame in one write.
    pub fn close_frame_received(&mut self, conn: &Connection, code: Option<u16>, reason: String) {
        self.end_with(code.unwrap_or(NO_STATUS), reason);
        if self.is_open()
            && let Some(flushed) = conn.0.server.handler.flush_events(conn)
        {
            return self.flush_then(Owed::Reply(code), flushed);
        }
        let timer = match std::mem::replace(&mut self.phase, Phase::Open { idle: None }) {
            Phase::Closing { timer, .. } | Phase::Finishing { timer } => timer,
            Phase::Open { .. } | Phase::Flushing(_) => {
                queue_close(&mut conn.lock(), code, "");
                self.close_timer()
            }
        };
        self.phase = Phase::Finishing { timer };
    }

    fn flush_then(&mut self, owed: Owed, flushed: BoxFuture<()>) {
        self.phase = Phase::Flushing(Box::new(Flushing {
            owed,
            flushed: Box::pin(timeout(self.close_timeout(), flushed)),
        }));
    }

    /// Closes with `code` and `description` and reads no more input;
    /// `what` says in the log whose fault it was.
    pub fn fail(&mut self, conn: &Connection, what: &str, code: u16, description: String) {
        conn.0.server.log(
            Some(conn),
            LogLevel::Info,
            LogType::Error,
            format_args!("{what}: {description}; closing with {code}"),
        );
        self.discard_input = true;
        if !self.is_open() {
            return;
        }
        match conn.0.server.handler.flush_events(conn) {
            Some(flushed) => {
                // Reported if the client leaves before the close is sent.
                self.end_with(code, description.clone());
                self.flush_then(Owed::Failure { code, description }, flushed);
            }
            None => self.send_failure_close(conn, code, description),
        }
    }

    fn send_failure_close(&mut self, conn: &Connection, code: u16, description: String) {
        queue_close(&mut conn.lock(), Some(code), &description);
        self.enter_closing(code, description, true);
    }

    /// Queues the close frame a flushing connection owes once the handler
    /// has handled its events (or CloseTimeout has passed).
    pub fn poll_flushing(&mut self, cx: &mut Context<'_>, conn: &Connection) {
        let Phase::Flushing(flushing) = &mut self.phase else {
            return;
        };
        if flushing.flushed.as_mut().poll(cx).is_pending() {
            return;
        }
        let Phase::Flushing(flushing) =
            std::mem::replace(&mut self.phase, Phase::Open { idle: None })
        else {
            unreachable!("matched as flushing");
        };
        match flushing.owed {
            Owed::Failure { code, description } => {
                self.send_failure_close(conn, code, description);
            }
            Owed::Reply(code) => {
                queue_close(&mut conn.lock(), code, "");
                self.phase = Phase::Finishing {
                    timer: self.close_timer(),
                };
            }
        }
    }

    /// The connection broke (read or write error): reported to the handler
    /// unless the closing handshake was under way.
    pub fn io_failed(&mut self, conn: &Connection, e: &io::Error) {
        let unannounced = match &self.phase {
            Phase::Open { .. } => true,
            Phase::Flushing(flushing) => matches!(flushing.owed, Owed::Failure { .. }),
            Phase::Closing { .. } | Phase::Finishing { .. } => false,
        };
        if unannounced {
            conn.0
                .server
                .handler
                .error(Some(conn), io_error_code(e), &e.to_string());
            self.end_with(ABNORMAL, e.to_string());
        }
    }

    /// The client ended the TCP connection.
    pub fn end_of_input(&mut self) {
        if self.is_open() {
            self.end_with(ABNORMAL, "connection closed without a close frame".into());
        }
    }

    /// After everything queued has been written: whether the session is
    /// done. After a protocol error input is no longer parsed, so the
    /// client's close reply would go unseen: FIN after our close frame lets
    /// it end the connection at once.
    pub fn poll_written<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        cx: &mut Context<'_>,
    ) -> bool {
        match &mut self.phase {
            Phase::Finishing { .. } | Phase::Closing { wait: false, .. } => true,
            Phase::Closing {
                wait: true,
                write_shut,
                ..
            } if self.discard_input && !*write_shut => match Pin::new(stream).poll_shutdown(cx) {
                Poll::Ready(result) => {
                    *write_shut = true;
                    result.is_err()
                }
                Poll::Pending => false,
            },
            _ => false,
        }
    }

    /// Ready(true) ends the session (CloseTimeout has passed); Ready(false)
    /// means IdleTimeout started the closing handshake.
    pub fn poll_timers(&mut self, cx: &mut Context<'_>, conn: &Connection) -> Poll<bool> {
        match &mut self.phase {
            Phase::Closing { timer, .. } | Phase::Finishing { timer } => {
                timer.as_mut().poll(cx).map(|()| true)
            }
            Phase::Open { idle: None } | Phase::Flushing(_) => Poll::Pending,
            Phase::Open { idle: Some(idle) } => {
                ready!(idle.poll_expired(cx));
                queue_close(&mut conn.lock(), Some(GOING_AWAY), "idle timeout");
                self.enter_closing(
                    GOING_AWAY,
                    "idle timeout".into(),
                    self.wait_for_close_response,
                );
                Poll::Ready(false)
            }
        }
    }
}
