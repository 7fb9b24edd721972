//! Accepting connections and placing each on a core.
//!
//! One thread accepts (the runtime that started listening, core 0) and
//! every connection is served to its end by the core it is placed on. New
//! connections go to the cores that [`activation`](super::activation) says
//! are taking them, in turn: one while one is enough. A connection placed
//! on another core leaves this thread's reactor and goes through that
//! core's inbox; the core spawns its task, which registers it with the
//! core's reactor, so its reads, dispatch and writes never wake another
//! thread afterwards. The task is allocated on the core that frees it: a
//! task allocated here and freed there (when its connection parks) left
//! its memory in this thread's heap, 350 B more per idle connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::cores::Cores;
use super::session::{self, Accepted, AcceptedStream, ParkingLot};
use super::settings::Settings;
use super::{ServerShared, io_error_code};
use crate::net::listener;
use crate::net::tls::TlsServerConfig;

/// A core that serves connections.
pub(super) struct Core {
    /// Where connections for another core go; None for core 0, which
    /// spawns its own.
    inbox: Option<UnboundedSender<Accepted>>,
    /// Its parking lot for idle plain connections, unless parking is off.
    lot: Option<Arc<ParkingLot>>,
}

/// Where new connections go: the first `accepting` cores, in turn.
pub(super) struct Placement {
    /// Core 0 first: the accepting thread's own.
    cores: Vec<Core>,
    /// How many of `cores` take new connections, from the activation.
    pub accepting: Arc<AtomicUsize>,
    next: usize,
}

impl Placement {
    /// The first `accepting` of `cores` take connections to begin with.
    pub fn new(cores: Vec<Core>, accepting: usize) -> Self {
        Self {
            cores,
            accepting: Arc::new(AtomicUsize::new(accepting)),
            next: 0,
        }
    }

    /// The index of the core the next connection goes to.
    fn pick(&mut self) -> usize {
        let taking = self
            .accepting
            .load(Ordering::Relaxed)
            .clamp(1, self.cores.len().max(1));
        self.next = (self.next + 1) % taking;
        self.next
    }
}

/// Core 0 (the calling runtime) and the extra `cores`, each with its
/// parking lot and its inbox's task, made on the core itself: TLS
/// sessions never park, nor does anything with ParkDelay 0. The inboxes'
/// tasks end with the placement (StopListening).
pub(super) async fn cores(
    shared: &ServerShared,
    settings: &Settings,
    cores: &Cores,
    tls: bool,
) -> Vec<Core> {
    let delay = Duration::from_millis(settings.park_delay.into());
    let parks = !tls && settings.park_delay > 0;
    let start_lot = move || parks.then(|| ParkingLot::start(delay));
    let mut placed = vec![(None, start_lot())];
    for handle in cores.handles() {
        let (inbox, arrivals) = mpsc::unbounded_channel();
        let lot = handle
            .spawn(async move {
                tokio::spawn(serve_arrivals(arrivals));
                start_lot()
            })
            .await;
        placed.push((Some(inbox), lot.ok().flatten()));
    }
    placed
        .into_iter()
        .map(|(inbox, lot)| Core {
            inbox,
            lot: lot.and_then(|lot| {
                lot.map_err(|e| {
                    shared.handler.error(
                        None,
                        io_error_code(&e),
                        &format!("idle connections will not park: {e}"),
                    )
                })
                .ok()
            }),
        })
        .collect()
}

/// A core's side of its inbox: each connection placed on it gets its task
/// here.
async fn serve_arrivals(mut arrivals: UnboundedReceiver<Accepted>) {
    while let Some(accepted) = arrivals.recv().await {
        tokio::spawn(session::serve(Box::new(accepted)));
    }
}

/// Accepts until aborted by StopListening and places each connection.
pub(super) async fn accept_loop(
    shared: Arc<ServerShared>,
    listener: TcpListener,
    tls: Option<Arc<TlsServerConfig>>,
    mut placement: Placement,
) {
    // Bound to one address, every connection's local address is that one:
    // no getsockname per connection.
    let local = listener
        .local_addr()
        .ok()
        .filter(|addr| !addr.ip().is_unspecified());
    let no_delay = listener::inherited_no_delay(&listener);
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                shared
                    .handler
                    .error(None, io_error_code(&e), &format!("accept failed: {e}"));
                // Out of file descriptors and the like: back off rather
                // than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let index = placement.pick();
        let core = &placement.cores[index];
        // Another core's socket leaves this thread's reactor.
        let stream = match &core.inbox {
            None => AcceptedStream::Registered(stream),
            Some(_) => match stream.into_std() {
                Ok(stream) => AcceptedStream::HandedOver(stream),
                Err(e) => {
                    shared.handler.error(
                        None,
                        io_error_code(&e),
                        &format!("cannot hand {remote} to its core: {e}"),
                    );
                    continue;
                }
            },
        };
        let accepted = Accepted {
            server: shared.clone(),
            stream,
            remote,
            local,
            no_delay,
            tls: tls.clone(),
            lot: core.lot.clone(),
        };
        match &core.inbox {
            None => {
                tokio::spawn(session::serve(Box::new(accepted)));
            }
            // Fails only if the core's runtime has ended; the connection
            // is dropped with it.
            Some(inbox) => {
                let _ = inbox.send(accepted);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(cores: usize, accepting: usize) -> Placement {
        let cores = (0..cores)
            .map(|_| Core {
                inbox: None,
                lot: None,
            })
            .collect();
        Placement::new(cores, accepting)
    }

    #[test]
    fn connections_go_to_the_accepting_cores_in_turn() {
        let mut p = placement(4, 1);
        assert!((0..5).all(|_| p.pick() == 0));
        p.accepting.store(3, Ordering::Relaxed);
        let picks: Vec<usize> = (0..6).map(|_| p.pick()).collect();
        assert_eq!(picks, [1, 2, 0, 1, 2, 0]);
        // More than there are cores, or none: clamped.
        p.accepting.store(9, Ordering::Relaxed);
        assert!((0..8).map(|_| p.pick()).all(|i| i < 4));
        p.accepting.store(0, Ordering::Relaxed);
        assert_eq!(p.pick(), 0);
    }
}
