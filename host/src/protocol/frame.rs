//! Frame headers (RFC 6455 §5.2): parsing client frames and encoding server
//! frames. Payloads are handled by the caller so they never need copying here.

use super::ProtocolError;

/// The longest header a client frame can have: 2 + 8 (length) + 4 (mask).
pub const MAX_CLIENT_HEADER: usize = 14;
/// The longest header a server frame can have: 2 + 8 (length), never masked.
pub const MAX_SERVER_HEADER: usize = 10;
/// Control frames carry at most this many payload bytes.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcodes defined by RFC 6455.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl OpCode {
    fn from_bits(bits: u8) -> Result<Self, ProtocolError> {
        Ok(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// Close, ping and pong: short, never fragmented, may interleave.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A parsed client frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1: "per-message compressed" when permessage-deflate is negotiated.
    pub rsv1: bool,
    pub opcode: OpCode,
    pub mask: [u8; 4],
    pub payload_len: u64,
}

/// Parses a client frame header from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of the header, otherwise the
/// header and its length in bytes. Rejects what no extension can make valid:
/// RSV2/RSV3, reserved opcodes, unmasked frames, bad control frames and
/// 64-bit lengths with the top bit set. RSV1 is left to the caller, which
/// knows whether an extension was negotiated.
pub fn parse_client_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x30 != 0 {
        return Err(ProtocolError::ReservedBits);
    }
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    let opcode = OpCode::from_bits(b0 & 0x0F)?;
    if b1 & 0x80 == 0 {
        return Err(ProtocolError::UnmaskedFrame);
    }
    let (payload_len, len_bytes) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 2),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(b);
                let len = u64::from_be_bytes(bytes);
                if len >> 63 != 0 {
                    return Err(ProtocolError::LengthOverflow);
                }
                (len, 8)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 0),
    };
    if opcode.is_control() {
        if !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        if payload_len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(ProtocolError::ControlFrameTooLong);
        }
    }
    let mask_at = 2 + len_bytes;
    let Some(mask) = buf.get(mask_at..mask_at + 4) else {
        return Ok(None);
    };
    let header = FrameHeader {
        fin,
        rsv1,
        opcode,
        mask: [mask[0], mask[1], mask[2], mask[3]],
        payload_len,
    };
    Ok(Some((header, mask_at + 4)))
}

/// The common client frame, recognised without the general parse: final,
/// uncompressed, text or binary, masked, with a 7- or 16-bit length.
/// Returns its opcode, mask, header length and payload length; None for
/// any other frame, or a header not all in `buf` ([`parse_client_header`]
/// takes those, with its errors).
#[inline]
pub fn plain_data_header(buf: &[u8]) -> Option<(OpCode, [u8; 4], usize, usize)> {
    let [b0, b1, ..] = *buf else {
        return None;
    };
    let opcode = match b0 {
        0x81 => OpCode::Text,
        0x82 => OpCode::Binary,
        _ => return None,
    };
    // The mask bit set, then the length: 0-125 inline, 126 a 16-bit one.
    let (payload_len, mask_at) = match b1 {
        0x80..=0xFD => (usize::from(b1 & 0x7F), 2),
        0xFE => (
            usize::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        _ => return None,
    };
    let mask = buf.get(mask_at..mask_at + 4)?;
    Some((
        opcode,
        [mask[0], mask[1], mask[2], mask[3]],
        mask_at + 4,
        payload_len,
    ))
}

/// Appends an unmasked server frame header to `out`; returns its length.
/// The header goes in as arrays of constant length, composed in
/// registers: no call to memcpy, and no bytes stored one by one and read
/// back as a word (a stalled store forwarding, once per message).
/// Inlined, its flags and opcode are the callers' constants.
#[inline(always)]
pub fn push_server_header(
    out: &mut Vec<u8>,
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload_len: usize,
) -> usize {
    let b0 = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode as u8;
    match payload_len {
        0..=125 => {
            out.extend_from_slice(&[b0, payload_len as u8]);
            2
        }
        126..=0xFFFF => {
            let [high, low] = (payload_len as u16).to_be_bytes();
            out.extend_from_slice(&[b0, 126, high, low]);
            4
        }
        _ => {
            out.extend_from_slice(&[b0, 127]);
            out.extend_from_slice(&(payload_len as u64).to_be_bytes());
            10
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(b0: u8, len_field: &[u8]) -> Vec<u8> {
        let mut v = vec![b0];
        v.extend_from_slice(len_field);
        v[1] |= 0x80;
        v.extend_from_slice(&[1, 2, 3, 4]);
        v
    }

    /// The short-cut takes exactly the frames it names, and reads them as
    /// the general parse does: every first and second byte, with a 16-bit
    /// length after them and the mask, whole and cut short.
    #[test]
    fn plain_data_header_agrees_with_the_general_parse() {
        let mut taken = 0;
        for b0 in 0..=255u8 {
            for b1 in 0..=255u8 {
                let whole = [b0, b1, 0x01, 0x02, 9, 8, 7, 6, 5, 4];
                for len in 0..=whole.len() {
                    let buf = &whole[..len];
                    let general = parse_client_header(buf);
                    let plain_case = match general {
                        Ok(Some((h, _))) => {
                            h.fin
                                && !h.rsv1
                                && matches!(h.opcode, OpCode::Text | OpCode::Binary)
                                && h.payload_len <= u64::from(u16::MAX)
                        }
                        _ => false,
                    };
                    let expected = match general {
                        Ok(Some((h, n))) if plain_case => {
                            Some((h.opcode, h.mask, n, h.payload_len as usize))
                        }
                        _ => None,
                    };
                    assert_eq!(plain_data_header(buf), expected, "{buf:02x?}");
                    taken += usize::from(expected.is_some());
                }
            }
        }
        // 0x81 and 0x82, each with the 126 short lengths (a 6-byte header,
        // whole in 6 to 10 bytes) and the 16-bit one (8 bytes, in 8 to 10).
        assert_eq!(taken, 2 * (126 * 5 + 3));
    }

    #[test]
    fn parses_each_length_encoding() {
        let short = masked(0x81, &[5]);
        let (h, n) = parse_client_header(&short).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.payload_len, n),
            (true, OpCode::Text, 5, 6)
        );
        assert_eq!(h.mask, [1, 2, 3, 4]);

        let medium = masked(0x02, &[126, 0x01, 0x00]);
        let (h, n) = parse_client_header(&medium).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.payload_len, n),
            (false, OpCode::Binary, 256, 8)
        );

        let long = masked(0x82, &[127, 0, 0, 0, 0, 0, 1, 0, 0]);
        let (h, n) = parse_client_header(&long).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (65536, 14));
    }

    #[test]
    fn partial_headers_ask_for_more() {
        let long = masked(0x82, &[127, 0, 0, 0, 0, 0, 1, 0, 0]);
        for cut in 0..long.len() {
            assert_eq!(parse_client_header(&long[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn rejects_what_rfc_6455_forbids() {
        let err = |b: Vec<u8>| parse_client_header(&b).unwrap_err();
        assert_eq!(err(masked(0xA1, &[0])), ProtocolError::ReservedBits);
        assert_eq!(err(masked(0x91, &[0])), ProtocolError::ReservedBits);
        assert_eq!(err(masked(0x83, &[0])), ProtocolError::ReservedOpcode(3));
        assert_eq!(err(masked(0x8B, &[0])), ProtocolError::ReservedOpcode(0xB));
        assert_eq!(err(vec![0x81, 0x00]), ProtocolError::UnmaskedFrame);
        assert_eq!(
            err(masked(0x09, &[0])),
            ProtocolError::FragmentedControlFrame
        );
        assert_eq!(
            err(masked(0x89, &[126, 0, 126])),
            ProtocolError::ControlFrameTooLong
        );
        assert_eq!(
            err(masked(0x82, &[127, 0x80, 0, 0, 0, 0, 0, 0, 0])),
            ProtocolError::LengthOverflow
        );
    }

    #[test]
    fn rsv1_is_reported_not_rejected() {
        let (h, _) = parse_client_header(&masked(0xC1, &[0])).unwrap().unwrap();
        assert!(h.rsv1);
    }

    #[test]
    fn encodes_minimal_lengths() {
        let header = |fin, rsv1, opcode, len| {
            let mut out = vec![0xEE];
            let n = push_server_header(&mut out, fin, rsv1, opcode, len);
            assert_eq!(n, out.len() - 1);
            out.split_off(1)
        };
        assert_eq!(header(true, false, OpCode::Text, 125), [0x81, 125]);
        assert_eq!(
            header(false, true, OpCode::Binary, 126),
            [0x42, 126, 0, 126]
        );
        assert_eq!(
            header(true, false, OpCode::Binary, 0xFFFF),
            [0x82, 126, 0xFF, 0xFF]
        );
        assert_eq!(
            header(true, false, OpCode::Binary, 70_000),
            [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
    }
}
