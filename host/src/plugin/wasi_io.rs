//! `wasi:io` streams and polls for synchronous guest calls on any thread.
//!
//! wasmtime-wasi's synchronous bindings finish the calls that may wait (a
//! stream's blocking write, flush, read or drop; `poll`; a pollable's
//! `block`) with `block_on` on the calling thread's tokio runtime. A turn
//! run inline, on a server thread (see `instance/mod.rs`), is inside that
//! runtime: blocking on it from within panics, so a guest that printed a
//! line (a panic message, a debug `println!`) lost its instance there.
//!
//! These are the same functions with a wait that works on every thread:
//! - off a runtime (the executors), exactly as wasmtime-wasi does;
//! - on a server thread, the future is polled once with a runtime of this
//!   module current, and most are done then (stdout and stderr take
//!   everything at once); one that must wait (a guest asleep on a clock)
//!   is finished on a short-lived helper thread with that runtime, while
//!   the server thread waits for it, as it would for any guest code. The
//!   wait is capped by the call's deadline (`wasi_clocks.rs`).
//!
//! Everything that does not wait is wasmtime-wasi's own implementation.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Handle, Runtime};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::p2::bindings::io::{poll as async_poll, streams as async_streams};
use wasmtime_wasi::p2::bindings::sync::io::poll::{self, Pollable};
use wasmtime_wasi::p2::bindings::sync::io::streams::{self, InputStream, OutputStream};
use wasmtime_wasi::p2::{StreamError, StreamResult};
use wasmtime_wasi::runtime::in_tokio;

/// The runtime that runs guests' waits begun on server threads: one
/// worker drives their timers while the helper thread waits.
static WAITS: LazyLock<Option<Runtime>> = LazyLock::new(|| {
    Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("plugin-wasi-wait")
        .enable_all()
        .build()
        .map_err(|e| tracing::error!("cannot start the plugins' WASI wait runtime: {e}"))
        .ok()
});

thread_local! {
    /// Time this thread has spent in [`wait`], all calls together.
    static BLOCKED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// Time the calling thread has spent waiting for guests' WASI calls: a
/// turn's share tells a sleeping plugin from one that was preempted.
pub(crate) fn time_blocked() -> Duration {
    BLOCKED.get()
}

/// Runs `future` to its end from a synchronous guest call, on any thread.
fn wait<T: Send>(future: impl Future<Output = T> + Send) -> wasmtime::Result<T> {
    let started = Instant::now();
    let out = wait_untimed(future);
    BLOCKED.set(BLOCKED.get() + started.elapsed());
    out
}

fn wait_untimed<T: Send>(future: impl Future<Output = T> + Send) -> wasmtime::Result<T> {
    if Handle::try_current().is_err() {
        return Ok(in_tokio(future));
    }
    let runtime = WAITS
        .as_ref()
        .ok_or_else(|| wasmtime::format_err!("the plugins' WASI wait runtime could not start"))?;
    let mut future = pin!(future);
    {
        // Whatever the future registers (a timer) belongs to `runtime`,
        // which keeps running while this thread is blocked.
        let _current = runtime.enter();
        if let Poll::Ready(out) = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            return Ok(out);
        }
    }
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("plugin-wasi-wait".into())
            .spawn_scoped(scope, || runtime.block_on(future))
            .map_err(|e| {
                wasmtime::format_err!("cannot start a thread for a guest's WASI wait: {e}")
            })?;
        helper
            .join()
            .map_err(|_| wasmtime::format_err!("a guest's WASI wait panicked"))
    })
}

/// [`wait`] for the stream functions, whose failures are stream errors.
fn wait_stream<T: Send>(future: impl Future<Output = StreamResult<T>> + Send) -> StreamResult<T> {
    wait(future).map_err(StreamError::Trap)?
}

/// A store's resource table, seen through the waits above.
pub(crate) struct WaitAnywhere<'a>(&'a mut ResourceTable);

impl streams::Host for WaitAnywhere<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        <ResourceTable as streams::Host>::convert_stream_error(self.0, err)
    }
}

impl streams::HostOutputStream for WaitAnywhere<'_> {
    fn drop(&mut self, stream: Resource<OutputStream>) -> wasmtime::Result<()> {
        wait(async_streams::HostOutputStream::drop(self.0, stream))?
    }

    fn check_write(&mut self, stream: Resource<OutputStream>) -> StreamResult<u64> {
        <ResourceTable as streams::HostOutputStream>::check_write(self.0, stream)
    }

    fn write(&mut self, stream: Resource<OutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        <ResourceTable as streams::HostOutputStream>::write(self.0, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<OutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        wait_stream(async_streams::HostOutputStream::blocking_write_and_flush(
            self.0, stream, bytes,
        ))
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<OutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        wait_stream(
            async_streams::HostOutputStream::blocking_write_zeroes_and_flush(self.0, stream, len),
        )
    }

    fn subscribe(
        &mut self,
        stream: Resource<OutputStream>,
    ) -> wasmtime::Result<Resource<Pollable>> {
        <ResourceTable as streams::HostOutputStream>::subscribe(self.0, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<OutputStream>, len: u64) -> StreamResult<()> {
        <ResourceTable as streams::HostOutputStream>::write_zeroes(self.0, stream, len)
    }

    fn flush(&mut self, stream: Resource<OutputStream>) -> StreamResult<()> {
        <ResourceTable as streams::HostOutputStream>::flush(self.0, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<OutputStream>) -> StreamResult<()> {
        wait_stream(async_streams::HostOutputStream::blocking_flush(
            self.0, stream,
        ))
    }

    fn splice(
        &mut self,
        dst: Resource<OutputStream>,
        src: Resource<InputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        <ResourceTable as streams::HostOutputStream>::splice(self.0, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<OutputStream>,
        src: Resource<InputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        wait_stream(async_streams::HostOutputStream::blocking_splice(
            self.0, dst, src, len,
        ))
    }
}

impl streams::HostInputStream for WaitAnywhere<'_> {
    fn drop(&mut self, stream: Resource<InputStream>) -> wasmtime::Result<()> {
        wait(async_streams::HostInputStream::drop(self.0, stream))?
    }

    fn read(&mut self, stream: Resource<InputStream>, len: u64) -> StreamResult<Vec<u8>> {
        <ResourceTable as streams::HostInputStream>::read(self.0, stream, len)
    }

    fn blocking_read(&mut self, stream: Resource<InputStream>, len: u64) -> StreamResult<Vec<u8>> {
        wait_stream(async_streams::HostInputStream::blocking_read(
            self.0, stream, len,
        ))
    }

    fn skip(&mut self, stream: Resource<InputStream>, len: u64) -> StreamResult<u64> {
        <ResourceTable as streams::HostInputStream>::skip(self.0, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<InputStream>, len: u64) -> StreamResult<u64> {
        wait_stream(async_streams::HostInputStream::blocking_skip(
            self.0, stream, len,
        ))
    }

    fn subscribe(&mut self, stream: Resource<InputStream>) -> wasmtime::Result<Resource<Pollable>> {
        <ResourceTable as streams::HostInputStream>::subscribe(self.0, stream)
    }
}

impl poll::Host for WaitAnywhere<'_> {
    fn poll(&mut self, pollables: Vec<Resource<Pollable>>) -> wasmtime::Result<Vec<u32>> {
        wait(async_poll::Host::poll(self.0, pollables))?
    }
}

impl poll::HostPollable for WaitAnywhere<'_> {
    fn ready(&mut self, pollable: Resource<Pollable>) -> wasmtime::Result<bool> {
        wait(async_poll::HostPollable::ready(self.0, pollable))?
    }

    fn block(&mut self, pollable: Resource<Pollable>) -> wasmtime::Result<()> {
        wait(async_poll::HostPollable::block(self.0, pollable))?
    }

    fn drop(&mut self, pollable: Resource<Pollable>) -> wasmtime::Result<()> {
        <ResourceTable as poll::HostPollable>::drop(self.0, pollable)
    }
}

struct HasWaitAnywhere;

impl HasData for HasWaitAnywhere {
    type Data<'a> = WaitAnywhere<'a>;
}

/// Replaces WASI's `wasi:io/streams` and `wasi:io/poll` in `linker`
/// (which has WASI already) with the ones above.
pub(crate) fn add_to_linker<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    fn table<T: WasiView>(store: &mut T) -> WaitAnywhere<'_> {
        WaitAnywhere(store.ctx().table)
    }
    linker.allow_shadowing(true);
    let added = poll::add_to_linker::<T, HasWaitAnywhere>(linker, table)
        .and_then(|()| streams::add_to_linker::<T, HasWaitAnywhere>(linker, table));
    linker.allow_shadowing(false);
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAP: Duration = Duration::from_millis(30);

    #[test]
    fn a_wait_off_a_runtime_is_timed() {
        let before = time_blocked();
        wait(async { tokio::time::sleep(NAP).await }).unwrap();
        assert!(time_blocked() - before >= NAP);
    }

    #[test]
    fn a_wait_on_a_runtime_thread_finishes_instead_of_panicking() {
        // What a turn run inline meets: a current-thread runtime running
        // the caller (tokio's own block_on would panic here).
        let runtime = Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let before = time_blocked();
            assert_eq!(wait(async { 7 }).unwrap(), 7);
            // Made when first polled, as WASI's clock pollables are: its
            // timer is then the wait runtime's, which runs meanwhile.
            wait(async { tokio::time::sleep(NAP).await }).unwrap();
            assert!(time_blocked() - before >= NAP);
        });
    }
}
