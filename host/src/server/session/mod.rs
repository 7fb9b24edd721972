//! A connection's session: after the handshakes ([`task`] runs them), one
//! loop that reads, dispatches events (see [`dispatch`](super::dispatch))
//! and writes until the closing handshake ([`closing`]) ends, generic over
//! the stream, plain TCP or TLS.
//!
//! The loop runs inside a single future: each round moves frames queued by
//! senders into the write list, writes them in one vectored write, then
//! reads into a per-thread scratch buffer and dispatches what arrived, so an
//! idle connection holds no read buffer and everything a round produces
//! leaves in one write.
//!
//! Fair share: a connection's turn (one poll of its task) ends after
//! [`ROUNDS_PER_TURN`] rounds or once it has dispatched [`MESSAGE_BUDGET`]
//! messages, whichever comes first, and the task then yields with a
//! deferred wake-up: the runtime polls for I/O before it runs the
//! connection again, so a quiet
//! connection that just became readable is served ahead of a flooding one
//! instead of behind every flooding connection's next turn.
//! Replies to a small read of one message or of many wait for the other
//! ready connections ([`read`]).

mod closing;
mod lot;
mod parking;
mod read;
mod task;
mod turn;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};

use super::dispatch::Dispatch;
use super::handler::Handler;
use super::outbound::{WriteList, empty_slices};
use super::settings::Settings;
use super::upgrade::Opened;
use crate::protocol::close::INTERNAL_ERROR;
use crate::protocol::deflate::{Deflater, Inflater, Negotiated};
use crate::protocol::receiver::Receiver;
use crate::server::connection::Connection;
use closing::CloseHandshake;
pub(crate) use parking::ParkingLot;
use read::Read;
pub(crate) use task::{Accepted, AcceptedStream, serve};
use turn::OwnerTurn;

/// Rounds a connection may run before yielding to other tasks.
const ROUNDS_PER_TURN: usize = 16;
/// Messages a connection may dispatch in one turn before yielding. Work
/// goes by messages, not bytes: a flood of small messages ends its turn
/// after one read, while a pipelined load of 4 KiB messages still reads
/// batches of 1 MiB (a 64 KiB byte budget cost 4 KiB echo 15%).
const MESSAGE_BUDGET: u64 = 256;

/// How a turn of the session ended.
enum TurnEnd {
    /// The closing handshake is over.
    Ended,
    /// The turn's budget is spent; there may be more to do.
    Yield,
    /// A read whose replies wait was dispatched; they are written once the
    /// connections already ready on this thread have had their turn.
    Requeue,
}

/// What one round of the loop achieved.
enum Step {
    Progress,
    /// A read whose replies wait: the turn ends with [`TurnEnd::Requeue`].
    Coalesced,
    Blocked,
    Done,
}

/// A connection after its opening handshake: what it keeps while at rest.
/// Everything that only matters while something is under way is in
/// [`Busy`], which exists only then.
struct Session<S> {
    stream: S,
    conn: Registration,
    closing: CloseHandshake,
    /// None while the connection is at rest (see [`Busy::is_at_rest`]):
    /// an idle connection does not keep a receiver, a dispatcher and a
    /// write list it would make again the same on its next input.
    busy: Option<Box<Busy>>,
    /// What a new [`Busy`] is made from.
    settings: Arc<Settings>,
    max_message_size: u64,
    deflate: Option<Negotiated>,
    /// When it has stayed at rest, a plain session waits in its thread's
    /// parking lot instead of its task (see [`parking`]).
    rest: parking::Rest,
}

/// The connection, listed in the table while its session holds it: the
/// listing and the admission are released however the task ends.
pub(super) struct Registration {
    pub conn: Connection,
}

impl std::ops::Deref for Registration {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let table = &self.conn.0.server.table;
        table.unlist(self.conn.id());
        table.release();
    }
}

/// What a session record is made of besides its working state, its
/// closing state machine and its watch on its rest: what a parked session
/// keeps (with its stream outside tokio).
struct SessionParts<S> {
    stream: S,
    conn: Registration,
    settings: Arc<Settings>,
    max_message_size: u64,
    deflate: Option<Negotiated>,
}

impl<S> SessionParts<S> {
    /// The same parts around the stream `f` makes of this one; the
    /// connection and the error if it fails (the stream is gone).
    fn map_stream<T>(
        self,
        f: impl FnOnce(S) -> io::Result<T>,
    ) -> Result<SessionParts<T>, (Registration, io::Error)> {
        let Self {
            stream,
            conn,
            settings,
            max_message_size,
            deflate,
        } = self;
        match f(stream) {
            Ok(stream) => Ok(SessionParts {
                stream,
                conn,
                settings,
                max_message_size,
                deflate,
            }),
            Err(e) => Err((conn, e)),
        }
    }
}

/// A session's working state between its input and its output.
struct Busy {
    receiver: Receiver,
    dispatch: Dispatch,
    writes: WriteList,
    /// permessage-deflate's compressor, when negotiated: queued messages
    /// are compressed here, by the connection's own task.
    deflater: Option<Deflater>,
    /// Input read but not yet dispatched: the handler paused data.
    held: Vec<u8>,
    /// Messages dispatched in the current turn, against [`MESSAGE_BUDGET`].
    messages_this_turn: u64,
    /// The turn read or wrote something (a connection at work is not
    /// parked).
    worked: bool,
}

impl Busy {
    /// Holds nothing a new one would not: no part of a frame, message or
    /// line, nothing to write, no compression context.
    fn is_at_rest(&self) -> bool {
        self.writes.is_empty()
            && self.held.is_empty()
            && self.receiver.is_at_rest()
            && self.dispatch.is_at_rest()
            && self.deflater.as_ref().is_none_or(Deflater::is_at_rest)
    }

    /// Whether received input waits to be dispatched: held back while data
    /// was paused, or output a paused inflater still holds.
    fn has_input_waiting(&self, closing: &CloseHandshake) -> bool {
        !self.held.is_empty() || (!closing.discards_input() && self.receiver.has_pending_output())
    }
}

impl lot::Parkable for parking::Parked {
    fn resume(self, lot: &Arc<ParkingLot>) {
        if let Some(session) = self.into_session(lot) {
            tokio::spawn(task::ConnectionTask::resumed(session));
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn new(
        stream: S,
        conn: Registration,
        settings: Arc<Settings>,
        opened: Opened,
        rest: parking::Rest,
    ) -> Self {
        let closing = CloseHandshake::new(&settings);
        let parts = SessionParts {
            stream,
            conn,
            settings,
            max_message_size: opened.max_message_size,
            deflate: opened.deflate,
        };
        let mut session = Self::from_parts(parts, closing, rest);
        if !opened.leftover.is_empty() {
            let mut busy = session.new_busy();
            busy.held = opened.leftover;
            session.busy = Some(busy);
        }
        session
    }

    fn from_parts(parts: SessionParts<S>, closing: CloseHandshake, rest: parking::Rest) -> Self {
        let SessionParts {
            stream,
            conn,
            settings,
            max_message_size,
            deflate,
        } = parts;
        Self {
            stream,
            conn,
            closing,
            busy: None,
            settings,
            max_message_size,
            deflate,
            rest,
        }
    }

    /// The record without its working state and its watch on its rest.
    fn into_parts(self) -> (SessionParts<S>, CloseHandshake) {
        let Self {
            stream,
            conn,
            closing,
            settings,
            max_message_size,
            deflate,
            ..
        } = self;
        let parts = SessionParts {
            stream,
            conn,
            settings,
            max_message_size,
            deflate,
        };
        (parts, closing)
    }

    fn new_busy(&self) -> Box<Busy> {
        Box::new(Busy {
            receiver: Receiver::new(
                self.max_message_size,
                self.deflate.as_ref().map(Inflater::new),
            ),
            dispatch: Dispatch::new(&self.settings),
            writes: WriteList::default(),
            deflater: self
                .deflate
                .as_ref()
                .map(|negotiated| Deflater::new(negotiated, &self.settings.deflate)),
            held: Vec::new(),
            messages_this_turn: 0,
            worked: false,
        })
    }

    /// Runs rounds until the connection waits for something, ends, or
    /// spends its turn's budget. A connection that waits at rest lets go
    /// of its working state, unless it worked this turn and will park:
    /// then it keeps it until it parks, so a client sending one message
    /// at a time does not make and drop it for every message, and an idle
    /// connection holds none.
    fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<TurnEnd> {
        let mut busy = self.busy.take().unwrap_or_else(|| self.new_busy());
        busy.worked = false;
        let end = self.turn(&mut busy, cx);
        self.rest.worked |= busy.worked;
        let keep = busy.worked && self.rest.parks();
        if end.is_ready() || keep || !busy.is_at_rest() {
            self.busy = Some(busy);
        }
        end
    }

    fn turn(&mut self, busy: &mut Busy, cx: &mut Context<'_>) -> Poll<TurnEnd> {
        busy.messages_this_turn = 0;
        for _ in 0..ROUNDS_PER_TURN {
            match self.round(busy, cx) {
                Step::Progress if busy.messages_this_turn >= MESSAGE_BUDGET => break,
                Step::Progress => continue,
                Step::Coalesced => return Poll::Ready(TurnEnd::Requeue),
                Step::Done => return Poll::Ready(TurnEnd::Ended),
                Step::Blocked => {}
            }
            if self.park(busy, cx) {
                continue;
            }
            match self.closing.poll_timers(cx, &self.conn) {
                Poll::Ready(true) => return Poll::Ready(TurnEnd::Ended),
                Poll::Ready(false) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(TurnEnd::Yield)
    }

    fn handler(&self) -> &dyn Handler {
        self.conn.0.server.handler.as_ref()
    }

    /// Takes queued work, writes, then reads and dispatches.
    fn round(&mut self, busy: &mut Busy, cx: &mut Context<'_>) -> Step {
        self.closing.poll_flushing(cx, &self.conn);
        let (queued, ready, messages_sent) = {
            let mut st = self.conn.lock();
            st.task_active = true;
            // Owed when a refused sender's queue emptied without a write
            // of ours (e.g. a SendFile that ended as its last frame left).
            let ready = st.take_ready_to_send();
            self.closing.take_requested(&mut st);
            let messages_sent = st.out.move_to(&mut busy.writes);
            busy.dispatch.line_mode = st.line_mode;
            busy.dispatch.max_line_length = st.max_line_length;
            (st.out.queued(), ready, messages_sent)
        };
        if messages_sent > 0 {
            self.conn.0.server.metrics.messages_sent(messages_sent);
        }
        if ready {
            self.handler().ready_to_send(&self.conn);
        }
        self.compress_queued(busy);

        let flushed = match self.poll_flush(busy, cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(e)) => {
                self.closing.io_failed(&self.conn, &e);
                return Step::Done;
            }
            Poll::Pending => false,
        };
        if flushed && self.closing.poll_written(&mut self.stream, cx) {
            return Step::Done;
        }

        // A client that does not read what we send is not read from either
        // (until the socket takes our bytes again), bounding our queue.
        let throttled = !flushed && queued > self.conn.0.limits.max_send_queue / 2;
        if !self.conn.accepting_data() || throttled {
            return Step::Blocked;
        }
        // Lines held back by a pause come before any later input.
        if busy.dispatch.has_held_lines() {
            busy.dispatch.resume_lines(&self.conn);
            return Step::Progress;
        }
        if busy.has_input_waiting(&self.closing) {
            busy.worked = true;
            let mut held = std::mem::take(&mut busy.held);
            let used = self.process(busy, &mut held);
            self.count_received(busy, 0);
            if used < held.len() && !busy.receiver.is_closed() {
                held.drain(..used);
                busy.held = held;
            }
            return Step::Progress;
        }
        match self.poll_read(busy, cx) {
            Poll::Ready(Ok(Read::Dispatched)) => Step::Progress,
            Poll::Ready(Ok(Read::Coalesced)) => Step::Coalesced,
            Poll::Ready(Ok(Read::End)) => {
                self.closing.end_of_input();
                Step::Done
            }
            Poll::Ready(Err(e)) => {
                self.closing.io_failed(&self.conn, &e);
                Step::Done
            }
            Poll::Pending => Step::Blocked,
        }
    }

    /// Compresses the messages just taken from the queue (outside its lock)
    /// and corrects the queue's byte count.
    fn compress_queued(&mut self, busy: &mut Busy) {
        let Some(deflater) = busy.deflater.as_mut() else {
            return;
        };
        let deflated = busy
            .writes
            .deflate(deflater, self.conn.0.limits.max_frame_size);
        if deflated.before != deflated.after {
            self.conn.lock().out.recount(&deflated);
        }
        if let Some(e) = deflated.error {
            self.closing
                .fail(&self.conn, "server error", INTERNAL_ERROR, e.to_string());
        }
    }

    /// Writes the write list; accounts what left and fires ReadyToSend
    /// when a refused sender may try again.
    fn poll_flush(&mut self, busy: &mut Busy, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Self { stream, .. } = self;
        let writes = &mut busy.writes;
        let mut written = 0;
        let result = loop {
            if writes.is_empty() {
                // TLS holds records the socket did not take yet; for plain
                // TCP this is a no-op.
                break Pin::new(&mut *stream).poll_flush(cx);
            }
            // One chunk (most writes) goes as a plain write: on a socket,
            // `send` skips `writev`'s copy of the vector and its file
            // bookkeeping in the kernel, and no vector is built here.
            let wrote = match writes.only_chunk() {
                Some(bytes) => Pin::new(&mut *stream).poll_write(cx, bytes),
                None => {
                    let mut slices = empty_slices();
                    let n = writes.io_slices(&mut slices);
                    Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..n])
                }
            };
            match wrote {
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
            busy.worked = true;
            writes.release_if_idle();
            self.conn.0.server.metrics.bytes_sent(written);
            let limits = self.conn.0.limits;
            let ready = {
                let mut st = self.conn.lock();
                st.out.written(written);
                let queued = st.out.queued();
                if queued <= limits.max_send_queue / 2
                    && st.occasional().transfer.is_some()
                    && let Some(room) = st
                        .occasional_mut()
                        .transfer
                        .as_mut()
                        .and_then(|t| t.room.take())
                {
                    let _ = room.send(());
                }
                st.take_ready_to_send()
            };
            if ready {
                self.handler().ready_to_send(&self.conn);
            }
        }
        result
    }

    /// Adds one read's bytes, and the messages dispatched since, to the
    /// server's counters; returns those messages.
    fn count_received(&mut self, busy: &mut Busy, bytes: usize) -> u64 {
        let messages = busy.dispatch.take_messages_received();
        busy.messages_this_turn += messages;
        self.conn.0.server.metrics.received(bytes, messages);
        messages
    }

    /// Feeds input to the receiver and dispatches events; returns the bytes
    /// consumed (fewer when the handler paused data).
    fn process(&mut self, busy: &mut Busy, input: &mut [u8]) -> usize {
        if self.closing.discards_input() {
            return input.len();
        }
        let Busy {
            receiver, dispatch, ..
        } = busy;
        // A turn takes the lock twice to save one lock per reply: it pays
        // for a read of several frames, not for a client's one message.
        let turn = if receiver.at_most_one_frame(input) {
            None
        } else {
            OwnerTurn::begin(&self.conn)
        };
        let conn = &self.conn.conn;
        let fed = receiver.feed(input, &mut |event| dispatch.on_event(conn, event));
        conn.0.server.handler.input_done(conn);
        drop(turn);
        match fed {
            Ok(used) => {
                if let Some((code, reason)) = dispatch.take_close() {
                    self.closing.close_frame_received(&self.conn, code, reason);
                }
                used
            }
            Err(e) => {
                let code = e.close_code();
                self.closing
                    .fail(&self.conn, "protocol error", code, e.to_string());
                input.len()
            }
        }
    }

    /// Registers for wake-ups; returns true if work arrived meanwhile.
    fn park(&mut self, busy: &Busy, cx: &mut Context<'_>) -> bool {
        let mut st = self.conn.lock();
        if st.out.has_chunks() || st.occasional().close_request.is_some() {
            return true;
        }
        let input_waits = busy.has_input_waiting(&self.closing) || busy.dispatch.has_held_lines();
        if input_waits && self.conn.accepting_data() {
            return true;
        }
        st.task_active = false;
        if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.waker = Some(cx.waker().clone());
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpStream;

    use super::*;
    use crate::server::WsServer;
    use crate::server::connection::{ConnShared, ConnState};

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
        let accepted = Accepted {
            server: server.shared.clone(),
            stream: AcceptedStream::Registered(stream),
            remote,
            local: None,
            no_delay: None,
            tls: None,
            lot: None,
        };
        let task = serve(Box::new(accepted));
        let size = std::mem::size_of_val(&task);
        println!("connection task's future: {size} B");
        // Tokio's cell is the future plus 96 B, rounded up to 128 B: up to
        // 160 B it is 256 B.
        assert!(size <= 160, "a connection task holds {size} bytes");
    }

    /// Where an idle connection's user-space memory goes, piece by piece
    /// (`cargo test -p wsserver --lib footprint -- --nocapture` prints it;
    /// bench/RESULTS.md has the figures).
    #[test]
    fn idle_connection_footprint() {
        use std::mem::size_of;
        let pieces = [
            ("Session<TcpStream>", size_of::<Session<TcpStream>>()),
            ("  TcpStream", size_of::<TcpStream>()),
            ("  CloseHandshake", size_of::<CloseHandshake>()),
            ("Busy (while not at rest)", size_of::<Busy>()),
            ("  Receiver", size_of::<Receiver>()),
            ("  Dispatch", size_of::<Dispatch>()),
            ("  WriteList", size_of::<WriteList>()),
            ("  Option<Deflater>", size_of::<Option<Deflater>>()),
            ("ConnShared", size_of::<ConnShared>()),
            ("  ConnState", size_of::<ConnState>()),
            (
                "OpenRequest",
                size_of::<super::super::events::OpenRequest>(),
            ),
        ];
        for (name, size) in pieces {
            println!("{name:<24} {size:>5} B");
        }
        // What every idle connection keeps besides its task: the record
        // in its task, and ConnShared in an Arc.
        assert!(size_of::<Session<TcpStream>>() <= 128);
        assert!(size_of::<ConnShared>() <= 336);
    }
}
