//! Per-thread pools of zlib state and output buffers.
//!
//! A connection that resets its (de)compressor after every message has no
//! reason to keep one while idle: it borrows one here for the length of a
//! message and gives it back. A pool keeps a few idle items per thread, so
//! a busy thread stops allocating and a quiet one holds little.
//!
//! Items may come back on another thread than the one they left (tokio
//! moves tasks); they are plain heap state, so that only shifts which pool
//! keeps them.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::thread::LocalKey;

use zlib_rs::{Deflate, DeflateConfig, Inflate};

/// Idle items kept per pool per thread; more than that are freed.
const IDLE_PER_THREAD: usize = 4;

/// Size of the buffers inflated output is written to, and so the largest
/// chunk handed to a sink at once.
pub(super) const OUTPUT_CHUNK: usize = 16 * 1024;

/// What a compressor is built with; only identical ones are interchangeable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct DeflateParams {
    pub level: u8,
    /// 9..=15: zlib cannot compress raw deflate with 8 (see `Deflater`).
    pub window_bits: u8,
    pub mem_level: u8,
}

impl DeflateParams {
    /// A fresh compressor; the field types have already bounded each value
    /// to what zlib-rs accepts.
    pub fn create(self) -> Deflate {
        Deflate::new_with_config(DeflateConfig {
            level: i32::from(self.level),
            // Negative: raw deflate, no zlib header.
            window_bits: -i32::from(self.window_bits),
            mem_level: i32::from(self.mem_level),
            ..DeflateConfig::default()
        })
    }
}

thread_local! {
    static DEFLATERS: RefCell<Vec<(DeflateParams, Box<Deflate>)>> = const { RefCell::new(Vec::new()) };
    // Connections hold their state boxed (small when idle); pooling the
    // boxes hands them back and forth without moving the state.
    #[allow(clippy::vec_box)]
    static INFLATERS: RefCell<Vec<Box<Inflate>>> = const { RefCell::new(Vec::new()) };
    static OUTPUT_BUFFERS: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A compressor in its initial state, reused when the thread has one.
pub(super) fn take_deflate(params: DeflateParams) -> Box<Deflate> {
    take(&DEFLATERS, |(idle, _)| *idle == params)
        .map(|(_, deflate)| deflate)
        .unwrap_or_else(|| Box::new(params.create()))
}

/// Resets and keeps a compressor for the next message on this thread.
pub(super) fn give_deflate(params: DeflateParams, mut deflate: Box<Deflate>) {
    deflate.reset();
    give(&DEFLATERS, (params, deflate));
}

/// A raw-deflate decompressor in its initial state. It always has a 32 KiB
/// window: that decodes any window a peer may use, and zlib-rs allocates
/// 32 KiB whatever size is asked.
pub(super) fn take_inflate() -> Box<Inflate> {
    take(&INFLATERS, |_| true).unwrap_or_else(|| Box::new(Inflate::new(false, 15)))
}

/// Resets and keeps a decompressor for the next message on this thread.
pub(super) fn give_inflate(mut inflate: Box<Inflate>) {
    inflate.reset(false);
    give(&INFLATERS, inflate);
}

/// An output buffer borrowed for one call; it goes back on drop.
pub(super) struct OutputBuffer(Option<Box<[u8]>>);

impl OutputBuffer {
    pub fn take() -> Self {
        let buffer = take(&OUTPUT_BUFFERS, |_| true)
            .unwrap_or_else(|| vec![0; OUTPUT_CHUNK].into_boxed_slice());
        Self(Some(buffer))
    }
}

impl Deref for OutputBuffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl DerefMut for OutputBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for OutputBuffer {
    fn drop(&mut self) {
        if let Some(buffer) = self.0.take() {
            give(&OUTPUT_BUFFERS, buffer);
        }
    }
}

/// Removes the last idle item that fits. Never panics: during thread
/// teardown, or if somehow re-entered, the pool just looks empty.
fn take<T: 'static>(
    pool: &'static LocalKey<RefCell<Vec<T>>>,
    fits: impl Fn(&T) -> bool,
) -> Option<T> {
    pool.try_with(|items| {
        let mut items = items.try_borrow_mut().ok()?;
        let index = items.iter().rposition(fits)?;
        Some(items.swap_remove(index))
    })
    .ok()
    .flatten()
}

/// Keeps an idle item, or drops it when the pool is full or unavailable.
fn give<T: 'static>(pool: &'static LocalKey<RefCell<Vec<T>>>, item: T) {
    let _ = pool.try_with(|items| {
        if let Ok(mut items) = items.try_borrow_mut()
            && items.len() < IDLE_PER_THREAD
        {
            items.push(item);
        }
    });
}

#[cfg(test)]
pub(super) fn idle_counts() -> (usize, usize) {
    (
        DEFLATERS.with(|items| items.borrow().len()),
        INFLATERS.with(|items| items.borrow().len()),
    )
}
