//! Binding the listening socket and tuning accepted ones with the seed's
//! socket settings (socket2 exposes what tokio does not). The options are
//! this module's own types; the server's settings fill them in.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, TcpKeepalive, Type};

/// Which address families the listener accepts (the seed's UseIPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMode {
    V4Only = 0,
    V6Only = 1,
    DualStack = 2,
}

/// Options of the listening socket.
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    /// The listen queue (ConnectionBacklog).
    pub backlog: u32,
    /// False sets SO_REUSEPORT, so several sockets share the port.
    pub bind_exclusively: bool,
    pub ip_mode: IpMode,
    /// SO_RCVBUF / SO_SNDBUF, inherited by accepted sockets; 0 keeps the
    /// system's.
    pub recv_buffer: u32,
    pub send_buffer: u32,
    /// TCP_NODELAY. Accepted sockets inherit it on Linux, which saves
    /// [`configure_accepted`] a `setsockopt` per connection.
    pub no_delay: bool,
    /// TCP_DEFER_ACCEPT in seconds (0: off): the kernel hands over a
    /// connection once its first bytes have arrived, or after this long.
    pub defer_accept: u32,
}

/// Options applied to each accepted socket.
#[derive(Debug, Clone, Copy)]
pub struct AcceptedOptions {
    pub no_delay: bool,
    /// TCP keep-alive idle time and probe interval in milliseconds; 0
    /// keeps the system's.
    pub keep_alive_time: u32,
    pub keep_alive_interval: u32,
}

/// Resolves `host` (empty: every interface) for the address family
/// `ip_mode` selects.
pub async fn listen_address(host: &str, port: u16, ip_mode: IpMode) -> io::Result<SocketAddr> {
    let host = host.trim();
    if host.is_empty() {
        let ip = match ip_mode {
            IpMode::V4Only => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpMode::V6Only | IpMode::DualStack => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        return Ok(SocketAddr::new(ip, port));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let candidates: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port)).await?.collect(),
    };
    let wanted = |a: &SocketAddr| match ip_mode {
        IpMode::V4Only => a.is_ipv4(),
        IpMode::V6Only => a.is_ipv6(),
        IpMode::DualStack => true,
    };
    candidates.into_iter().find(wanted).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!(
                "LocalHost {host:?} has no address for UseIPv6={}",
                ip_mode as u8
            ),
        )
    })
}

/// Binds and listens with `options`. Without `bind_exclusively` the port
/// may be shared with other sockets (SO_REUSEPORT).
pub fn bind(addr: SocketAddr, options: &ListenOptions) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // SO_REUSEADDR only lets a restarted server rebind while old
    // connections linger in TIME_WAIT; sharing the port takes SO_REUSEPORT.
    socket.set_reuse_address(true)?;
    if !options.bind_exclusively {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(options.ip_mode != IpMode::DualStack)?;
    }
    if options.recv_buffer > 0 {
        socket.set_recv_buffer_size(options.recv_buffer as usize)?;
    }
    if options.send_buffer > 0 {
        socket.set_send_buffer_size(options.send_buffer as usize)?;
    }
    socket.set_tcp_nodelay(options.no_delay)?;
    if options.defer_accept > 0 {
        set_defer_accept(&socket, options.defer_accept)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(options.backlog.min(i32::MAX as u32) as i32)?;
    Ok(socket.into())
}

/// Sets TCP_DEFER_ACCEPT: a client speaks first in WebSocket and in TLS,
/// so a connection is accepted with its request already there, and its
/// first read finds it (no read that would block, no wake-up of its own).
/// A client that sends nothing is handed over once `seconds` have passed.
fn set_defer_accept(socket: &Socket, seconds: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let seconds = libc::c_int::try_from(seconds).unwrap_or(libc::c_int::MAX);
    // SAFETY: the option's value is a c_int that lives across the call, and
    // the descriptor is the socket's own.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&raw const seconds).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The TCP_NODELAY that sockets accepted from `listener` start with: the
/// listener's own on Linux; None where that is not known.
pub fn inherited_no_delay(listener: &tokio::net::TcpListener) -> Option<bool> {
    if cfg!(target_os = "linux") {
        SockRef::from(listener).tcp_nodelay().ok()
    } else {
        None
    }
}

/// Applies `options` to an accepted socket, which started with the
/// TCP_NODELAY `inherited` (see [`inherited_no_delay`]).
pub fn configure_accepted(
    stream: &tokio::net::TcpStream,
    options: &AcceptedOptions,
    inherited: Option<bool>,
) -> io::Result<()> {
    // The setting may also have changed since the listener was bound.
    if inherited != Some(options.no_delay) {
        stream.set_nodelay(options.no_delay)?;
    }
    if options.keep_alive_time > 0 || options.keep_alive_interval > 0 {
        let mut keepalive = TcpKeepalive::new();
        if options.keep_alive_time > 0 {
            keepalive = keepalive.with_time(Duration::from_millis(options.keep_alive_time.into()));
        }
        if options.keep_alive_interval > 0 {
            keepalive =
                keepalive.with_interval(Duration::from_millis(options.keep_alive_interval.into()));
        }
        SockRef::from(stream).set_tcp_keepalive(&keepalive)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(no_delay: bool) -> ListenOptions {
        ListenOptions {
            backlog: 16,
            bind_exclusively: true,
            ip_mode: IpMode::V4Only,
            recv_buffer: 0,
            send_buffer: 0,
            no_delay,
            defer_accept: 0,
        }
    }

    fn accepted(no_delay: bool) -> AcceptedOptions {
        AcceptedOptions {
            no_delay,
            keep_alive_time: 0,
            keep_alive_interval: 0,
        }
    }

    /// A connection to `listener`, accepted.
    async fn accept(listener: &tokio::net::TcpListener) -> tokio::net::TcpStream {
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        listener.accept().await.unwrap().0
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn accepted_sockets_take_tcp_no_delay_from_the_listener_or_from_the_setting() {
        for listening in [true, false] {
            let addr = "127.0.0.1:0".parse().unwrap();
            let listener =
                tokio::net::TcpListener::from_std(bind(addr, &options(listening)).unwrap())
                    .unwrap();
            assert_eq!(inherited_no_delay(&listener), Some(listening));
            // The setting as the listener was bound: nothing to change.
            let stream = accept(&listener).await;
            configure_accepted(&stream, &accepted(listening), Some(listening)).unwrap();
            assert_eq!(stream.nodelay().unwrap(), listening);
            // The setting changed since: the socket follows it.
            let stream = accept(&listener).await;
            configure_accepted(&stream, &accepted(!listening), Some(listening)).unwrap();
            assert_eq!(stream.nodelay().unwrap(), !listening);
        }
    }

    /// With DeferAccept a client that has sent its request is accepted
    /// before one that connected earlier and sent nothing; the silent one
    /// is still accepted once the deferral has passed.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn deferred_accept_hands_over_connections_with_data_first() {
        use std::time::Duration;
        use tokio::io::AsyncWriteExt;
        use tokio::time::timeout;

        for defer_accept in [0, 1] {
            let addr = "127.0.0.1:0".parse().unwrap();
            let listen = ListenOptions {
                defer_accept,
                ..options(true)
            };
            let listener = tokio::net::TcpListener::from_std(bind(addr, &listen).unwrap()).unwrap();
            let addr = listener.local_addr().unwrap();
            let silent = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut speaking = tokio::net::TcpStream::connect(addr).await.unwrap();
            speaking.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            let first = timeout(Duration::from_secs(5), listener.accept())
                .await
                .expect("a connection with data is accepted at once")
                .unwrap();
            let expected = if defer_accept > 0 { &speaking } else { &silent };
            assert_eq!(
                first.1,
                expected.local_addr().unwrap(),
                "DeferAccept {defer_accept}"
            );
            let second = timeout(Duration::from_secs(10), listener.accept())
                .await
                .expect("the other connection is accepted too")
                .unwrap();
            let other = if defer_accept > 0 { &silent } else { &speaking };
            assert_eq!(second.1, other.local_addr().unwrap());
        }
    }
}
