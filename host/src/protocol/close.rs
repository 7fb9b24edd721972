//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use super::ProtocolError;
use super::utf8::valid_prefix_len;

pub const NORMAL: u16 = 1000;
pub const GOING_AWAY: u16 = 1001;
/// No code was present in the close frame (never sent on the wire).
pub const NO_STATUS: u16 = 1005;
/// The connection closed without a close frame (never sent on the wire).
pub const ABNORMAL: u16 = 1006;
/// A message broke the server's policy (e.g. a rate limit).
pub const POLICY_VIOLATION: u16 = 1008;
pub const INTERNAL_ERROR: u16 = 1011;

/// A close frame's payload is at most 125 bytes: 2 for the code, the rest
/// for the reason.
pub const MAX_REASON_LEN: usize = 123;

/// Whether `code` may appear in a close frame: the codes RFC 6455 and the
/// IANA registry define for use on the wire, and the 3000-4999 ranges for
/// libraries and applications.
pub fn is_valid_wire_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A validated close frame payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// `None` when the frame carried no payload.
    pub code: Option<u16>,
    pub reason: &'a str,
}

/// Validates a received close frame payload: empty, or a valid code followed
/// by a UTF-8 reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<CloseFrame<'_>, ProtocolError> {
    match payload {
        [] => Ok(CloseFrame {
            code: None,
            reason: "",
        }),
        [_] => Err(ProtocolError::InvalidClosePayload),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_wire_code(code) {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            match valid_prefix_len(reason) {
                Ok(n) if n == reason.len() => Ok(CloseFrame {
                    code: Some(code),
                    // Validated just above.
                    reason: std::str::from_utf8(reason).unwrap_or_default(),
                }),
                _ => Err(ProtocolError::InvalidUtf8),
            }
        }
    }
}

/// A close frame's payload, kept on the stack (every closing connection
/// builds one).
pub struct ClosePayload {
    bytes: [u8; 2 + MAX_REASON_LEN],
    len: usize,
}

impl std::ops::Deref for ClosePayload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Builds a close frame payload, cutting the reason at a character boundary
/// so the frame stays within the control frame limit.
pub fn encode_close_payload(code: u16, reason: &str) -> ClosePayload {
    let mut cut = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut bytes = [0; 2 + MAX_REASON_LEN];
    bytes[..2].copy_from_slice(&code.to_be_bytes());
    bytes[2..2 + cut].copy_from_slice(&reason.as_bytes()[..cut]);
    ClosePayload {
        bytes,
        len: 2 + cut,
    }
}

/// The description the seed uses for a standard close code.
pub fn default_description(code: u16) -> &'static str {
    match code {
        1000 => "Normal closure",
        1001 => "Going away",
        1002 => "Protocol error",
        1003 => "Unsupported data",
        1005 => "No status received",
        1006 => "Abnormal closure",
        1007 => "Invalid payload data",
        1008 => "Policy violation",
        1009 => "Message too big",
        1010 => "Mandatory extension",
        1011 => "Internal error",
        1012 => "Service restart",
        1013 => "Try again later",
        1014 => "Bad gateway",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes() {
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(is_valid_wire_code(ok), "{ok}");
        }
        for bad in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!is_valid_wire_code(bad), "{bad}");
        }
    }

    #[test]
    fn parses_payloads() {
        assert_eq!(parse_close_payload(&[]).unwrap().code, None);
        let f = parse_close_payload(&[0x03, 0xE8, b'b', b'y', b'e']).unwrap();
        assert_eq!((f.code, f.reason), (Some(1000), "bye"));
        assert_eq!(
            parse_close_payload(&[0x03]),
            Err(ProtocolError::InvalidClosePayload)
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xED]),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xE8, 0xFF]),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let reason = "é".repeat(100);
        let payload = encode_close_payload(1000, &reason);
        assert!(payload.len() <= 125);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
        assert_eq!(parse_close_payload(&payload).unwrap().code, Some(1000));
    }
}
