//! What the backplane writes to Redis: channel and key names, the
//! messages published on a channel, and the per-node subscriber counts.

use bytes::{BufMut, Bytes, BytesMut};

use crate::MessageKind;

/// Names every channel and key starts with.
const PREFIX: &str = "wsserver";
/// Version of the message layout, first byte of every message.
const VERSION: u8 = 1;
const TEXT: u8 = 1;
const BINARY: u8 = 2;
/// Version, node id, kind.
const HEADER: usize = 1 + 8 + 1;

/// The sharded channel of a tenant's topic. The tenant's length comes
/// first, so no tenant or topic name can make two pairs share a channel.
pub fn channel(tenant: &str, topic: &str) -> String {
    format!("{PREFIX}:{}:{tenant}:{topic}", tenant.len())
}

/// The hash holding every node's subscriber counts for a tenant's topics.
pub fn presence_key(tenant: &str) -> String {
    format!("{PREFIX}:{}:{tenant}:presence", tenant.len())
}

/// A node's id as written in presence fields: 16 hex digits.
pub fn node_hex(node: u64) -> String {
    format!("{node:016x}")
}

/// A presence field: the node, then the topic (the node's width is fixed).
pub fn presence_field(node: u64, topic: &str) -> String {
    format!("{}{topic}", node_hex(node))
}

/// A presence value: the count and when it stops counting (Unix ms), so
/// a node that vanishes drops out of the sums without anyone deleting it.
pub fn presence_value(count: usize, expires_ms: u64) -> String {
    format!("{count} {expires_ms}")
}

/// One node's entry of a presence hash.
#[derive(Debug, PartialEq, Eq)]
pub struct PresenceEntry<'a> {
    pub node: u64,
    pub topic: &'a str,
    pub count: u64,
    pub expires_ms: u64,
}

/// Reads a presence field and value; None for anything malformed.
pub fn parse_presence<'a>(field: &'a str, value: &str) -> Option<PresenceEntry<'a>> {
    let node = u64::from_str_radix(field.get(..16)?, 16).ok()?;
    let topic = field.get(16..)?;
    let (count, expires) = value.split_once(' ')?;
    Some(PresenceEntry {
        node,
        topic,
        count: count.parse().ok()?,
        expires_ms: expires.parse().ok()?,
    })
}

/// A message as published on a channel: the publishing node (so it can
/// skip its own messages) and the WebSocket message kind.
pub fn encode(node: u64, kind: MessageKind, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER + payload.len());
    out.put_u8(VERSION);
    out.put_u64_le(node);
    out.put_u8(match kind {
        MessageKind::Text => TEXT,
        MessageKind::Binary => BINARY,
    });
    out.put_slice(payload);
    out.freeze()
}

/// A message read from a channel.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    pub node: u64,
    pub kind: MessageKind,
    pub payload: Bytes,
}

/// Reads a message; None for another version or a malformed one.
pub fn decode(message: Bytes) -> Option<Decoded> {
    if message.len() < HEADER || message[0] != VERSION {
        return None;
    }
    let node = u64::from_le_bytes(message[1..9].try_into().ok()?);
    let kind = match message[9] {
        TEXT => MessageKind::Text,
        BINARY => MessageKind::Binary,
        _ => return None,
    };
    Some(Decoded {
        node,
        kind,
        payload: message.slice(HEADER..),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_keep_tenant_and_topic_apart() {
        assert_eq!(channel("acme", "lobby"), "wsserver:4:acme:lobby");
        assert_ne!(channel("a:b", "c"), channel("a", "b:c"));
        assert_eq!(presence_key("acme"), "wsserver:4:acme:presence");
    }

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let bytes = encode(0xfeed, MessageKind::Text, b"hi");
        let decoded = decode(bytes).unwrap();
        assert_eq!(decoded.node, 0xfeed);
        assert_eq!(decoded.kind, MessageKind::Text);
        assert_eq!(&decoded.payload[..], b"hi");
        assert!(decode(Bytes::from_static(b"short")).is_none());
        let mut other_version = encode(1, MessageKind::Binary, b"").to_vec();
        other_version[0] = 9;
        assert!(decode(other_version.into()).is_none());
    }

    #[test]
    fn presence_entries_round_trip() {
        let field = presence_field(0xab, "room:1");
        let value = presence_value(3, 1_700_000_000_000);
        assert_eq!(
            parse_presence(&field, &value),
            Some(PresenceEntry {
                node: 0xab,
                topic: "room:1",
                count: 3,
                expires_ms: 1_700_000_000_000
            })
        );
        assert_eq!(parse_presence("xyz", &value), None);
        assert_eq!(parse_presence(&field, "3"), None);
    }
}
