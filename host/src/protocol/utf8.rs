//! UTF-8 validation of text that arrives in pieces (RFC 6455 §8.1), failing
//! as soon as an invalid byte arrives rather than at the end of the message.

/// The data is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Returns how many leading bytes of `data` are complete, valid UTF-8. The
/// remaining 0-3 bytes are the valid start of a character that continues in
/// the next piece. Fails if any byte sequence can never become valid.
pub fn valid_prefix_len(data: &[u8]) -> Result<usize, InvalidUtf8> {
    if simdutf8::basic::from_utf8(data).is_ok() {
        return Ok(data.len());
    }
    match simdutf8::compat::from_utf8(data) {
        Ok(_) => Ok(data.len()),
        Err(e) if e.error_len().is_none() => Ok(e.valid_up_to()),
        Err(_) => Err(InvalidUtf8),
    }
}

/// The bytes of one character split across two pieces of a message.
#[derive(Debug, Default, Clone, Copy)]
pub struct PartialChar {
    bytes: [u8; 4],
    len: u8,
}

impl PartialChar {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Holds the incomplete tail of a piece (at most 3 bytes).
    pub fn hold(&mut self, tail: &[u8]) {
        debug_assert!(self.is_empty() && tail.len() < 4);
        self.bytes[..tail.len()].copy_from_slice(tail);
        self.len = tail.len() as u8;
    }

    /// Continues the held character with bytes from the start of `next`.
    ///
    /// Returns how many bytes of `next` were used and, once the character is
    /// complete, its bytes (which are then released).
    pub fn complete(&mut self, next: &[u8]) -> Result<(usize, Option<&[u8]>), InvalidUtf8> {
        let held = usize::from(self.len);
        let want = char_len(self.bytes[0]).saturating_sub(held);
        let take = want.min(next.len());
        self.bytes[held..held + take].copy_from_slice(&next[..take]);
        let total = held + take;
        let valid = valid_prefix_len(&self.bytes[..total])?;
        if valid == total {
            self.len = 0;
            Ok((take, Some(&self.bytes[..total])))
        } else {
            self.len = total as u8;
            Ok((take, None))
        }
    }
}

/// The length of the character a lead byte starts; 1 for bytes that cannot
/// lead, which validation then rejects.
fn char_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_text_is_all_valid() {
        let text = "héllo €𝄞";
        assert_eq!(valid_prefix_len(text.as_bytes()), Ok(text.len()));
    }

    #[test]
    fn a_split_character_is_held_back() {
        let euro = "€".as_bytes();
        assert_eq!(valid_prefix_len(&[b'a', euro[0], euro[1]]), Ok(1));
    }

    #[test]
    fn invalid_bytes_fail_at_once_even_mid_character() {
        assert_eq!(valid_prefix_len(&[b'a', 0xFF]), Err(InvalidUtf8));
        // 0xF4 0x90 starts a code point above U+10FFFF: invalid before the
        // character is complete (Autobahn 6.4.* checks this).
        assert_eq!(valid_prefix_len(&[0xF4, 0x90]), Err(InvalidUtf8));
        assert_eq!(valid_prefix_len(&[0xED, 0xA0]), Err(InvalidUtf8));
    }

    #[test]
    fn partial_char_completes_across_pieces() {
        let clef = "𝄞".as_bytes();
        let mut p = PartialChar::default();
        p.hold(&clef[..1]);
        let (used, done) = p.complete(&clef[1..2]).unwrap();
        assert_eq!((used, done), (1, None));
        let (used, done) = p.complete(&[clef[2], clef[3], b'x']).unwrap();
        assert_eq!(used, 2);
        assert_eq!(done, Some(clef));
        assert!(p.is_empty());
    }

    #[test]
    fn partial_char_rejects_a_bad_continuation() {
        let mut p = PartialChar::default();
        p.hold(&[0xE2]);
        assert_eq!(p.complete(&[0x41]), Err(InvalidUtf8));
    }
}
