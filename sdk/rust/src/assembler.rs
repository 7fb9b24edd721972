//! Reassembly of fragmented messages from data-in chunks.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use crate::types::{ConnectionId, DataFormat, DataIn, DataInRef, MessageFormat};

/// A whole message received on a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub connection: ConnectionId,
    pub format: MessageFormat,
    pub data: Vec<u8>,
}

/// A whole message from [`MessageAssembler::push_ref`]: borrowed from the
/// batch when it came in one chunk, else joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRef<'a> {
    pub connection: ConnectionId,
    pub format: MessageFormat,
    pub data: Cow<'a, [u8]>,
}

/// Joins the chunks of fragmented messages, per connection.
///
/// Feed it every [`DataIn`] of the connections you reassemble and call
/// [`forget`](Self::forget) when one disconnects. A message that arrives in
/// one chunk passes through without copying.
///
/// A continuation chunk with no message in progress belongs to a message
/// whose start this instance never saw (it was replaced mid-message), and is
/// dropped. So this is not for line mode, where every chunk has format
/// continuation. [`snapshot`](Self::snapshot) and [`restore`](Self::restore)
/// carry unfinished messages across a hot swap.
///
/// ```
/// use wsserver_sdk::{DataFormat, DataIn, MessageAssembler, MessageFormat};
///
/// let chunk = |format, data: &str, eom| DataIn {
///     connection: 1, format, data: data.as_bytes().to_vec(), eom, eol: false,
/// };
/// let mut messages = MessageAssembler::default();
/// assert_eq!(messages.push(chunk(DataFormat::Text, "hel", false)), None);
/// let message = messages.push(chunk(DataFormat::Continuation, "lo", true)).unwrap();
/// assert_eq!((message.format, &message.data[..]), (MessageFormat::Text, &b"hello"[..]));
/// ```
#[derive(Debug, Default)]
pub struct MessageAssembler {
    // Few connections are mid-message at once, so an ordered map is small
    // and needs no hasher seed (which would import wasi:random).
    in_progress: BTreeMap<ConnectionId, Message>,
}

/// The format of the message a chunk of `format` starts; `None` for a
/// continuation.
fn starts_message(format: DataFormat) -> Option<MessageFormat> {
    match format {
        DataFormat::Text => Some(MessageFormat::Text),
        DataFormat::Binary => Some(MessageFormat::Binary),
        DataFormat::Continuation => None,
    }
}

impl MessageAssembler {
    /// Adds a chunk; returns the message it completes, if any.
    pub fn push(&mut self, chunk: DataIn) -> Option<Message> {
        let DataIn {
            connection,
            format,
            data,
            eom,
            ..
        } = chunk;
        self.join(connection, format, Cow::Owned(data), eom)
            .map(|message| Message {
                connection: message.connection,
                format: message.format,
                data: message.data.into_owned(),
            })
    }

    /// Adds a borrowed chunk; returns the message it completes, if any,
    /// still borrowed when it came in one chunk (send it with
    /// [`Context::send_slice`](crate::Context::send_slice) and nothing is
    /// copied).
    #[inline]
    pub fn push_ref<'a>(&mut self, chunk: DataInRef<'a>) -> Option<MessageRef<'a>> {
        // Nearly every chunk is a whole message with none in progress:
        // decided inline in the caller, without the general join.
        if chunk.eom
            && self.in_progress.is_empty()
            && let Some(format) = starts_message(chunk.format)
        {
            return Some(MessageRef {
                connection: chunk.connection,
                format,
                data: Cow::Borrowed(chunk.data),
            });
        }
        self.join(
            chunk.connection,
            chunk.format,
            Cow::Borrowed(chunk.data),
            chunk.eom,
        )
    }

    // Out of line: the callers' common case stays small.
    #[cold]
    #[inline(never)]
    fn join<'a>(
        &mut self,
        connection: ConnectionId,
        format: DataFormat,
        data: Cow<'a, [u8]>,
        eom: bool,
    ) -> Option<MessageRef<'a>> {
        let Some(first_chunk_format) = starts_message(format) else {
            let message = self.in_progress.get_mut(&connection)?;
            message.data.extend_from_slice(&data);
            return if eom {
                self.in_progress.remove(&connection).map(|m| MessageRef {
                    connection: m.connection,
                    format: m.format,
                    data: Cow::Owned(m.data),
                })
            } else {
                None
            };
        };
        // A first chunk starts a new message. The host never interleaves
        // messages, so a message still in progress here cannot complete and
        // is dropped.
        if eom {
            if !self.in_progress.is_empty() {
                self.in_progress.remove(&connection);
            }
            Some(MessageRef {
                connection,
                format: first_chunk_format,
                data,
            })
        } else {
            let message = Message {
                connection,
                format: first_chunk_format,
                data: data.into_owned(),
            };
            self.in_progress.insert(connection, message);
            None
        }
    }

    /// Drops the unfinished message of a connection, if any.
    pub fn forget(&mut self, connection: ConnectionId) {
        self.in_progress.remove(&connection);
    }

    /// Whether a message of this connection is unfinished.
    pub fn is_assembling(&self, connection: ConnectionId) -> bool {
        self.in_progress.contains_key(&connection)
    }

    /// Encodes the unfinished messages for [`Lifecycle::snapshot`].
    ///
    /// Layout (little-endian): a version byte (1), then per message the
    /// connection id (u64), the format (u8: 0 text, 1 binary), the length
    /// (u32) and the bytes. Hand-rolled rather than serde-based to keep
    /// guests small.
    ///
    /// [`Lifecycle::snapshot`]: crate::Lifecycle::snapshot
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = vec![SNAPSHOT_VERSION];
        for message in self.in_progress.values() {
            out.extend_from_slice(&message.connection.to_le_bytes());
            out.push(match message.format {
                MessageFormat::Text => 0,
                MessageFormat::Binary => 1,
            });
            // Wasm32 memory cannot hold a message of 4 GiB or more.
            let len = u32::try_from(message.data.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&message.data);
        }
        out
    }

    /// Decodes what [`snapshot`](Self::snapshot) wrote.
    pub fn restore(mut state: &[u8]) -> Result<Self, SnapshotError> {
        let (&version, rest) = state.split_first().ok_or(SnapshotError::Truncated)?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        state = rest;
        let mut in_progress = BTreeMap::new();
        while !state.is_empty() {
            let (connection, rest) = state
                .split_first_chunk::<8>()
                .ok_or(SnapshotError::Truncated)?;
            let (&format, rest) = rest.split_first().ok_or(SnapshotError::Truncated)?;
            let (len, rest) = rest
                .split_first_chunk::<4>()
                .ok_or(SnapshotError::Truncated)?;
            let len = u32::from_le_bytes(*len) as usize;
            if rest.len() < len {
                return Err(SnapshotError::Truncated);
            }
            let (data, rest) = rest.split_at(len);
            let format = match format {
                0 => MessageFormat::Text,
                1 => MessageFormat::Binary,
                other => return Err(SnapshotError::UnknownFormat(other)),
            };
            let connection = ConnectionId::from_le_bytes(*connection);
            in_progress.insert(
                connection,
                Message {
                    connection,
                    format,
                    data: data.to_vec(),
                },
            );
            state = rest;
        }
        Ok(Self { in_progress })
    }
}

const SNAPSHOT_VERSION: u8 = 1;

/// Why [`MessageAssembler::restore`] refused a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// Written by a version of the SDK that this one does not read.
    UnsupportedVersion(u8),
    /// The bytes end in the middle of an entry.
    Truncated,
    /// A message format byte other than 0 (text) or 1 (binary).
    UnknownFormat(u8),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedVersion(version) => {
                write!(f, "unsupported message snapshot version {version}")
            }
            Self::Truncated => f.write_str("message snapshot is truncated"),
            Self::UnknownFormat(format) => {
                write!(f, "unknown message format {format} in snapshot")
            }
        }
    }
}

impl std::error::Error for SnapshotError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(connection: ConnectionId, format: DataFormat, data: &[u8], eom: bool) -> DataIn {
        DataIn {
            connection,
            format,
            data: data.to_vec(),
            eom,
            eol: false,
        }
    }

    fn message(connection: ConnectionId, format: MessageFormat, data: &[u8]) -> Message {
        Message {
            connection,
            format,
            data: data.to_vec(),
        }
    }

    #[test]
    fn a_borrowed_single_chunk_stays_borrowed_and_fragments_are_joined() {
        let mut messages = MessageAssembler::default();
        let bytes = [7u8, 8];
        let borrowed = |format, data, eom| DataInRef {
            connection: 1,
            format,
            data,
            eom,
            eol: false,
        };
        let whole = messages
            .push_ref(borrowed(DataFormat::Text, &bytes, true))
            .unwrap();
        assert!(matches!(whole.data, Cow::Borrowed(b) if b.as_ptr() == bytes.as_ptr()));
        assert_eq!(
            messages.push_ref(borrowed(DataFormat::Binary, b"ab", false)),
            None
        );
        assert_eq!(
            messages.push_ref(borrowed(DataFormat::Continuation, b"c", true)),
            Some(MessageRef {
                connection: 1,
                format: MessageFormat::Binary,
                data: Cow::Owned(b"abc".to_vec()),
            })
        );
        assert!(!messages.is_assembling(1));
    }

    #[test]
    fn a_whole_chunk_passes_borrowed_beside_another_connections_fragments() {
        let mut messages = MessageAssembler::default();
        let borrowed = |connection, format, data, eom| DataInRef {
            connection,
            format,
            data,
            eom,
            eol: false,
        };
        assert_eq!(
            messages.push_ref(borrowed(1, DataFormat::Text, b"he", false)),
            None
        );
        let bytes = *b"whole";
        let whole = messages
            .push_ref(borrowed(2, DataFormat::Binary, &bytes, true))
            .unwrap();
        assert_eq!((whole.connection, whole.format), (2, MessageFormat::Binary));
        assert!(matches!(whole.data, Cow::Borrowed(b) if b.as_ptr() == bytes.as_ptr()));
        // A continuation that ends a message is never passed through.
        assert_eq!(
            messages
                .push_ref(borrowed(1, DataFormat::Continuation, b"y", true))
                .map(|m| m.data.into_owned()),
            Some(b"hey".to_vec())
        );
        assert_eq!(
            messages.push_ref(borrowed(1, DataFormat::Continuation, b"!", true)),
            None
        );
        // A whole chunk on a connection mid-message replaces its message.
        messages.push_ref(borrowed(1, DataFormat::Text, b"stale", false));
        assert!(
            messages
                .push_ref(borrowed(1, DataFormat::Text, b"new", true))
                .is_some()
        );
        assert!(!messages.is_assembling(1));
    }

    #[test]
    fn a_single_chunk_is_a_whole_message() {
        let mut messages = MessageAssembler::default();
        assert_eq!(
            messages.push(chunk(1, DataFormat::Binary, &[1, 2, 3], true)),
            Some(message(1, MessageFormat::Binary, &[1, 2, 3]))
        );
        assert!(!messages.is_assembling(1));
    }

    #[test]
    fn fragments_join_with_the_first_chunks_format() {
        let mut messages = MessageAssembler::default();
        assert_eq!(
            messages.push(chunk(1, DataFormat::Text, b"ab", false)),
            None
        );
        assert!(messages.is_assembling(1));
        assert_eq!(
            messages.push(chunk(1, DataFormat::Continuation, b"", false)),
            None
        );
        assert_eq!(
            messages.push(chunk(1, DataFormat::Continuation, b"cd", true)),
            Some(message(1, MessageFormat::Text, b"abcd"))
        );
        assert!(!messages.is_assembling(1));
    }

    #[test]
    fn connections_are_reassembled_independently() {
        let mut messages = MessageAssembler::default();
        assert_eq!(
            messages.push(chunk(1, DataFormat::Text, b"one-", false)),
            None
        );
        assert_eq!(
            messages.push(chunk(2, DataFormat::Binary, b"two-", false)),
            None
        );
        assert_eq!(
            messages.push(chunk(3, DataFormat::Text, b"three", true)),
            Some(message(3, MessageFormat::Text, b"three"))
        );
        assert_eq!(
            messages.push(chunk(2, DataFormat::Continuation, b"done", true)),
            Some(message(2, MessageFormat::Binary, b"two-done"))
        );
        assert_eq!(
            messages.push(chunk(1, DataFormat::Continuation, b"done", true)),
            Some(message(1, MessageFormat::Text, b"one-done"))
        );
    }

    #[test]
    fn forget_drops_an_unfinished_message_and_its_later_fragments() {
        let mut messages = MessageAssembler::default();
        messages.push(chunk(1, DataFormat::Text, b"partial", false));
        messages.forget(1);
        assert!(!messages.is_assembling(1));
        assert_eq!(
            messages.push(chunk(1, DataFormat::Continuation, b"rest", true)),
            None
        );
    }

    #[test]
    fn a_new_first_chunk_replaces_an_unfinished_message() {
        let mut messages = MessageAssembler::default();
        messages.push(chunk(1, DataFormat::Text, b"stale", false));
        assert_eq!(
            messages.push(chunk(1, DataFormat::Binary, b"new", true)),
            Some(message(1, MessageFormat::Binary, b"new"))
        );
        assert!(!messages.is_assembling(1));
    }

    #[test]
    fn unfinished_messages_survive_snapshot_and_restore() {
        let mut old = MessageAssembler::default();
        old.push(chunk(1, DataFormat::Text, "héllo ".as_bytes(), false));
        old.push(chunk(9, DataFormat::Binary, &[0, 1], false));
        old.push(chunk(5, DataFormat::Binary, b"done", true));

        let mut new = MessageAssembler::restore(&old.snapshot()).unwrap();
        assert!(!new.is_assembling(5));
        assert_eq!(
            new.push(chunk(1, DataFormat::Continuation, b"world", true)),
            Some(message(1, MessageFormat::Text, "héllo world".as_bytes()))
        );
        assert_eq!(
            new.push(chunk(9, DataFormat::Continuation, &[2], true)),
            Some(message(9, MessageFormat::Binary, &[0, 1, 2]))
        );
        let empty = MessageAssembler::restore(&new.snapshot()).unwrap();
        assert!(!empty.is_assembling(1) && !empty.is_assembling(9));
    }

    #[test]
    fn damaged_snapshots_are_refused() {
        let mut messages = MessageAssembler::default();
        messages.push(chunk(1, DataFormat::Text, b"abc", false));
        let good = messages.snapshot();

        assert_eq!(
            MessageAssembler::restore(&[]).unwrap_err(),
            SnapshotError::Truncated
        );
        assert_eq!(
            MessageAssembler::restore(&[2]).unwrap_err(),
            SnapshotError::UnsupportedVersion(2)
        );
        // Any cut after the version byte ends inside the one entry.
        for cut in 2..good.len() {
            assert_eq!(
                MessageAssembler::restore(&good[..cut]).unwrap_err(),
                SnapshotError::Truncated,
                "cut at {cut}"
            );
        }
        let mut bad_format = good.clone();
        bad_format[9] = 7;
        assert_eq!(
            MessageAssembler::restore(&bad_format).unwrap_err(),
            SnapshotError::UnknownFormat(7)
        );
    }
}
