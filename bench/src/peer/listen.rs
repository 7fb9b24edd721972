//! The contract every server under test follows: `--listen HOST:PORT`
//! (port 0 picks one), then exactly one `listening on ws://HOST:PORT` line
//! on stdout once accepting.

use std::io::{self, Write};
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Room for bursts of connects in the handshake benchmark.
const BACKLOG: u32 = 4096;

#[derive(Debug, clap::Parser)]
pub struct PeerArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl PeerArgs {
    pub fn runtime(&self) -> io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(threads) = self.threads {
            builder.worker_threads(threads);
        }
        builder.enable_all().build()
    }
}

/// Raises the open-file limit, binds, and announces the address.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    // Idle-capacity runs hold thousands of sockets; the soft limit is
    // often 1024 while the hard limit allows far more.
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("cannot raise the open-file limit: {error}");
    }
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(BACKLOG)?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on ws://{}", listener.local_addr()?)?;
    stdout.flush()?;
    Ok(listener)
}
