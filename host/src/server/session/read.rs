//! The session's reads: into a per-thread scratch buffer, dispatched at
//! once, and whether its replies wait for the other ready connections
//! ([`coalesces`]).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Busy, Session};

/// Bytes read per read call, into the per-thread scratch buffer (one per
/// serving thread; pages a read never reaches are never touched). A
/// pipelined client of 4 KiB messages keeps 100 KiB and more waiting:
/// reading it in one call also writes the replies in one, and 100 × 4 KiB
/// echo used 0.037 reads and writes per message instead of 0.088 with
/// 64 KiB, 10–15% less server CPU per message (bench/RESULTS.md).
const READ_BUFFER: usize = 256 * 1024;
/// The buffer of a read made while the thread's scratch is in use (a
/// handler polling another connection from inside an event): rare, so
/// smaller than what glibc would map and unmap for each.
const NESTED_READ_BUFFER: usize = 64 * 1024;
/// Messages a read must dispatch for its turn to end with the connection
/// queued behind the tasks ready on its thread (not behind the next poll
/// for I/O), its replies written when it runs again: replies to many
/// connections leave together, and a client reading them from one thread
/// is woken once, not once each (a cross-CPU wake-up, paid inside our
/// write). A read of exactly one message does the same (see [`coalesces`]).
pub(super) const COALESCE_MESSAGES: u64 = 8;
/// Bytes above which a read's replies leave at once: a read this large
/// already brings replies enough for one wake-up of the client.
const COALESCE_READ: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_BUFFER].into_boxed_slice());
}

/// What a read brought: the end of input, or messages answered at once,
/// or messages whose replies wait for the other ready connections
/// ([`coalesces`]).
pub(super) enum Read {
    End,
    Dispatched,
    Coalesced,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Reads into the scratch buffer and dispatches what arrived.
    pub(super) fn poll_read(
        &mut self,
        busy: &mut Busy,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Read>> {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.read_into(busy, cx, &mut scratch),
            // Only if a handler polled another connection on this thread
            // from inside an event.
            Err(_) => self.read_into(busy, cx, &mut vec![0; NESTED_READ_BUFFER]),
        })
    }

    fn read_into(
        &mut self,
        busy: &mut Busy,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<Read>> {
        let mut read = ReadBuf::new(buf);
        match ready!(Pin::new(&mut self.stream).poll_read(cx, &mut read)) {
            Ok(()) => {}
            // A TLS client that drops TCP without close_notify: the same as
            // a plain one closing; the WebSocket close tells a clean end.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Poll::Ready(Ok(Read::End));
            }
            Err(e) => return Poll::Ready(Err(e)),
        }
        let n = read.filled().len();
        if n == 0 {
            return Poll::Ready(Ok(Read::End));
        }
        self.closing.touch();
        busy.worked = true;
        let input = &mut buf[..n];
        let used = self.process(busy, input);
        let messages = self.count_received(busy, n);
        if used < n && !busy.receiver.is_closed() {
            busy.held.extend_from_slice(&input[used..]);
        }
        Poll::Ready(Ok(if coalesces(messages, n) {
            Read::Coalesced
        } else {
            Read::Dispatched
        }))
    }
}

/// Whether a read's replies wait for the other connections ready on the
/// thread ([`Read::Coalesced`]): a small read of many messages, or of one.
/// One message per read is a client that waits for each answer; with many
/// such clients on a thread, their answers then leave together too
/// (unpipelined echo, 100 clients, messages per server CPU-second: echo
/// plugin +5%, native within ±2%). A read of two to seven messages is
/// answered at once: holding those back cost the echo plugin 3% at 32 B
/// with 32 in flight (bench/RESULTS.md, session 17).
fn coalesces(messages: u64, bytes: usize) -> bool {
    (messages == 1 || messages >= COALESCE_MESSAGES) && bytes <= COALESCE_READ
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_reads_of_one_or_many_messages_wait_for_the_other_connections() {
        assert!(coalesces(1, 38));
        assert!(coalesces(COALESCE_MESSAGES, 8 * 38));
        assert!(coalesces(200, COALESCE_READ));
        // A few messages, or none (a ping, a fragment), are answered at once.
        for messages in [0, 2, COALESCE_MESSAGES - 1] {
            assert!(!coalesces(messages, 100), "{messages} messages");
        }
        // A large read brings replies enough for one wake-up on its own.
        assert!(!coalesces(1, COALESCE_READ + 1));
        assert!(!coalesces(COALESCE_MESSAGES, COALESCE_READ + 1));
    }
}
