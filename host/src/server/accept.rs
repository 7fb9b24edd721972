//! Accepting connections and placing them on the cores.
//!
//! With BindExclusively (the default) the cores share one listening socket,
//! and one core accepts on it and deals the connections out to the cores in
//! turn, itself included. Each core polling the shared socket would wake
//! every core for each new connection, only for all but one to find
//! nothing to accept; on 2 cores that cost more server CPU per handshake
//! than the whole handshake's user-space work (see bench/RESULTS.md,
//! "Small messages and handshakes"). With BindExclusively=false every core
//! has a socket of its own (SO_REUSEPORT: the kernel spreads the
//! connections) and serves what it accepts.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::runtime::Handle;

use super::{ServerShared, io_error_code, session};
use crate::net::tls::TlsServerConfig;

/// Accepts on `listener` until the task is aborted (StopListening); each
/// connection is served by the next of this core and `cores`, in turn.
pub(super) async fn accept_loop(
    shared: Arc<ServerShared>,
    listener: std::net::TcpListener,
    tls: Option<Arc<TlsServerConfig>>,
    cores: Vec<Handle>,
) {
    // Bound to one address, every connection's local address is that one:
    // no getsockname per connection.
    let local = listener
        .local_addr()
        .ok()
        .filter(|addr| !addr.ip().is_unspecified());
    let listener = match register(listener) {
        Ok(listener) => listener,
        Err(e) => {
            let message = format!("cannot accept connections: {e}");
            return shared.handler.error(None, io_error_code(&e), &message);
        }
    };
    let mut turn = 0;
    loop {
        match accept(&listener).await {
            Ok((stream, remote)) => {
                let place = Placed {
                    server: shared.clone(),
                    stream,
                    remote,
                    local,
                    tls: tls.clone(),
                };
                turn = (turn + 1) % (cores.len() + 1);
                match turn.checked_sub(1).and_then(|core| cores.get(core)) {
                    None => place.serve(),
                    Some(core) => {
                        core.spawn(async move { place.serve() });
                    }
                }
            }
            Err(e) => {
                shared
                    .handler
                    .error(None, io_error_code(&e), &format!("accept failed: {e}"));
                // Out of file descriptors and the like: back off rather
                // than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The listening socket, registered with this core's reactor. Accepting
/// through tokio's TcpListener would register each connection here too,
/// and one served by another core would pay for moving its registration.
#[allow(unsafe_code)]
fn register(listener: std::net::TcpListener) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: the Socket owns its descriptor and the AsyncFd owns the
    // Socket, so the descriptor stays open and the same while registered.
    unsafe { AsyncFd::register_with_interest(Socket::from(listener), Interest::READABLE) }
        .map_err(io::Error::from)
}

/// The next connection, non-blocking and close-on-exec like tokio's own.
async fn accept(listener: &AsyncFd<Socket>) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    const FLAGS: i32 = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    loop {
        let mut ready = listener.readable().await?;
        // Would-block clears the readiness and waits again.
        if let Ok(accepted) = ready.try_io(|listener| listener.get_ref().accept4(FLAGS)) {
            let (socket, remote) = accepted?;
            let remote = remote
                .as_socket()
                .ok_or_else(|| io::Error::other("a TCP connection without an IP address"))?;
            return Ok((socket.into(), remote));
        }
    }
}

/// An accepted connection on its way to the core that serves it.
struct Placed {
    server: Arc<ServerShared>,
    stream: std::net::TcpStream,
    remote: SocketAddr,
    local: Option<SocketAddr>,
    tls: Option<Arc<TlsServerConfig>>,
}

impl Placed {
    /// Registers the socket with this core's reactor and starts the
    /// connection's task here.
    fn serve(self) {
        let Self {
            server,
            stream,
            remote,
            local,
            tls,
        } = self;
        match TcpStream::from_std(stream) {
            Ok(stream) => {
                tokio::spawn(session::serve(Box::new(session::Accepted {
                    server,
                    stream,
                    remote,
                    local,
                    tls,
                })));
            }
            Err(e) => server.handler.error(
                None,
                io_error_code(&e),
                &format!("cannot serve the connection from {remote}: {e}"),
            ),
        }
    }
}
