//! A bare-bones server side of the upgrade, for the raw TCP floor peer,
//! which must not pay for an HTTP stack it then never uses.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

const MAX_REQUEST_LEN: usize = 8 * 1024;
const MAX_REQUEST_HEADERS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("client closed the connection during the handshake")]
    Closed,
    #[error("malformed request: {0}")]
    Malformed(#[from] httparse::Error),
    #[error("request larger than {MAX_REQUEST_LEN} bytes")]
    TooLarge,
    #[error("request has no Sec-WebSocket-Key")]
    NoKey,
}

/// The upgraded request's path and whatever the client sent after it.
pub struct Upgraded {
    pub path: String,
    pub early_bytes: Vec<u8>,
}

/// Reads the upgrade request and answers 101 without further checks.
pub async fn accept_upgrade(stream: &mut TcpStream) -> Result<Upgraded, UpgradeError> {
    let mut request = Vec::with_capacity(512);
    loop {
        if stream.read_buf(&mut request).await? == 0 {
            return Err(UpgradeError::Closed);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let len = match parsed.parse(&request)? {
            httparse::Status::Partial if request.len() > MAX_REQUEST_LEN => {
                return Err(UpgradeError::TooLarge);
            }
            httparse::Status::Partial => continue,
            httparse::Status::Complete(len) => len,
        };
        let key = parsed
            .headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case("sec-websocket-key"))
            .ok_or(UpgradeError::NoKey)?
            .value;
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key)
        );
        let path = parsed.path.unwrap_or("/").to_owned();
        stream.write_all(response.as_bytes()).await?;
        return Ok(Upgraded {
            path,
            early_bytes: request[len..].to_vec(),
        });
    }
}
