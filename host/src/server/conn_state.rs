//! The state a connection shares between its task and everyone sending
//! to it, under the connection's lock: the outbound queue, the task's
//! waker, the seed's per-connection properties, and (out of line, only
//! while in use) close requests, MessageLength and SendFile.

use std::task::Waker;

use tokio::sync::oneshot;

use super::outbound::OutboundQueue;
use super::owner_turn;

/// The seed's DataFormat field: how [`Connection::send`] frames bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFormat {
    /// Binary (bytes carry no encoding of their own).
    Automatic = 0,
    Text = 1,
    Binary = 2,
    Ping = 9,
    Pong = 10,
}

impl SendFormat {
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Self::Automatic,
            1 => Self::Text,
            2 => Self::Binary,
            9 => Self::Ping,
            10 => Self::Pong,
            _ => return None,
        })
    }
}

/// A SendFile in progress.
#[derive(Debug, Default)]
pub(crate) struct FileTransfer {
    pub interrupted: bool,
    /// Signalled when the queue has room again or on Interrupt.
    pub room: Option<oneshot::Sender<()>>,
}

/// The parts of a connection's state that only a close request,
/// MessageLength or SendFile uses: out of line, so the state every
/// connection keeps stays small (see [`ConnState::settle`]).
#[derive(Debug, Default)]
pub(crate) struct Occasional {
    /// A close frame to send once queued data is out.
    pub close_request: Option<(u16, String)>,
    /// MessageLength: the length of the next message sent in parts.
    pub message_length: u64,
    /// Bytes still expected for the message being sent in parts.
    pub message_remaining: u64,
    /// The message being sent in parts goes out compressed.
    pub compressing_message: bool,
    pub transfer: Option<FileTransfer>,
}

/// What [`ConnState::occasional`] reads while none is in use.
static NOT_IN_USE: Occasional = Occasional {
    close_request: None,
    message_length: 0,
    message_remaining: 0,
    compressing_message: false,
    transfer: None,
};

impl Occasional {
    fn in_use(&self) -> bool {
        self.close_request.is_some()
            || self.message_length > 0
            || self.message_remaining > 0
            || self.transfer.is_some()
    }
}

/// State shared between the connection's task and everyone sending to it.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub out: OutboundQueue,
    /// Wakes the connection's task when it waits for work.
    pub waker: Option<Waker>,
    /// The task is inside its own turn and will look at the queue anyway.
    pub task_active: bool,
    /// Close requests, MessageLength and SendFile: boxed, and only while
    /// in use (see [`Occasional`]).
    occasional: Option<Box<Occasional>>,
    /// A close was requested or received: no more data may be sent.
    pub closing: bool,
    pub connected: bool,
    /// A send failed with would-block; ReadyToSend fires when drained.
    pub wants_ready_to_send: bool,
    pub line_mode: bool,
    pub max_line_length: usize,
    pub data_format: SendFormat,
    pub timeout: u32,
    pub bytes_sent: u64,
    /// Set once permessage-deflate is negotiated: data messages of at least
    /// this many bytes go out compressed.
    pub deflate_threshold: Option<usize>,
    /// Where the queue stood when another access ended the owner's
    /// lock-free turn (see [`owner_turn`](super::owner_turn)).
    pub owner_mark: Option<usize>,
}

impl ConnState {
    pub fn new(max_line_length: usize, timeout: u32) -> Self {
        Self {
            out: OutboundQueue::default(),
            waker: None,
            task_active: true,
            occasional: None,
            closing: false,
            connected: false,
            wants_ready_to_send: false,
            line_mode: false,
            max_line_length,
            data_format: SendFormat::Automatic,
            timeout,
            bytes_sent: 0,
            deflate_threshold: None,
            owner_mark: None,
        }
    }

    /// Close requests, MessageLength and SendFile as they stand.
    pub fn occasional(&self) -> &Occasional {
        self.occasional.as_deref().unwrap_or(&NOT_IN_USE)
    }

    /// The same, to change; call [`settle`](Self::settle) after a change
    /// that may leave nothing in use.
    pub fn occasional_mut(&mut self) -> &mut Occasional {
        self.occasional.get_or_insert_default()
    }

    /// Frees the occasional part once nothing in it is in use.
    pub fn settle(&mut self) {
        if self.occasional.as_ref().is_some_and(|o| !o.in_use()) {
            self.occasional = None;
        }
    }

    /// Whether a close request, MessageLength or SendFile is in use.
    pub fn occasional_in_use(&self) -> bool {
        self.occasional.is_some()
    }

    /// The close frame asked for, if any.
    pub fn take_close_request(&mut self) -> Option<(u16, String)> {
        let request = self.occasional.as_mut()?.close_request.take();
        self.settle();
        request
    }

    /// Ends a SendFile: its sender, if waiting for room, learns the
    /// connection is gone.
    pub fn end_transfer(&mut self) {
        if let Some(o) = self.occasional.as_mut() {
            o.transfer = None;
            self.settle();
        }
    }

    /// Whether ReadyToSend is owed now: a send was refused and the queue
    /// has emptied (no transfer holds it). Clears the debt.
    pub fn take_ready_to_send(&mut self) -> bool {
        let ready = self.wants_ready_to_send
            && self.out.queued() == 0
            && self.occasional().transfer.is_none()
            && !self.closing;
        if ready {
            self.wants_ready_to_send = false;
        }
        ready
    }

    /// Moves what the owner's turn queued into the queue, before whatever
    /// others queued since the turn's shortcut ended.
    pub fn hand_over(&mut self, mut queued: owner_turn::Queued) {
        if let Some(bytes) = queued.bytes_sent {
            self.bytes_sent = bytes;
        }
        let at = self.owner_mark.take();
        self.out.insert_from(at, &mut queued.out);
    }

    /// Whether a data message of `len` bytes goes out compressed.
    pub fn compresses(&self, len: u64) -> bool {
        compresses(self.deflate_threshold, len)
    }

    /// Wakes the connection's task unless it is already running.
    pub fn wake_task(&self) {
        if !self.task_active
            && let Some(w) = &self.waker
        {
            w.wake_by_ref();
        }
    }
}

/// Whether a data message of `len` bytes goes out compressed, given the
/// connection's permessage-deflate threshold.
pub(super) fn compresses(threshold: Option<usize>, len: u64) -> bool {
    threshold.is_some_and(|threshold| len >= threshold as u64)
}
