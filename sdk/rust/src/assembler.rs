//! Reassembly of fragmented messages from data-in chunks.

use std::collections::BTreeMap;

use crate::types::{ConnectionId, DataFormat, DataIn, MessageFormat};

/// A whole message received on a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub connection: ConnectionId,
    pub format: MessageFormat,
    pub data: Vec<u8>,
}

/// Joins the chunks of fragmented messages, per connection.
///
/// Feed it every [`DataIn`] of the connections you reassemble and call
/// [`forget`](Self::forget) when one disconnects. A message that arrives in
/// one chunk passes through without copying. Made for message mode: in line
/// mode every chunk has format continuation, and a continuation with no
/// message in progress starts a binary one.
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
        let first_chunk_format = match format {
            DataFormat::Text => MessageFormat::Text,
            DataFormat::Binary => MessageFormat::Binary,
            DataFormat::Continuation => {
                if let Some(message) = self.in_progress.get_mut(&connection) {
                    message.data.extend_from_slice(&data);
                    return if eom {
                        self.in_progress.remove(&connection)
                    } else {
                        None
                    };
                }
                MessageFormat::Binary
            }
        };
        // A first chunk starts a new message. The host never interleaves
        // messages, so a message still in progress here cannot complete and
        // is dropped.
        let message = Message {
            connection,
            format: first_chunk_format,
            data,
        };
        if eom {
            if !self.in_progress.is_empty() {
                self.in_progress.remove(&connection);
            }
            Some(message)
        } else {
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
}

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
        assert_eq!(messages.push(chunk(1, DataFormat::Text, b"ab", false)), None);
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
        assert_eq!(messages.push(chunk(1, DataFormat::Text, b"one-", false)), None);
        assert_eq!(messages.push(chunk(2, DataFormat::Binary, b"two-", false)), None);
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
    fn forget_drops_an_unfinished_message() {
        let mut messages = MessageAssembler::default();
        messages.push(chunk(1, DataFormat::Text, b"partial", false));
        messages.forget(1);
        assert!(!messages.is_assembling(1));
        // A continuation now has nothing to join and stands alone.
        assert_eq!(
            messages.push(chunk(1, DataFormat::Continuation, b"x", true)),
            Some(message(1, MessageFormat::Binary, b"x"))
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
}
