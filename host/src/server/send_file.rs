//! SendFile: a file streamed as one binary message, in frames of
//! MaxFrameSize, waiting for queue room between frames.

use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

use super::connection::{Connection, FileTransfer};
use super::error::{Error, Result};
use crate::protocol::frame::OpCode;

impl Connection {
    /// Sends a file as one binary message, in frames of MaxFrameSize,
    /// waiting for queue room between frames. Other data sends fail with
    /// would-block until it ends; [`interrupt`](Self::interrupt) stops it.
    /// Returns the bytes sent. Never compressed: with permessage-deflate,
    /// only Send, SendText and SendBytes messages are.
    pub async fn send_file(&self, path: impl AsRef<Path>) -> Result<u64> {
        let path = path.as_ref();
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        {
            let mut st = self.lock();
            self.check_room(&mut st, 0)?;
            if st.occasional().message_remaining > 0 {
                return Err(self.invalid("a MessageLength message is being sent"));
            }
            st.occasional_mut().transfer = Some(FileTransfer::default());
        }
        self.stream_file(&mut file, path).await
    }

    /// Streams the file; every way out leaves the message complete on the
    /// wire and the transfer cleared.
    async fn stream_file(&self, file: &mut tokio::fs::File, path: &Path) -> Result<u64> {
        let frame_size = self.0.limits.max_frame_size;
        let mut buf = vec![0u8; frame_size.min(1 << 20)];
        let mut sent = 0u64;
        let mut opcode = OpCode::Binary;
        loop {
            let n = match read_full(file, &mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let error = Error::io(format!("cannot read {}", path.display()), e);
                    return self.end_transfer(opcode, Err(error));
                }
            };
            let last = n < buf.len();
            let (room, timeout) = {
                let mut st = self.lock();
                if st
                    .occasional()
                    .transfer
                    .as_ref()
                    .is_none_or(|t| t.interrupted)
                {
                    drop(st);
                    return self.end_transfer(opcode, Err(Error::Interrupted(self.id())));
                }
                st.out.push_frame(last, opcode, &buf[..n]);
                if last {
                    st.end_transfer();
                    st.wake_task();
                    return Ok(sent + n as u64);
                }
                st.wake_task();
                let room = (st.out.queued() > self.0.limits.max_send_queue / 2).then(|| {
                    let (tx, rx) = oneshot::channel();
                    if let Some(t) = st.occasional_mut().transfer.as_mut() {
                        t.room = Some(tx);
                    }
                    rx
                });
                (room, st.timeout)
            };
            sent += n as u64;
            opcode = OpCode::Continuation;
            let Some(rx) = room else { continue };
            // The writer signals when the queue drains (or Interrupt does);
            // a dropped sender means the connection is gone. A positive
            // Timeout bounds the wait, as the seed's blocking sends do.
            let waited = if timeout > 0 {
                tokio::time::timeout(Duration::from_secs(timeout.into()), rx).await
            } else {
                Ok(rx.await)
            };
            match waited {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return self.end_transfer(opcode, Err(Error::Closing(self.id()))),
                Err(_) => {
                    let error = Error::io(
                        format!("the client read nothing for {timeout} s (Timeout)"),
                        std::io::ErrorKind::TimedOut.into(),
                    );
                    return self.end_transfer(opcode, Err(error));
                }
            }
        }
    }

    /// Ends a transfer early: a final empty frame closes its message
    /// (before the first frame that is an empty binary message of its own).
    fn end_transfer(&self, opcode: OpCode, result: Result<u64>) -> Result<u64> {
        let mut st = self.lock();
        if !st.closing {
            st.out.push_frame(true, opcode, &[]);
        }
        st.end_transfer();
        st.wake_task();
        result
    }

    /// Stops a SendFile in progress, ending its message early.
    pub fn interrupt(&self) -> Result<()> {
        let mut st = self.lock();
        if st.occasional().transfer.is_none() {
            return Err(self.invalid("no file transfer is in progress"));
        }
        if let Some(t) = st.occasional_mut().transfer.as_mut() {
            t.interrupted = true;
            t.room.take().map(|tx| tx.send(()));
        }
        Ok(())
    }
}

/// Reads until `buf` is full or the file ends.
async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
