//! Client-to-server masking (RFC 6455 §5.3), applied a word at a time, and
//! 32 bytes at a time on CPUs with AVX2; and whole binary payloads handed
//! out still masked, for handlers that unmask their copy
//! ([`MaskedPayload`]).

use std::mem::MaybeUninit;

/// Payloads from this length on are worth the AVX2 path's feature check.
#[cfg(target_arch = "x86_64")]
const WIDE_FROM: usize = 256;

/// XORs `data` in place with `mask`, where `data` starts `offset` bytes into
/// the frame payload (so a payload can be unmasked in pieces as it arrives).
#[inline]
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= WIDE_FROM && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        #[allow(unsafe_code)]
        unsafe {
            mask_avx2(data, mask, offset)
        };
        return;
    }
    mask_words(data, mask, offset);
}

/// The same loop compiled for AVX2: a release build targets baseline
/// x86-64 (16-byte SSE2 vectors), and a 4 KiB payload unmasks 2.5 times
/// faster 32 bytes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn mask_avx2(data: &mut [u8], mask: [u8; 4], offset: usize) {
    mask_words(data, mask, offset);
}

/// Appends `masked` to `out`, unmasked (the mask applied from its first
/// byte on): each byte read once and written once. Unmasking in place and
/// then copying writes every byte twice, and at 4 KiB the stores are what
/// the two loops wait on.
// Inlined, the small payloads' loop included: a call and its setup were a
// third of this function's cost for a 32 B message.
#[inline(always)]
fn extend_unmasked(out: &mut Vec<u8>, masked: &[u8], mask: [u8; 4]) {
    out.reserve(masked.len());
    let len = out.len();
    let copy = &mut out.spare_capacity_mut()[..masked.len()];
    #[cfg(target_arch = "x86_64")]
    if masked.len() >= WIDE_FROM {
        copy_unmasked_wide(masked, copy, mask);
    } else {
        copy_unmasked_words(masked, copy, mask);
    }
    #[cfg(not(target_arch = "x86_64"))]
    copy_unmasked_words(masked, copy, mask);
    // SAFETY: the copy wrote all `masked.len()` bytes past `len`.
    #[allow(unsafe_code)]
    unsafe {
        out.set_len(len + masked.len())
    };
}

/// [`copy_unmasked_words`] of a large payload, with AVX2 when the CPU has
/// it: out of line, so the small payloads' callers stay small.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn copy_unmasked_wide(masked: &[u8], copy: &mut [MaybeUninit<u8>], mask: [u8; 4]) {
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        #[allow(unsafe_code)]
        unsafe {
            copy_unmasked_avx2(masked, copy, mask)
        };
    } else {
        copy_unmasked_words(masked, copy, mask);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn copy_unmasked_avx2(masked: &[u8], copy: &mut [MaybeUninit<u8>], mask: [u8; 4]) {
    copy_unmasked_words(masked, copy, mask);
}

/// Writes every byte of `copy` (as long as `masked`): `masked` unmasked.
#[inline(always)]
fn copy_unmasked_words(masked: &[u8], copy: &mut [MaybeUninit<u8>], mask: [u8; 4]) {
    let word = repeated(u32::from_ne_bytes(mask));
    let mut to = copy.chunks_exact_mut(8);
    let mut from = masked.chunks_exact(8);
    for (to, from) in (&mut to).zip(&mut from) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(from);
        let unmasked = (u64::from_ne_bytes(bytes) ^ word).to_ne_bytes();
        for (to, byte) in to.iter_mut().zip(unmasked) {
            to.write(byte);
        }
    }
    // Whole words keep the mask phase, so the tail starts at mask[0].
    for ((to, byte), m) in to
        .into_remainder()
        .iter_mut()
        .zip(from.remainder())
        .zip(mask.iter().cycle())
    {
        to.write(byte ^ m);
    }
}

/// A whole message's payload still masked as the client sent it. A handler
/// that copies the payload anyway (an echo, a plugin's batch) unmasks it as
/// it copies ([`MaskedPayload::extend_unmasked`]): the bytes are written
/// once, not unmasked in the read buffer and then copied. Anything else
/// unmasks it in place ([`MaskedPayload::unmask`]).
#[derive(Debug, PartialEq, Eq)]
pub struct MaskedPayload<'a> {
    bytes: &'a mut [u8],
    mask: [u8; 4],
}

impl<'a> MaskedPayload<'a> {
    /// `bytes` as they came, masked with `mask` from their first byte on.
    #[inline]
    pub fn new(bytes: &'a mut [u8], mask: [u8; 4]) -> Self {
        Self { bytes, mask }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends the payload, unmasked, to `out`.
    #[inline(always)]
    pub fn extend_unmasked(&self, out: &mut Vec<u8>) {
        extend_unmasked(out, self.bytes, self.mask);
    }

    /// The payload, unmasked in place.
    #[inline]
    pub fn unmask(self) -> &'a [u8] {
        apply_mask(self.bytes, self.mask, 0);
        self.bytes
    }
}

/// The mask twice over, as the word that XORs 8 bytes at once: built
/// from the mask as one 32-bit value. Built byte by byte it cost 29
/// instructions a 32 B message through the echo plugin and 25 through the
/// native echo (callgrind, bench/RESULTS.md session 18).
#[inline(always)]
fn repeated(mask: u32) -> u64 {
    u64::from(mask) | (u64::from(mask) << 32)
}

#[inline(always)]
fn mask_words(data: &mut [u8], mask: [u8; 4], offset: usize) {
    // The mask from `offset`'s byte of it on: its bytes turned by as many.
    let turn = 8 * (offset % 4) as u32;
    let mask = u32::from_ne_bytes(mask);
    let rotated = if cfg!(target_endian = "little") {
        mask.rotate_right(turn)
    } else {
        mask.rotate_left(turn)
    };
    let word = repeated(rotated);
    let rotated = rotated.to_ne_bytes();
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // Whole words keep the mask phase, so the tail starts at rotated[0].
    for (byte, m) in chunks
        .into_remainder()
        .iter_mut()
        .zip(rotated.iter().cycle())
    {
        *byte ^= m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(data: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= mask[(offset + i) % 4];
        }
    }

    #[test]
    fn matches_bytewise_masking_for_every_length_and_offset() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        // Past WIDE_FROM too, with tails of every length.
        for len in (0..40).chain(250..300).chain([4096]) {
            for offset in 0..8 {
                let original: Vec<u8> = (0..len).map(|b| (b as u8).wrapping_mul(31)).collect();
                let mut fast = original.clone();
                let mut slow = original.clone();
                apply_mask(&mut fast, mask, offset);
                naive(&mut slow, mask, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn a_masked_payload_unmasked_in_place_or_as_a_copy_is_the_same() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        for len in (0..20).chain(250..270).chain([4096, 4099]) {
            let plain: Vec<u8> = (0..len).map(|b| (b as u8).wrapping_mul(7)).collect();
            let mut wire = plain.clone();
            naive(&mut wire, mask, 0);
            let mut copy = b"head".to_vec();
            MaskedPayload::new(&mut wire.clone(), mask).extend_unmasked(&mut copy);
            assert_eq!(&copy[..4], b"head");
            assert_eq!(copy[4..], plain[..], "copy, len {len}");
            assert_eq!(
                MaskedPayload::new(&mut wire, mask).unmask(),
                &plain[..],
                "in place, len {len}"
            );
        }
    }

    #[test]
    fn unmasking_in_pieces_equals_unmasking_whole() {
        let mask = [1, 2, 3, 4];
        let original: Vec<u8> = (0..1000).map(|b| b as u8).collect();
        let mut whole = original.clone();
        apply_mask(&mut whole, mask, 0);
        let mut pieces = original.clone();
        let (a, rest) = pieces.split_at_mut(13);
        let (b, c) = rest.split_at_mut(300);
        apply_mask(a, mask, 0);
        apply_mask(b, mask, 13);
        apply_mask(c, mask, 313);
        assert_eq!(whole, pieces);
    }
}
