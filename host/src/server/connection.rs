//! A connection's shared state and the `Connection` handle through which
//! handlers and the embedding API act on it from any thread.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;

use super::ServerShared;
use super::WsServer;
pub use super::conn_state::SendFormat;
use super::conn_state::compresses;
pub(crate) use super::conn_state::{ConnState, FileTransfer};
use super::error::{Error, Result};
use super::events::{ConnectionId, OpenRequest, TlsInfo};
use super::owner_turn::{self, OwnSends};
use crate::protocol::close::{encode_close_payload, is_valid_wire_code};
use crate::protocol::frame::{MAX_CONTROL_PAYLOAD, OpCode};
use crate::protocol::handshake::UpgradeRequest;
use crate::protocol::mask::MaskedPayload;
use crate::protocol::receiver::MessageKind;

/// A snapshot of the seed's WSConnection fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub accept_data: bool,
    /// Bytes accepted by the last send (0 after a would-block).
    pub bytes_sent: u64,
    pub connected: bool,
    pub connection_id: ConnectionId,
    pub data_format: SendFormat,
    pub host: String,
    pub line_mode: bool,
    pub local_address: String,
    pub origin: String,
    pub ready_to_send: bool,
    pub remote_host: String,
    pub remote_port: u16,
    pub request_headers: String,
    pub request_uri: String,
    /// The subprotocols the client offered, comma-separated.
    pub subprotocols: String,
    pub timeout: u32,
    /// The TLS session and client certificate (UseSSL only).
    pub tls: Option<Arc<TlsInfo>>,
}

/// Per-connection limits fixed when the connection is accepted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub max_frame_size: usize,
    pub max_send_queue: usize,
}

#[derive(Debug)]
pub(crate) struct ConnShared {
    pub id: ConnectionId,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub server: Arc<ServerShared>,
    pub limits: ConnLimits,
    /// The upgrade request's head, once accepted, which the open request
    /// handed to the handler shares; fields are read from it when asked
    /// for (the head alone: a field's position would cost every
    /// connection its bytes).
    pub request_head: OnceLock<Arc<str>>,
    /// Set after the TLS handshake, before the open request.
    pub tls: OnceLock<Arc<TlsInfo>>,
    /// Per-connection state of the handler (e.g. the plugin it was routed to).
    pub attachment: OnceLock<Arc<dyn Any + Send + Sync>>,
    /// The seed's AcceptData, outside the lock: checked after every DataIn.
    pub accept_data: AtomicBool,
    /// The connection's own task may queue without the lock: no one else
    /// took it since the task's turn began (see
    /// [`owner_turn`](super::owner_turn)).
    pub owner_fast: AtomicBool,
    pub state: Mutex<ConnState>,
}

/// A handle to one connection; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct Connection(pub(crate) Arc<ConnShared>);

impl Connection {
    pub fn id(&self) -> ConnectionId {
        self.0.id
    }

    pub fn remote_addr(&self) -> SocketAddr {
        self.0.remote
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.0.local
    }

    /// The open request, once the client has sent it.
    pub fn request(&self) -> Option<OpenRequest> {
        let head = self.0.request_head.get()?;
        Some(self.open_request(UpgradeRequest::from_head(head.clone())))
    }

    /// `request` as this connection's open request.
    pub(crate) fn open_request(&self, request: UpgradeRequest) -> OpenRequest {
        OpenRequest::new(
            self.id(),
            self.remote_addr(),
            self.local_addr(),
            self.tls().cloned(),
            request,
        )
    }

    /// Whether the client's open request has arrived.
    pub fn has_request(&self) -> bool {
        self.0.request_head.get().is_some()
    }

    /// The TLS session and accepted client certificate, once the TLS
    /// handshake is done; None on a plain connection.
    pub fn tls(&self) -> Option<&Arc<TlsInfo>> {
        self.0.tls.get()
    }

    /// Attaches handler state to the connection, once; later calls return
    /// false and change nothing.
    pub fn attach(&self, value: Arc<dyn Any + Send + Sync>) -> bool {
        self.0.attachment.set(value).is_ok()
    }

    /// The state attached with [`attach`](Self::attach), if it is a `T`.
    pub fn attachment<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.attachment.get()?.downcast_ref()
    }

    /// MaxSendQueue as it was when the connection opened.
    pub fn send_queue_limit(&self) -> usize {
        self.0.limits.max_send_queue
    }

    /// The server this connection belongs to.
    pub fn server(&self) -> WsServer {
        WsServer {
            shared: self.0.server.clone(),
        }
    }

    /// Locks the connection's state. Ends the owner's lock-free turn
    /// (see [`owner_turn`]), marking where the queue stands, and on the
    /// owner's own thread takes over what the turn queued so far.
    pub(crate) fn lock(&self) -> MutexGuard<'_, ConnState> {
        let mut st = self.lock_state();
        if self.0.owner_fast.load(Ordering::Relaxed) {
            self.0.owner_fast.store(false, Ordering::Relaxed);
            st.owner_mark = Some(st.out.seal());
        }
        // Without a mark no turn of this connection holds anything.
        if st.owner_mark.is_some()
            && let Some(queued) = owner_turn::take_queued(self.address())
        {
            st.hand_over(queued);
        }
        st
    }

    /// The connection's identity for [`owner_turn`].
    pub(crate) fn address(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// The lock alone, for the owner's turn itself.
    pub(crate) fn lock_state(&self) -> MutexGuard<'_, ConnState> {
        // A panic elsewhere while holding the lock leaves consistent data:
        // every update under it is a plain field write.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a text message.
    pub fn send_text(&self, text: &str) -> Result<()> {
        self.send_data(MessageKind::Text, text.as_bytes())
    }

    /// Sends a binary message.
    pub fn send_bytes(&self, data: &[u8]) -> Result<()> {
        self.send_data(MessageKind::Binary, data)
    }

    /// Sends `data` as the connection's DataFormat says (the seed's Send).
    pub fn send(&self, data: &[u8]) -> Result<()> {
        let format = self.lock().data_format;
        match format {
            SendFormat::Automatic | SendFormat::Binary => self.send_bytes(data),
            SendFormat::Text => match std::str::from_utf8(data) {
                Ok(text) => self.send_text(text),
                Err(_) => Err(self.invalid("DataFormat is Text but the data is not UTF-8")),
            },
            SendFormat::Ping => self.send_control(OpCode::Ping, data),
            SendFormat::Pong => self.send_control(OpCode::Pong, data),
        }
    }

    /// Sends a message whose payload is shared with other sends (broadcast)
    /// without copying it. It goes out uncompressed even with
    /// permessage-deflate: compressing it per recipient would multiply the
    /// CPU cost by the number of recipients (RFC 7692 lets each message
    /// choose).
    pub fn send_shared(&self, kind: MessageKind, payload: Bytes) -> Result<()> {
        let mut st = self.lock();
        self.check_room(&mut st, payload.len())?;
        let o = st.occasional();
        if o.message_remaining > 0 || o.message_length > 0 {
            drop(st);
            return self.send_data(kind, &payload);
        }
        st.bytes_sent = payload.len() as u64;
        if payload.len() > self.0.limits.max_frame_size {
            st.out.push_data(
                OpCode::from(kind),
                &payload,
                true,
                self.0.limits.max_frame_size,
            );
        } else {
            st.out.push_shared_frame(OpCode::from(kind), payload);
        }
        st.wake_task();
        Ok(())
    }

    /// Sends a ping; the Ping event with `response` true reports the pong.
    pub fn ping(&self, payload: &[u8]) -> Result<()> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Closes with the server's DisconnectStatusCode and Description.
    pub fn disconnect(&self) -> Result<()> {
        let (code, reason) = {
            let settings = self.0.server.settings();
            (
                settings.disconnect_status_code,
                settings.disconnect_description().to_owned(),
            )
        };
        self.close(code, &reason)
    }

    /// Starts the closing handshake with `code` and `reason`.
    pub fn close(&self, code: u16, reason: &str) -> Result<()> {
        if !is_valid_wire_code(code) {
            return Err(self.invalid(format!("close code {code} may not be sent")));
        }
        let mut st = self.lock();
        if st.closing {
            return Ok(());
        }
        st.closing = true;
        let o = st.occasional_mut();
        o.close_request = Some((code, reason.to_owned()));
        if let Some(t) = o.transfer.as_mut() {
            t.interrupted = true;
            t.room.take().map(|tx| tx.send(()));
        }
        st.wake_task();
        Ok(())
    }

    /// Switches line mode: DataIn per line instead of per message.
    pub fn change_line_mode(&self, line_mode: bool) {
        self.lock().line_mode = line_mode;
    }

    /// Stops DataIn for this connection (the seed's AcceptData = False);
    /// the client is throttled by TCP flow control meanwhile.
    pub fn pause_data(&self) {
        self.0.accept_data.store(false, Ordering::Release);
    }

    /// Whether DataIn is enabled (not paused).
    pub fn accepting_data(&self) -> bool {
        self.0.accept_data.load(Ordering::Acquire)
    }

    /// Resumes DataIn after [`pause_data`](Self::pause_data).
    pub fn resume_data(&self) {
        self.0.accept_data.store(true, Ordering::Release);
        self.lock().wake_task();
    }

    pub fn set_data_format(&self, format: SendFormat) {
        self.lock().data_format = format;
    }

    pub fn set_timeout(&self, seconds: u32) {
        self.lock().timeout = seconds;
    }

    pub fn set_max_line_length(&self, max: usize) {
        self.lock().max_line_length = max.max(1);
    }

    pub fn max_line_length(&self) -> usize {
        self.lock().max_line_length
    }

    /// Makes the next `len` bytes sent one message, whatever the number of
    /// sends (the seed's MessageLength); 0 cancels.
    pub fn set_message_length(&self, len: u64) -> Result<()> {
        let mut st = self.lock();
        if st.occasional().message_remaining > 0 {
            return Err(self.invalid("a MessageLength message is still being sent"));
        }
        st.occasional_mut().message_length = len;
        st.settle();
        Ok(())
    }

    pub fn message_length(&self) -> u64 {
        let st = self.lock();
        let o = st.occasional();
        o.message_remaining.max(o.message_length)
    }

    /// The seed's WSConnection fields.
    pub fn info(&self) -> ConnectionInfo {
        let st = self.lock();
        let req = self.request();
        let field =
            |f: fn(&OpenRequest) -> &str| req.as_ref().map(f).unwrap_or_default().to_owned();
        ConnectionInfo {
            accept_data: self.accepting_data(),
            bytes_sent: st.bytes_sent,
            connected: st.connected,
            connection_id: self.id(),
            data_format: st.data_format,
            host: field(OpenRequest::host),
            line_mode: st.line_mode,
            local_address: self.0.local.ip().to_canonical().to_string(),
            origin: field(OpenRequest::origin),
            ready_to_send: st.connected && !st.wants_ready_to_send && !st.closing,
            remote_host: self.0.remote.ip().to_canonical().to_string(),
            remote_port: self.0.remote.port(),
            request_headers: req
                .as_ref()
                .map(OpenRequest::request_headers_text)
                .unwrap_or_default(),
            request_uri: field(OpenRequest::request_uri),
            subprotocols: req
                .as_ref()
                .map(|r| r.subprotocols().collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            timeout: st.timeout,
            tls: self.tls().cloned(),
        }
    }

    /// Runs `sends` with the queue of this connection's own turn, when the
    /// calling thread runs it and nothing else has touched its state (see
    /// [`owner_turn`]): a run of messages queued under one borrow. `None`
    /// otherwise, and the locked path ([`send_data`](Self::send_data))
    /// must take them.
    pub(crate) fn with_own_sends<R>(
        &self,
        sends: impl FnOnce(&mut OwnSends<'_>) -> R,
    ) -> Option<R> {
        let limits = (self.0.limits.max_send_queue, self.0.limits.max_frame_size);
        owner_turn::with_own_sends(self.address(), &self.0.owner_fast, limits, sends)
    }

    /// Sends a whole binary message from a payload still masked, when the
    /// calling thread runs the connection's own turn and the message goes
    /// out as it is; false otherwise, for the caller to unmask it and
    /// [`send_data`](Self::send_data).
    pub(crate) fn try_send_masked(&self, payload: &MaskedPayload<'_>) -> bool {
        self.with_own_sends(|sends| sends.try_send_masked(payload)) == Some(true)
    }

    /// Sends a whole data message of `kind`; a text payload must be valid
    /// UTF-8 (the server's own handlers pass on what the receiver checked).
    pub(crate) fn send_data(&self, kind: MessageKind, payload: &[u8]) -> Result<()> {
        if self.with_own_sends(|sends| sends.try_send(kind, payload)) == Some(true) {
            return Ok(());
        }
        let mut st = self.lock();
        self.check_room(&mut st, payload.len())?;
        let len = payload.len() as u64;
        // Compression is chosen per message, on its whole length.
        let o = st.occasional();
        let (op, ends, compress) = if o.message_remaining > 0 || o.message_length > 0 {
            self.send_part(&mut st, kind, len)?
        } else {
            (OpCode::from(kind), true, st.compresses(len))
        };
        if compress {
            st.out.push_deflate(op, payload, ends);
        } else {
            st.out
                .push_data(op, payload, ends, self.0.limits.max_frame_size);
        }
        st.bytes_sent = len;
        st.wake_task();
        Ok(())
    }

    /// Where a send of `len` bytes goes in a MessageLength message: its
    /// opcode, whether it ends the message, whether the message is
    /// compressed.
    fn send_part(
        &self,
        st: &mut ConnState,
        kind: MessageKind,
        len: u64,
    ) -> Result<(OpCode, bool, bool)> {
        let threshold = st.deflate_threshold;
        let o = st.occasional_mut();
        let part = if o.message_remaining > 0 {
            if len > o.message_remaining {
                return Err(self.invalid(format!(
                    "{len} bytes exceed the {} left of the MessageLength message",
                    o.message_remaining
                )));
            }
            o.message_remaining -= len;
            (
                OpCode::Continuation,
                o.message_remaining == 0,
                o.compressing_message,
            )
        } else {
            if len > o.message_length {
                return Err(self.invalid(format!(
                    "{len} bytes exceed MessageLength {}",
                    o.message_length
                )));
            }
            let compress = compresses(threshold, o.message_length);
            o.message_remaining = o.message_length - len;
            o.message_length = 0;
            o.compressing_message = compress;
            (OpCode::from(kind), o.message_remaining == 0, compress)
        };
        st.settle();
        Ok(part)
    }

    fn send_control(&self, op: OpCode, payload: &[u8]) -> Result<()> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(self.invalid("control frame payloads are at most 125 bytes"));
        }
        let mut st = self.lock();
        self.check_room(&mut st, payload.len())?;
        st.out.push_frame(true, op, payload);
        st.bytes_sent = payload.len() as u64;
        st.wake_task();
        Ok(())
    }

    /// Refuses a send on a closing connection, during a file transfer, or
    /// when the queue is full (a message always fits an empty queue, so no
    /// message is too big to send).
    pub(super) fn check_room(&self, st: &mut ConnState, len: usize) -> Result<()> {
        if st.closing {
            return Err(Error::Closing(self.id()));
        }
        let queued = st.out.queued();
        if st.occasional().transfer.is_some()
            || (queued > 0 && queued + len > self.0.limits.max_send_queue)
        {
            self.0.server.metrics.would_block();
            st.wants_ready_to_send = true;
            st.bytes_sent = 0;
            return Err(Error::WouldBlock(self.id()));
        }
        Ok(())
    }

    pub(super) fn invalid(&self, reason: impl Into<String>) -> Error {
        Error::InvalidSend {
            id: self.id(),
            reason: reason.into(),
        }
    }

    /// Queues the close frame of the closing handshake.
    pub(crate) fn queue_close_frame(st: &mut ConnState, code: Option<u16>, reason: &str) {
        let payload = code.map(|c| encode_close_payload(c, reason));
        st.out
            .push_frame(true, OpCode::Close, payload.as_deref().unwrap_or_default());
    }
}
