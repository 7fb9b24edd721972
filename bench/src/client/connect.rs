//! Opening a WebSocket connection: TCP connect (optionally from a chosen
//! loopback source address, to get more ephemeral ports) and the upgrade.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use http::Uri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Where to connect: a `ws://host:port/path` URL, resolved once.
#[derive(Debug, Clone)]
pub struct Target {
    addr: SocketAddr,
    authority: String,
    path: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("invalid URL: {0}")]
    Invalid(#[from] http::uri::InvalidUri),
    #[error("only ws:// URLs with a host and a port are supported: {0}")]
    Unsupported(String),
    #[error("cannot resolve {0}")]
    Unresolved(String),
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let uri: Uri = url.parse()?;
        let unsupported = || TargetError::Unsupported(url.to_owned());
        if uri.scheme_str() != Some("ws") {
            return Err(unsupported());
        }
        let authority = uri.authority().ok_or_else(unsupported)?;
        let port = authority.port_u16().ok_or_else(unsupported)?;
        // Uri keeps the brackets of an IPv6 literal; the resolver wants none.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| TargetError::Unresolved(authority.to_string()))?;
        Ok(Self {
            addr,
            authority: authority.to_string(),
            path: uri.path().to_owned(),
        })
    }

    /// The same server, another path (rooms live at `/room/<name>`).
    pub fn with_path(&self, path: &str) -> Self {
        Self {
            path: path.to_owned(),
            ..self.clone()
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    fn upgrade_request(&self, key: &str) -> String {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            self.path, self.authority
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("server closed the connection during the handshake")]
    Closed,
    #[error("malformed handshake response: {0}")]
    Malformed(#[from] httparse::Error),
    #[error("handshake response larger than {MAX_RESPONSE_LEN} bytes")]
    ResponseTooLarge,
    #[error("server answered the upgrade with status {0}")]
    Rejected(u16),
    #[error("server's Sec-WebSocket-Accept does not match the key sent")]
    BadAccept,
}

const MAX_RESPONSE_LEN: usize = 8 * 1024;
const MAX_RESPONSE_HEADERS: usize = 32;

/// An upgraded connection.
pub struct Connection {
    pub stream: TcpStream,
    /// Frame bytes that arrived in the same read as the end of the response.
    pub early_bytes: Vec<u8>,
}

impl Connection {
    /// Connects and upgrades; `source` picks the local address to bind.
    pub async fn open(target: &Target, source: Option<IpAddr>) -> Result<Self, ConnectError> {
        let mut stream = connect_tcp(target.addr, source).await?;
        let key = generate_key();
        stream
            .write_all(target.upgrade_request(&key).as_bytes())
            .await?;
        let mut response = Vec::with_capacity(512);
        loop {
            if stream.read_buf(&mut response).await? == 0 {
                return Err(ConnectError::Closed);
            }
            let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&response)? {
                httparse::Status::Partial if response.len() > MAX_RESPONSE_LEN => {
                    return Err(ConnectError::ResponseTooLarge);
                }
                httparse::Status::Partial => continue,
                httparse::Status::Complete(len) => {
                    check_upgrade(&parsed, &key)?;
                    let early_bytes = response[len..].to_vec();
                    return Ok(Self {
                        stream,
                        early_bytes,
                    });
                }
            }
        }
    }
}

fn check_upgrade(response: &httparse::Response<'_, '_>, key: &str) -> Result<(), ConnectError> {
    let status = response.code.unwrap_or(0);
    if status != 101 {
        return Err(ConnectError::Rejected(status));
    }
    let expected = derive_accept_key(key.as_bytes());
    let accepted = response.headers.iter().any(|header| {
        header.name.eq_ignore_ascii_case("sec-websocket-accept")
            && header.value == expected.as_bytes()
    });
    if accepted {
        Ok(())
    } else {
        Err(ConnectError::BadAccept)
    }
}

async fn connect_tcp(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = source {
        // Lets a port whose previous connection is in TIME_WAIT be bound
        // again; loopback then reuses it (net.ipv4.tcp_tw_reuse).
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ws_urls() {
        let target = Target::parse("ws://127.0.0.1:9001/room/a").unwrap();
        assert_eq!(target.addr(), "127.0.0.1:9001".parse().unwrap());
        assert_eq!(target.path(), "/room/a");
        let bare = Target::parse("ws://[::1]:80").unwrap();
        assert_eq!(bare.addr(), "[::1]:80".parse().unwrap());
        assert_eq!(bare.path(), "/");
        assert_eq!(bare.with_path("/room/x").path(), "/room/x");
    }

    #[test]
    fn rejects_other_schemes_and_missing_ports() {
        for url in [
            "wss://127.0.0.1:1/",
            "http://127.0.0.1:1/",
            "ws://127.0.0.1/",
        ] {
            assert!(
                matches!(Target::parse(url), Err(TargetError::Unsupported(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn request_names_path_host_and_key() {
        let target = Target::parse("ws://127.0.0.1:9001/echo").unwrap();
        let request = target.upgrade_request("abc");
        assert!(request.starts_with("GET /echo HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n"));
        assert!(request.contains("Sec-WebSocket-Key: abc\r\n"));
        assert!(request.ends_with("\r\n\r\n"));
    }
}
