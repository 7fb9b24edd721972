//! Thread-per-core: extra threads, each running a current-thread tokio
//! runtime, that serve connections beside the runtime that started
//! listening. Each core runs the connections placed on it (see
//! [`acceptor`](super::acceptor)) to their end, so a connection's reads,
//! dispatch and writes never wake another thread; senders on other threads
//! (plugin executors, the admin API, other connections' broadcasts) reach
//! it through its waker, which works across runtimes.

use std::fs::File;
use std::io;
use std::sync::mpsc;
use std::thread;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// The extra cores' runtimes; dropping it stops them (their connections
/// end with them).
pub(crate) struct Cores {
    handles: Vec<Handle>,
    /// Each thread's `schedstat`, for the activation's CPU readings (None
    /// on a kernel without it).
    schedstats: Vec<Option<File>>,
    /// Dropped with the pool: each core's runtime then returns and is
    /// dropped on its own thread.
    _stops: Vec<oneshot::Sender<()>>,
}

impl std::fmt::Debug for Cores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cores")
            .field("threads", &self.handles.len())
            .finish()
    }
}

impl Cores {
    /// Starts `count` threads, each with a current-thread runtime.
    pub fn start(count: usize) -> io::Result<Self> {
        let mut cores = Self {
            handles: Vec::with_capacity(count),
            schedstats: Vec::with_capacity(count),
            _stops: Vec::with_capacity(count),
        };
        for index in 1..=count {
            let (stop, stopped) = oneshot::channel::<()>();
            let (started, handle) = mpsc::channel();
            thread::Builder::new()
                .name(format!("wsserver-core-{index}"))
                .spawn(move || {
                    // Built and dropped on this thread: a runtime may not
                    // be dropped inside another one's context.
                    let runtime = Builder::new_current_thread().enable_all().build();
                    match runtime {
                        Ok(runtime) => {
                            let schedstat = crate::cpu::open_thread_schedstat();
                            let _ = started.send(Ok((runtime.handle().clone(), schedstat)));
                            let _ = runtime.block_on(stopped);
                        }
                        Err(e) => {
                            let _ = started.send(Err(e));
                        }
                    }
                })?;
            let (handle, schedstat) = handle
                .recv()
                .map_err(|_| io::Error::other("a core thread ended while starting"))??;
            cores.handles.push(handle);
            cores.schedstats.push(schedstat);
            cores._stops.push(stop);
        }
        Ok(cores)
    }

    /// The extra cores' runtimes.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// A descriptor of each extra core's `schedstat`; None if any is
    /// missing.
    pub fn schedstats(&self) -> Option<Vec<File>> {
        self.schedstats
            .iter()
            .map(|file| file.as_ref()?.try_clone().ok())
            .collect()
    }
}
