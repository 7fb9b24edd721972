//! What may be negotiated: SSLEnabledProtocols (the seed's bitmask),
//! SSLEnabledCipherSuites (mapped to rustls's ring suites) and
//! SSLCipherStrength, and the names and strengths reported afterwards.

use rustls::crypto::ring::ALL_CIPHER_SUITES;
use rustls::{ProtocolVersion, SupportedCipherSuite, SupportedProtocolVersion};

use super::error::TlsConfigError;

/// TLS 1.2 in the seed's bitmask (both of its bits: client 0x400, server 0x800).
pub const TLS12: u32 = 0x0C00;
/// TLS 1.3 in the seed's bitmask.
pub const TLS13: u32 = 0x3000;
/// The seed's bits for SSL2, SSL3, TLS 1.0 and 1.1: accepted so configs
/// written for the seed's clients (4032) still load, but never enabled.
const LEGACY: u32 = 0x00FC | 0x0300;

/// wsserver enables TLS 1.2 and 1.3 (15360). The seed's server default of
/// 3072 (1.2 only) dates from when its 1.3 came from another provider;
/// rustls's 1.3 is its main path, every current client prefers it, and it
/// saves a round trip per connection. 1.2 stays for older clients.
pub const DEFAULT_PROTOCOLS: u32 = TLS12 | TLS13;

/// Validates an SSLEnabledProtocols value: only known bits, and at least
/// one version rustls can speak.
pub fn parse_protocols(key: &str, value: &str) -> Result<u32, TlsConfigError> {
    let raw = value.trim();
    let parsed = match raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => raw.parse().ok(),
    };
    match parsed {
        Some(mask) if mask & !(TLS12 | TLS13 | LEGACY) == 0 && mask & (TLS12 | TLS13) != 0 => {
            Ok(mask)
        }
        _ => Err(TlsConfigError::InvalidValue {
            key: key.to_owned(),
            value: raw.to_owned(),
            expected: "a bitmask including 3072 (TLS 1.2) or 12288 (TLS 1.3); \
                       SSL2-TLS 1.1 bits are ignored"
                .to_owned(),
        }),
    }
}

/// The rustls versions a validated mask enables.
pub fn versions(mask: u32) -> Vec<&'static SupportedProtocolVersion> {
    let mut out = Vec::new();
    if mask & TLS13 != 0 {
        out.push(&rustls::version::TLS13);
    }
    if mask & TLS12 != 0 {
        out.push(&rustls::version::TLS12);
    }
    out
}

/// A parsed SSLEnabledCipherSuites: `*` or the suites named, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CipherSuites {
    All,
    Only(Vec<String>),
}

impl CipherSuites {
    /// Parses `*` or names separated by `;` or `,`, checking each against
    /// the suites rustls implements. TLS 1.3 suites take the IANA name
    /// (TLS_AES_128_GCM_SHA256) or rustls's (TLS13_AES_128_GCM_SHA256).
    pub fn parse(key: &str, value: &str) -> Result<Self, TlsConfigError> {
        let raw = value.trim();
        if raw.is_empty() || raw == "*" {
            return Ok(Self::All);
        }
        let names: Vec<String> = raw
            .split([';', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let unknown: Vec<String> = names
            .iter()
            .filter(|name| find_suite(name).is_none())
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(TlsConfigError::UnknownCipherSuites {
                key: key.to_owned(),
                names: unknown,
                supported: ALL_CIPHER_SUITES
                    .iter()
                    .map(|s| suite_name(*s))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(Self::Only(names))
    }

    /// The suites to offer, strongest first within the order given, keeping
    /// those of at least `min_strength` bits (SSLCipherStrength).
    pub fn select(&self, min_strength: u32) -> Vec<SupportedCipherSuite> {
        let chosen: Vec<SupportedCipherSuite> = match self {
            Self::All => ALL_CIPHER_SUITES.to_vec(),
            Self::Only(names) => names.iter().filter_map(|n| find_suite(n)).collect(),
        };
        chosen
            .into_iter()
            .filter(|s| cipher_strength(*s) >= min_strength)
            .collect()
    }
}

impl std::fmt::Display for CipherSuites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Only(names) => f.write_str(&names.join(";")),
        }
    }
}

fn find_suite(name: &str) -> Option<SupportedCipherSuite> {
    ALL_CIPHER_SUITES.iter().copied().find(|s| {
        let rustls_name = s.suite().as_str().unwrap_or_default();
        name.eq_ignore_ascii_case(rustls_name) || name.eq_ignore_ascii_case(&suite_name(*s))
    })
}

/// The IANA name of a suite (rustls spells TLS 1.3 suites TLS13_...).
pub fn suite_name(suite: SupportedCipherSuite) -> String {
    let name = suite.suite().as_str().unwrap_or("unknown");
    name.strip_prefix("TLS13_")
        .map_or_else(|| name.to_owned(), |rest| format!("TLS_{rest}"))
}

/// The bulk cipher of a suite: AES_128_GCM, AES_256_GCM or CHACHA20_POLY1305.
pub fn bulk_cipher(suite: SupportedCipherSuite) -> String {
    let name = suite_name(suite);
    let after_with = name.split_once("_WITH_").map_or(&name[4..], |(_, c)| c);
    after_with
        .rsplit_once('_')
        .map_or(after_with, |(cipher, _hash)| cipher)
        .to_owned()
}

/// Key length of the bulk cipher in bits.
pub fn cipher_strength(suite: SupportedCipherSuite) -> u32 {
    let cipher = bulk_cipher(suite);
    if cipher.starts_with("AES_128") {
        128
    } else {
        // AES-256 and ChaCha20 both use 256-bit keys.
        256
    }
}

/// "TLS1.2" or "TLS1.3", as the seed names versions.
pub fn version_name(version: ProtocolVersion) -> String {
    match version {
        ProtocolVersion::TLSv1_2 => "TLS1.2".to_owned(),
        ProtocolVersion::TLSv1_3 => "TLS1.3".to_owned(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_bitmask_maps_to_rustls_versions() {
        let v = |mask| {
            versions(mask)
                .iter()
                .map(|v| version_name(v.version))
                .collect::<Vec<_>>()
        };
        assert_eq!(v(parse_protocols("K", "3072").unwrap()), ["TLS1.2"]);
        assert_eq!(v(parse_protocols("K", "12288").unwrap()), ["TLS1.3"]);
        assert_eq!(
            v(parse_protocols("K", "0x3C00").unwrap()),
            ["TLS1.3", "TLS1.2"]
        );
        // The seed's client default (TLS 1.0-1.2) loads as TLS 1.2.
        assert_eq!(v(parse_protocols("K", "4032").unwrap()), ["TLS1.2"]);
        assert_eq!(v(DEFAULT_PROTOCOLS), ["TLS1.3", "TLS1.2"]);
    }

    #[test]
    fn masks_without_a_usable_version_are_refused() {
        for bad in ["0", "192", "768", "65536", "tls13"] {
            let e = parse_protocols("SSLEnabledProtocols", bad).unwrap_err();
            assert!(e.to_string().contains(&format!("\"{bad}\"")), "{bad}: {e}");
        }
    }

    #[test]
    fn suites_take_iana_and_rustls_names() {
        let s = CipherSuites::parse(
            "K",
            "TLS_AES_256_GCM_SHA384; tls13_chacha20_poly1305_sha256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        )
        .unwrap();
        let names: Vec<_> = s.select(0).into_iter().map(suite_name).collect();
        assert_eq!(
            names,
            [
                "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]
        );
    }

    #[test]
    fn unknown_suites_are_named() {
        let e = CipherSuites::parse(
            "SSLEnabledCipherSuites",
            "TLS_AES_128_GCM_SHA256;TLS_RSA_WITH_RC4_128_MD5;CALG_AES_256",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("TLS_RSA_WITH_RC4_128_MD5, CALG_AES_256"), "{e}");
        assert!(!e.contains("rustls: TLS_AES_128"), "{e}");
    }

    #[test]
    fn strength_filters_and_names_the_bulk_cipher() {
        let by_name = |n: &str| find_suite(n).unwrap();
        let aes128 = by_name("TLS_AES_128_GCM_SHA256");
        let strong = CipherSuites::All.select(256);
        assert!(strong.contains(&by_name("TLS_AES_256_GCM_SHA384")));
        assert!(!strong.contains(&aes128));
        assert!(CipherSuites::All.select(0).contains(&aes128));
        assert_eq!(
            bulk_cipher(by_name("TLS_AES_128_GCM_SHA256")),
            "AES_128_GCM"
        );
        assert_eq!(
            bulk_cipher(by_name("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256")),
            "CHACHA20_POLY1305"
        );
        assert_eq!(cipher_strength(by_name("TLS_AES_128_GCM_SHA256")), 128);
    }
}
