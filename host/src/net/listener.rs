//! Binding the listening socket and tuning accepted ones with the seed's
//! socket settings (socket2 exposes what tokio does not).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, TcpKeepalive, Type};
use tokio::net::TcpListener;

use crate::server::settings::{IpMode, Settings};

/// Resolves LocalHost for the address family UseIPv6 selects.
pub async fn listen_address(settings: &Settings) -> io::Result<SocketAddr> {
    let port = settings.local_port;
    let host = settings.local_host.trim();
    if host.is_empty() {
        let ip = match settings.use_ipv6 {
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
    let wanted = |a: &SocketAddr| match settings.use_ipv6 {
        IpMode::V4Only => a.is_ipv4(),
        IpMode::V6Only => a.is_ipv6(),
        IpMode::DualStack => true,
    };
    candidates.into_iter().find(wanted).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!(
                "LocalHost {host:?} has no address for UseIPv6={}",
                settings.use_ipv6 as u8
            ),
        )
    })
}

/// Binds and listens with ConnectionBacklog, BindExclusively, UseIPv6 and
/// the buffer sizes (inherited by accepted sockets).
pub fn bind(addr: SocketAddr, settings: &Settings) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // SO_REUSEADDR only lets a restarted server rebind while old
    // connections linger in TIME_WAIT; sharing the port takes SO_REUSEPORT.
    socket.set_reuse_address(true)?;
    if !settings.bind_exclusively {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(settings.use_ipv6 != IpMode::DualStack)?;
    }
    if settings.in_buffer_size > 0 {
        socket.set_recv_buffer_size(settings.in_buffer_size as usize)?;
    }
    if settings.out_buffer_size > 0 {
        socket.set_send_buffer_size(settings.out_buffer_size as usize)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(settings.connection_backlog.min(i32::MAX as u32) as i32)?;
    TcpListener::from_std(socket.into())
}

/// Applies TcpNoDelay and the keep-alive settings to an accepted socket.
pub fn configure_accepted(stream: &tokio::net::TcpStream, settings: &Settings) -> io::Result<()> {
    stream.set_nodelay(settings.tcp_no_delay)?;
    if settings.keep_alive_time > 0 || settings.keep_alive_interval > 0 {
        let mut keepalive = TcpKeepalive::new();
        if settings.keep_alive_time > 0 {
            keepalive = keepalive.with_time(Duration::from_millis(settings.keep_alive_time.into()));
        }
        if settings.keep_alive_interval > 0 {
            keepalive =
                keepalive.with_interval(Duration::from_millis(settings.keep_alive_interval.into()));
        }
        SockRef::from(stream).set_tcp_keepalive(&keepalive)?;
    }
    Ok(())
}
