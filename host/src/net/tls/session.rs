//! What a finished handshake negotiated: the values behind the seed's
//! per-connection SSLNegotiated*[ConnectionId] settings and the SSLStatus
//! message.

use rustls::NamedGroup;
use rustls::server::ServerConnection;
use serde::Serialize;

use super::protocols::{bulk_cipher, cipher_strength, suite_name, version_name};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NegotiatedSession {
    /// "TLS1.2" or "TLS1.3".
    pub version: String,
    /// IANA suite name, e.g. TLS_AES_128_GCM_SHA256.
    pub cipher_suite: String,
    /// Bulk cipher, e.g. AES_128_GCM.
    pub cipher: String,
    /// Bulk cipher key length in bits.
    pub cipher_strength: u32,
    /// Key exchange group, e.g. X25519 or secp256r1.
    pub key_exchange: String,
    /// Size of the key exchange group in bits.
    pub key_exchange_strength: u32,
    /// The host name the client asked for (SNI), if any.
    pub server_name: Option<String>,
}

/// The seed's per-connection keys this type answers.
pub const NEGOTIATED_KEYS: &[&str] = &[
    "SSLNegotiatedCipher",
    "SSLNegotiatedCipherStrength",
    "SSLNegotiatedCipherSuite",
    "SSLNegotiatedKeyExchange",
    "SSLNegotiatedKeyExchangeStrength",
    "SSLNegotiatedVersion",
];

impl NegotiatedSession {
    /// Reads a connection whose handshake is complete; None before that.
    pub fn of(conn: &ServerConnection) -> Option<Self> {
        let suite = conn.negotiated_cipher_suite()?;
        let version = conn.protocol_version()?;
        let group = conn.negotiated_key_exchange_group().map(|g| g.name());
        Some(Self {
            version: version_name(version),
            cipher_suite: suite_name(suite),
            cipher: bulk_cipher(suite),
            cipher_strength: cipher_strength(suite),
            key_exchange: group.map_or_else(String::new, group_name),
            key_exchange_strength: group.map_or(0, group_bits),
            server_name: conn.server_name().map(str::to_owned),
        })
    }

    /// The value of an SSLNegotiated* key (any case), or None for other keys.
    pub fn get(&self, key: &str) -> Option<String> {
        let name = NEGOTIATED_KEYS
            .iter()
            .find(|k| k.eq_ignore_ascii_case(key))?;
        Some(match *name {
            "SSLNegotiatedCipher" => self.cipher.clone(),
            "SSLNegotiatedCipherStrength" => self.cipher_strength.to_string(),
            "SSLNegotiatedCipherSuite" => self.cipher_suite.clone(),
            "SSLNegotiatedKeyExchange" => self.key_exchange.clone(),
            "SSLNegotiatedKeyExchangeStrength" => self.key_exchange_strength.to_string(),
            _ => self.version.clone(),
        })
    }

    /// The SSLStatus message for a completed handshake.
    pub fn status_message(&self) -> String {
        let sni = self
            .server_name
            .as_deref()
            .map_or_else(String::new, |name| format!(", server name {name}"));
        format!(
            "{} handshake complete: {} ({}-bit), key exchange {}{sni}",
            self.version, self.cipher_suite, self.cipher_strength, self.key_exchange
        )
    }
}

fn group_name(group: NamedGroup) -> String {
    group
        .as_str()
        .map_or_else(|| format!("{group:?}"), str::to_owned)
}

fn group_bits(group: NamedGroup) -> u32 {
    match group {
        NamedGroup::X25519 => 255,
        NamedGroup::secp256r1 => 256,
        NamedGroup::secp384r1 => 384,
        NamedGroup::secp521r1 => 521,
        NamedGroup::X448 => 448,
        _ => 0,
    }
}
