//! The server's permessage-deflate choices and their `Key=Value` config parser.

use std::fmt;

/// LZ77 window size as a base-2 logarithm, 8..=15 (RFC 7692 §7.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WindowBits(u8);

impl WindowBits {
    /// 256-byte window, the smallest RFC 7692 allows.
    pub const MIN: Self = Self(8);
    /// 32 KiB window, the largest and the default.
    pub const MAX: Self = Self(15);

    /// `None` outside 8..=15.
    pub const fn new(bits: u8) -> Option<Self> {
        if bits >= Self::MIN.0 && bits <= Self::MAX.0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    pub const fn get(self) -> u8 {
        self.0
    }
}

/// zlib compression level, 0 (store) ..= 9 (best).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CompressionLevel(u8);

impl CompressionLevel {
    /// `None` above 9.
    pub const fn new(level: u8) -> Option<Self> {
        if level <= 9 { Some(Self(level)) } else { None }
    }

    pub const fn get(self) -> u8 {
        self.0
    }
}

/// zlib memLevel, 1..=9: sizes the compressor's symbol buffers
/// (`2^(memLevel+6)` entries, 7 bytes each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemLevel(u8);

impl MemLevel {
    /// `None` outside 1..=9.
    pub const fn new(level: u8) -> Option<Self> {
        if level >= 1 && level <= 9 {
            Some(Self(level))
        } else {
            None
        }
    }

    pub const fn get(self) -> u8 {
        self.0
    }
}

/// Where zlib state lives; see the module docs for the bytes each costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MemoryMode {
    /// Each connection keeps its own compressor and decompressor between
    /// messages, so context takeover works both ways (best ratio, most memory).
    Dedicated,
    /// No connection keeps zlib state between messages: the server always
    /// answers `server_no_context_takeover` and `client_no_context_takeover`,
    /// and every message borrows state from a small per-thread pool.
    #[default]
    Shared,
}

/// The server's permessage-deflate configuration. Defaults follow the seed
/// (`EnablePermessageDeflate` = True) and, for memory, favour many connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateSettings {
    /// `EnablePermessageDeflate`: accept the extension when a client offers it.
    pub enabled: bool,
    /// `DeflateThreshold` (default 1024, as in ws): outgoing messages shorter
    /// than this many bytes are sent uncompressed (deflate saves little on
    /// them and costs CPU).
    pub threshold: usize,
    /// `DeflateCompressionLevel` (default 1: the fastest, 2-3x faster than
    /// 2 and up for a somewhat worse ratio; see the module docs).
    pub compression_level: CompressionLevel,
    /// `DeflateMemLevel` (default 8, zlib's).
    pub mem_level: MemLevel,
    /// `DeflateServerMaxWindowBits`: the largest window the server compresses
    /// with (a client may ask for less).
    pub server_max_window_bits: WindowBits,
    /// `DeflateClientMaxWindowBits`: the window the server asks clients to
    /// compress with, when their offer lets the server choose.
    pub client_max_window_bits: WindowBits,
    /// `DeflateServerNoContextTakeover`: reset the compressor after each message.
    pub server_no_context_takeover: bool,
    /// `DeflateClientNoContextTakeover`: ask clients to reset theirs.
    pub client_no_context_takeover: bool,
    /// `DeflateMemoryMode`: `Shared` (default, no zlib state held by idle
    /// connections) or `Dedicated`.
    pub memory_mode: MemoryMode,
}

impl Default for DeflateSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: 1024,
            compression_level: CompressionLevel(1),
            mem_level: MemLevel(8),
            server_max_window_bits: WindowBits::MAX,
            client_max_window_bits: WindowBits::MAX,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            memory_mode: MemoryMode::default(),
        }
    }
}

/// A config key this module owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Enable,
    Threshold,
    CompressionLevel,
    MemLevel,
    ServerMaxWindowBits,
    ClientMaxWindowBits,
    ServerNoContextTakeover,
    ClientNoContextTakeover,
    MemoryMode,
}

impl Key {
    const ALL: [(Key, &'static str); 9] = [
        (Key::Enable, "EnablePermessageDeflate"),
        (Key::Threshold, "DeflateThreshold"),
        (Key::CompressionLevel, "DeflateCompressionLevel"),
        (Key::MemLevel, "DeflateMemLevel"),
        (Key::ServerMaxWindowBits, "DeflateServerMaxWindowBits"),
        (Key::ClientMaxWindowBits, "DeflateClientMaxWindowBits"),
        (
            Key::ServerNoContextTakeover,
            "DeflateServerNoContextTakeover",
        ),
        (
            Key::ClientNoContextTakeover,
            "DeflateClientNoContextTakeover",
        ),
        (Key::MemoryMode, "DeflateMemoryMode"),
    ];

    /// Keys match case-insensitively, like the seed's `Config("Key=Value")`.
    fn find(name: &str) -> Option<(Key, &'static str)> {
        Self::ALL
            .into_iter()
            .find(|(_, canonical)| canonical.eq_ignore_ascii_case(name))
    }
}

/// Why a `Key=Value` setting was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingError {
    /// The key is not one of [`DeflateSettings::KEYS`].
    UnknownKey { key: String },
    /// The key is known but the value does not parse or is out of range.
    InvalidValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKey { key } => write!(f, "unknown permessage-deflate setting {key:?}"),
            Self::InvalidValue {
                key,
                value,
                expected,
            } => write!(f, "invalid value {value:?} for {key}: expected {expected}"),
        }
    }
}

impl std::error::Error for SettingError {}

impl DeflateSettings {
    /// The config keys [`DeflateSettings::set`] understands.
    pub const KEYS: [&'static str; 9] = {
        let mut keys = [""; 9];
        let mut i = 0;
        while i < keys.len() {
            keys[i] = Key::ALL[i].1;
            i += 1;
        }
        keys
    };

    /// Applies one `Key=Value` config setting. Booleans are the seed's:
    /// `True`/`False`, `1`/`0`, `Yes`/`No` (any case); the memory mode is
    /// `Dedicated` or `Shared` (any case).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SettingError> {
        let (key, name) = Key::find(key).ok_or_else(|| SettingError::UnknownKey {
            key: key.to_owned(),
        })?;
        let value = value.trim();
        let invalid = |expected| SettingError::InvalidValue {
            key: name,
            value: value.to_owned(),
            expected,
        };
        let number = |expected| value.parse::<u8>().map_err(|_| invalid(expected));
        let boolean = || parse_bool(value).ok_or_else(|| invalid("True, False, 1, 0, Yes or No"));
        const WINDOW: &str = "an integer from 8 to 15";
        match key {
            Key::Enable => self.enabled = boolean()?,
            Key::Threshold => {
                self.threshold = value.parse().map_err(|_| invalid("a number of bytes"))?
            }
            Key::CompressionLevel => {
                const EXPECTED: &str = "an integer from 0 to 9";
                self.compression_level =
                    CompressionLevel::new(number(EXPECTED)?).ok_or_else(|| invalid(EXPECTED))?
            }
            Key::MemLevel => {
                const EXPECTED: &str = "an integer from 1 to 9";
                self.mem_level =
                    MemLevel::new(number(EXPECTED)?).ok_or_else(|| invalid(EXPECTED))?
            }
            Key::ServerMaxWindowBits => {
                self.server_max_window_bits =
                    WindowBits::new(number(WINDOW)?).ok_or_else(|| invalid(WINDOW))?
            }
            Key::ClientMaxWindowBits => {
                self.client_max_window_bits =
                    WindowBits::new(number(WINDOW)?).ok_or_else(|| invalid(WINDOW))?
            }
            Key::ServerNoContextTakeover => self.server_no_context_takeover = boolean()?,
            Key::ClientNoContextTakeover => self.client_no_context_takeover = boolean()?,
            Key::MemoryMode => {
                self.memory_mode = if value.eq_ignore_ascii_case("Dedicated") {
                    MemoryMode::Dedicated
                } else if value.eq_ignore_ascii_case("Shared") {
                    MemoryMode::Shared
                } else {
                    return Err(invalid("Dedicated or Shared"));
                }
            }
        }
        Ok(())
    }

    /// Reads one setting as text, in the form [`DeflateSettings::set`] takes.
    pub fn get(&self, key: &str) -> Result<String, SettingError> {
        let (key, _) = Key::find(key).ok_or_else(|| SettingError::UnknownKey {
            key: key.to_owned(),
        })?;
        let boolean = |value: bool| if value { "True" } else { "False" }.to_owned();
        Ok(match key {
            Key::Enable => boolean(self.enabled),
            Key::Threshold => self.threshold.to_string(),
            Key::CompressionLevel => self.compression_level.get().to_string(),
            Key::MemLevel => self.mem_level.get().to_string(),
            Key::ServerMaxWindowBits => self.server_max_window_bits.get().to_string(),
            Key::ClientMaxWindowBits => self.client_max_window_bits.get().to_string(),
            Key::ServerNoContextTakeover => boolean(self.server_no_context_takeover),
            Key::ClientNoContextTakeover => boolean(self.client_no_context_takeover),
            Key::MemoryMode => match self.memory_mode {
                MemoryMode::Dedicated => "Dedicated".to_owned(),
                MemoryMode::Shared => "Shared".to_owned(),
            },
        })
    }

    /// Whether the server will reset its compressor after every message,
    /// by its own choice or because of the memory mode.
    pub(super) fn wants_server_no_context_takeover(&self) -> bool {
        self.server_no_context_takeover || self.memory_mode == MemoryMode::Shared
    }

    /// Whether the server asks clients to reset their compressor after
    /// every message, by its own choice or because of the memory mode.
    pub(super) fn wants_client_no_context_takeover(&self) -> bool {
        self.client_no_context_takeover || self.memory_mode == MemoryMode::Shared
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_enable_deflate_in_shared_mode() {
        let settings = DeflateSettings::default();
        assert!(settings.enabled);
        assert_eq!(settings.memory_mode, MemoryMode::Shared);
        assert_eq!(settings.server_max_window_bits.get(), 15);
        assert!(settings.wants_server_no_context_takeover());
        assert!(settings.wants_client_no_context_takeover());
    }

    #[test]
    fn every_key_is_accepted_in_any_case() {
        let mut settings = DeflateSettings::default();
        settings.set("enablepermessagedeflate", "False").unwrap();
        settings.set("DeflateThreshold", " 0 ").unwrap();
        settings.set("DEFLATECOMPRESSIONLEVEL", "9").unwrap();
        settings.set("DeflateMemLevel", "1").unwrap();
        settings.set("DeflateServerMaxWindowBits", "8").unwrap();
        settings.set("DeflateClientMaxWindowBits", "10").unwrap();
        settings
            .set("DeflateServerNoContextTakeover", "true")
            .unwrap();
        settings
            .set("DeflateClientNoContextTakeover", "TRUE")
            .unwrap();
        settings.set("DeflateMemoryMode", "dedicated").unwrap();
        assert_eq!(
            settings,
            DeflateSettings {
                enabled: false,
                threshold: 0,
                compression_level: CompressionLevel::new(9).unwrap(),
                mem_level: MemLevel::new(1).unwrap(),
                server_max_window_bits: WindowBits::MIN,
                client_max_window_bits: WindowBits::new(10).unwrap(),
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                memory_mode: MemoryMode::Dedicated,
            }
        );
        assert_eq!(DeflateSettings::KEYS.len(), Key::ALL.len());
        assert_eq!(DeflateSettings::KEYS[0], "EnablePermessageDeflate");
    }

    #[test]
    fn every_key_reads_back_what_was_set() {
        let mut settings = DeflateSettings::default();
        let values = [
            ("EnablePermessageDeflate", "no", "False"),
            ("DeflateThreshold", "0", "0"),
            ("DeflateCompressionLevel", "6", "6"),
            ("DeflateMemLevel", "3", "3"),
            ("DeflateServerMaxWindowBits", "9", "9"),
            ("DeflateClientMaxWindowBits", "12", "12"),
            ("DeflateServerNoContextTakeover", "1", "True"),
            ("DeflateClientNoContextTakeover", "yes", "True"),
            ("DeflateMemoryMode", "DEDICATED", "Dedicated"),
        ];
        assert_eq!(values.len(), DeflateSettings::KEYS.len());
        for (key, value, canonical) in values {
            settings.set(key, value).unwrap();
            assert_eq!(settings.get(key).unwrap(), canonical, "{key}");
            assert_eq!(
                settings.get(&key.to_ascii_uppercase()).unwrap(),
                canonical,
                "{key}"
            );
            // What get returns, set takes.
            let mut copy = DeflateSettings::default();
            copy.set(key, canonical).unwrap();
            assert_eq!(copy.get(key).unwrap(), canonical, "{key}");
        }
        assert_eq!(
            settings.get("Deflate"),
            Err(SettingError::UnknownKey {
                key: "Deflate".into()
            })
        );
    }

    #[test]
    fn errors_name_the_key_and_the_value() {
        let mut settings = DeflateSettings::default();
        let cases = [
            ("DeflateServerMaxWindowBits", "16", "8 to 15"),
            ("deflateclientmaxwindowbits", "7", "8 to 15"),
            ("DeflateMemLevel", "0", "1 to 9"),
            ("DeflateCompressionLevel", "-1", "0 to 9"),
            ("DeflateThreshold", "1k", "number of bytes"),
            (
                "EnablePermessageDeflate",
                "maybe",
                "True, False, 1, 0, Yes or No",
            ),
            ("DeflateMemoryMode", "pooled", "Dedicated or Shared"),
        ];
        for (key, value, expected) in cases {
            let error = settings.set(key, value).unwrap_err();
            let message = error.to_string();
            let canonical = Key::find(key).unwrap().1;
            assert!(message.contains(canonical), "{message}");
            assert!(message.contains(&format!("{value:?}")), "{message}");
            assert!(message.contains(expected), "{message}");
        }
        assert_eq!(
            settings,
            DeflateSettings::default(),
            "refused values change nothing"
        );
        assert_eq!(
            settings.set("DeflateWindow", "9"),
            Err(SettingError::UnknownKey {
                key: "DeflateWindow".into()
            })
        );
    }
}
