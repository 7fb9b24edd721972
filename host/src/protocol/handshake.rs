//! The opening handshake (RFC 6455 §4.2): parsing the client's upgrade
//! request and writing the server's response.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// Appended to the client's key before hashing (RFC 6455 §1.3).
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Request headers beyond this count get 431.
pub const MAX_HEADERS: usize = 64;
/// Bytes of headers (`Name: value\r\n` each) a handler may add to its
/// answer to an open request: as much as a request head may hold by
/// default, so one answer cannot make the server write megabytes.
pub const MAX_RESPONSE_HEADER_BYTES: usize = 8192;

/// A valid WebSocket upgrade request: its head as text (invalid UTF-8
/// replaced), kept whole and shared by its clones. The fields are read
/// from the text when asked for, so a request nobody looks at costs one
/// allocation, not two strings per header; those every request is asked
/// for (by a router) were located while parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The head from its request line to the blank line, validated by
    /// [`parse_request`].
    head: Arc<str>,
    spans: Spans,
}

/// Where the target, Host and Origin lie in a kept head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spans {
    target: Span,
    /// The last Host header's value.
    host: Span,
    /// The last Origin header's value, if any came.
    origin: Option<Span>,
}

/// A byte range of a kept head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The range `part` covers in `whole`; `part` lies inside `whole`.
    fn within(whole: &[u8], part: &[u8]) -> Self {
        let start = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
        let at = |offset: usize| u32::try_from(offset.min(whole.len())).unwrap_or(u32::MAX);
        Self {
            start: at(start),
            end: at(start + part.len()),
        }
    }

    fn of(self, head: &str) -> &str {
        head.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

impl Spans {
    /// Found by reading the text itself: for a head whose invalid UTF-8
    /// was replaced, where the parser's positions no longer hold.
    fn read(head: &str) -> Self {
        let line = head.split('\n').next().unwrap_or_default();
        let line = line.strip_suffix('\r').unwrap_or(line);
        // `GET <target> HTTP/1.x`: the method is GET, one space each side.
        let target = line
            .get(4..)
            .and_then(|rest| rest.rsplit_once(' '))
            .map_or("", |(target, _)| target);
        let last = |name| values(head, name).last();
        let span = |part: &str| Span::within(head.as_bytes(), part.as_bytes());
        Self {
            target: span(target),
            host: last("host").map(span).unwrap_or_default(),
            origin: last("origin").map(span),
        }
    }
}

impl UpgradeRequest {
    /// A request kept as its head alone (a connection keeps it so), its
    /// fields located again by reading it.
    pub(crate) fn from_head(head: Arc<str>) -> Self {
        let spans = Spans::read(&head);
        Self { head, spans }
    }

    /// The head as received, from the request line to the blank line.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// The head, shared.
    pub(crate) fn shared_head(&self) -> Arc<str> {
        self.head.clone()
    }

    /// The request target as sent, e.g. `/chat?room=1`.
    pub fn uri(&self) -> &str {
        self.spans.target.of(&self.head)
    }

    /// The path part of the request target, without the query.
    pub fn path(&self) -> &str {
        request_path(self.uri())
    }

    /// Every header in order, names as sent, values without surrounding
    /// whitespace.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.header_lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name, value.trim()))
    }

    /// The values of every header called `name` (any case), in order.
    pub fn values<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s str> + Clone {
        values(&self.head, name)
    }

    /// The lines after the request line, up to the blank line, without
    /// their line ends.
    fn header_lines(&self) -> HeaderLines<'_> {
        header_lines(&self.head)
    }

    /// The first value of a header, matched without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.values(name).next()
    }

    /// The Host header (the last one, when sent more than once).
    pub fn host(&self) -> &str {
        // Trimmed as `values` trims: the parser's value may keep
        // whitespace other than spaces and tabs.
        self.spans.host.of(&self.head).trim()
    }

    /// The Origin header (the last one); empty when the client sent none.
    pub fn origin(&self) -> &str {
        let origin = self.spans.origin;
        origin.map_or("", |span| span.of(&self.head).trim())
    }

    /// Sec-WebSocket-Key (checked: 16 bytes in base64).
    pub fn key(&self) -> &str {
        self.values("sec-websocket-key").last().unwrap_or_default()
    }

    /// Sec-WebSocket-Protocol tokens in the client's order of preference.
    pub fn subprotocols(&self) -> impl Iterator<Item = &str> + Clone {
        self.values("sec-websocket-protocol")
            .flat_map(|value| value.split(',').map(str::trim))
            .filter(|protocol| !protocol.is_empty())
    }

    /// Every non-empty Sec-WebSocket-Extensions value, joined with ", ".
    pub fn extensions(&self) -> String {
        let mut joined = String::new();
        for value in self
            .values("sec-websocket-extensions")
            .filter(|v| !v.is_empty())
        {
            if !joined.is_empty() {
                joined.push_str(", ");
            }
            joined.push_str(value);
        }
        joined
    }
}

/// The values of every header of `head` called `name` (any case), in order.
fn values<'s>(head: &'s str, name: &str) -> impl Iterator<Item = &'s str> + Clone {
    header_lines(head).filter_map(move |line| {
        // httparse lets nothing come between a name and its colon, so a
        // line is looked at no further than its first bytes.
        let bytes = line.as_bytes();
        let named = bytes.get(name.len()) == Some(&b':')
            && bytes[..name.len()].eq_ignore_ascii_case(name.as_bytes());
        named.then(|| line[name.len() + 1..].trim())
    })
}

fn header_lines(head: &str) -> HeaderLines<'_> {
    let rest = head.split_once('\n').map_or("", |(_, rest)| rest);
    HeaderLines { rest }
}

/// The header lines of a kept head: found by a plain byte loop, which
/// costs less than a search's setup on lines this short.
#[derive(Debug, Clone)]
struct HeaderLines<'a> {
    rest: &'a str,
}

impl<'a> Iterator for HeaderLines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let end = self.rest.bytes().position(|b| b == b'\n');
        let line = &self.rest[..end.unwrap_or(self.rest.len())];
        self.rest = end.map_or("", |end| &self.rest[end + 1..]);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            // The blank line ends the head.
            self.rest = "";
            return None;
        }
        Some(line)
    }
}

/// The path of a request target (origin-form or absolute-form).
pub fn request_path(uri: &str) -> &str {
    let without_scheme = match uri.find("://") {
        Some(i) => {
            let rest = &uri[i + 3..];
            rest.find('/').map_or("/", |p| &rest[p..])
        }
        None => uri,
    };
    let end = without_scheme
        .find(['?', '#'])
        .unwrap_or(without_scheme.len());
    &without_scheme[..end]
}

/// Why an upgrade request was refused, with the HTTP status to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// The request head exceeds the configured size (431).
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] headers (431).
    TooManyHeaders,
    /// Not parseable as an HTTP/1.x request (400).
    Malformed,
    /// HTTP/1.0: WebSocket needs HTTP/1.1 or later (400).
    HttpVersion,
    /// A method other than GET (405).
    MethodNotAllowed,
    MissingHost,
    /// No `Upgrade: websocket` header: a plain HTTP request (426).
    NotUpgrade,
    /// `Connection` lacks the `Upgrade` token (400).
    MissingConnectionUpgrade,
    /// Sec-WebSocket-Version missing or not 13 (426).
    UnsupportedVersion,
    /// Sec-WebSocket-Key missing or not 16 base64-encoded bytes (400).
    InvalidKey,
}

impl HandshakeError {
    pub fn status(&self) -> u16 {
        match self {
            Self::HeadTooLarge | Self::TooManyHeaders => 431,
            Self::MethodNotAllowed => 405,
            Self::NotUpgrade | Self::UnsupportedVersion => 426,
            _ => 400,
        }
    }

    /// Headers RFC 6455 and RFC 9110 require with this status.
    pub fn response_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::MethodNotAllowed => &[("Allow", "GET")],
            Self::NotUpgrade => &[("Upgrade", "websocket"), ("Connection", "Upgrade")],
            Self::UnsupportedVersion => &[("Sec-WebSocket-Version", "13")],
            _ => &[],
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HeadTooLarge => "request head too large",
            Self::TooManyHeaders => "too many request headers",
            Self::Malformed => "malformed HTTP request",
            Self::HttpVersion => "WebSocket requires HTTP/1.1",
            Self::MethodNotAllowed => "WebSocket upgrade requires GET",
            Self::MissingHost => "missing Host header",
            Self::NotUpgrade => "not a WebSocket upgrade request",
            Self::MissingConnectionUpgrade => "Connection header lacks the Upgrade token",
            Self::UnsupportedVersion => "unsupported Sec-WebSocket-Version (13 is supported)",
            Self::InvalidKey => "missing or invalid Sec-WebSocket-Key",
        })
    }
}

impl std::error::Error for HandshakeError {}

/// A request that passed [`parse_request`]'s checks, with what the
/// response needs, found on the way: the response then searches nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRequest {
    pub request: UpgradeRequest,
    /// Bytes of the head; any after it are the client's first frames.
    pub head_len: usize,
    /// Sec-WebSocket-Key: 24 characters of base64.
    pub key: [u8; 24],
    /// Whether any Sec-WebSocket-Extensions header came (most clients send
    /// none).
    pub offers_extensions: bool,
}

/// Parses an upgrade request from the start of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete and shorter than
/// `max_head_len`.
pub fn parse_request(
    buf: &[u8],
    max_head_len: usize,
) -> Result<Option<ParsedRequest>, HandshakeError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > max_head_len => {
            return Err(HandshakeError::HeadTooLarge);
        }
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head_len => {
            return Err(HandshakeError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    if req.method != Some("GET") {
        return Err(HandshakeError::MethodNotAllowed);
    }
    if req.version != Some(1) {
        return Err(HandshakeError::HttpVersion);
    }
    // Checked here on the bytes, kept as text: the fields a handler may ask
    // for are read again from the head (UpgradeRequest), but for the key,
    // kept, and the target, Host and Origin, whose places are kept.
    // The last of a repeated Version or Key counts. Values are trimmed of
    // HTTP's whitespace (RFC 9110 §5.5: spaces and tabs).
    let (mut upgrade, mut connection_upgrade, mut version_ok, mut has_host) =
        (false, false, false, false);
    let mut offers_extensions = false;
    let (mut key, mut host, mut origin): (&[u8], &[u8], Option<&[u8]>) = (b"", b"", None);
    for h in req.headers.iter() {
        let (name, value) = (h.name, h.value.trim_ascii());
        if name.eq_ignore_ascii_case("host") {
            has_host = true;
            host = value;
        } else if name.eq_ignore_ascii_case("origin") {
            origin = Some(value);
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= has_token(value, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= has_token(value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version_ok = value == b"13";
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = value;
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            offers_extensions = true;
        }
    }
    if !upgrade {
        return Err(HandshakeError::NotUpgrade);
    }
    if !connection_upgrade {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    if !has_host {
        return Err(HandshakeError::MissingHost);
    }
    if !version_ok {
        return Err(HandshakeError::UnsupportedVersion);
    }
    // 16 bytes are 24 characters of base64; decoded on the stack.
    let key: [u8; 24] = match key.try_into() {
        Ok(key) if matches!(BASE64.decode_slice(key, &mut [0; 18]), Ok(16)) => key,
        _ => return Err(HandshakeError::InvalidKey),
    };
    // httparse skips empty lines before the request line.
    let start = buf[..head_len]
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head_len);
    let text = lossy_utf8(&buf[start..head_len]);
    let spans = match text {
        // The parser's slices lie in the text.
        Cow::Borrowed(_) => {
            let span = |part| Span::within(&buf[start..head_len], part);
            Spans {
                target: span(req.path.unwrap_or_default().as_bytes()),
                host: span(host),
                origin: origin.map(span),
            }
        }
        Cow::Owned(ref text) => Spans::read(text),
    };
    let head = Arc::from(text);
    Ok(Some(ParsedRequest {
        request: UpgradeRequest { head, spans },
        head_len,
        key,
        offers_extensions,
    }))
}

/// `String::from_utf8_lossy`, with the valid case (every real client's)
/// checked by the faster `str::from_utf8` first.
fn lossy_utf8(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Whether a comma-separated header value contains `token` (any case).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Sec-WebSocket-Accept for a client key.
pub fn accept_key(key: &str) -> String {
    String::from_utf8_lossy(&accept_key_bytes(key.as_bytes())).into_owned()
}

/// Sec-WebSocket-Accept as base64 text, without an allocation: 20 bytes
/// of SHA-1 are 28 characters.
fn accept_key_bytes(key: &[u8]) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID.as_bytes());
    let mut text = [0; 28];
    // Cannot fail: 28 bytes hold the encoding of 20.
    let _ = BASE64.encode_slice(sha.finalize(), &mut text);
    text
}

/// Writes the 101 response accepting `request`.
pub fn write_accept_response(
    out: &mut Vec<u8>,
    key: &[u8],
    subprotocol: Option<&str>,
    extensions: Option<&str>,
    extra_headers: &[(String, String)],
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(&accept_key_bytes(key));
    out.extend_from_slice(b"\r\n");
    if let Some(p) = subprotocol {
        push_header(out, "Sec-WebSocket-Protocol", p);
    }
    if let Some(e) = extensions {
        push_header(out, "Sec-WebSocket-Extensions", e);
    }
    for (name, value) in extra_headers {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a response refusing the upgrade; the connection closes after it.
pub fn write_error_response(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &str)],
    extra_headers: &[(String, String)],
    body: &str,
) {
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    for (name, value) in headers {
        push_header(out, name, value);
    }
    for (name, value) in extra_headers {
        push_header(out, name, value);
    }
    push_header(out, "Content-Type", "text/plain; charset=utf-8");
    push_header(out, "Content-Length", &body.len().to_string());
    push_header(out, "Connection", "close");
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A header an application asked to add that would corrupt the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHeader(pub String);

impl fmt::Display for InvalidHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid response header {:?}", self.0)
    }
}

impl std::error::Error for InvalidHeader {}

/// Checks a response header: the name a token, the value free of control
/// characters (so no header can inject another or end the head).
pub fn check_header(name: &str, value: &str) -> Result<(), InvalidHeader> {
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    let value_ok = value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7F));
    if name_ok && value_ok {
        Ok(())
    } else {
        Err(InvalidHeader(format!("{name}: {value}")))
    }
}

/// Parses headers given as text, one `Name: value` per line (the seed's
/// ResponseHeaders format), checking each.
pub fn parse_header_lines(text: &str) -> Result<Vec<(String, String)>, InvalidHeader> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| InvalidHeader(line.to_owned()))?;
            let (name, value) = (name.trim(), value.trim());
            check_header(name, value)?;
            Ok((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Formats headers as the seed's RequestHeaders text.
pub fn format_header_lines<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut text = String::new();
    for (name, value) in headers {
        for piece in [name, ": ", value, "\r\n"] {
            text.push_str(piece);
        }
    }
    text
}

/// The standard reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\nOrigin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";

    #[test]
    fn rfc_example_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn parses_a_full_request_and_reports_trailing_bytes() {
        let mut bytes = GOOD.as_bytes().to_vec();
        bytes.extend_from_slice(&[0x81, 0x80]);
        let parsed = parse_request(&bytes, 8192).unwrap().unwrap();
        let req = &parsed.request;
        assert_eq!(parsed.head_len, GOOD.len());
        assert_eq!(&parsed.key, b"dGhlIHNhbXBsZSBub25jZQ==");
        assert!(parsed.offers_extensions);
        assert_eq!(req.uri(), "/chat?x=1");
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.host(), "example.com");
        assert_eq!(req.origin(), "http://example.com");
        assert_eq!(req.key(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(
            req.subprotocols().collect::<Vec<_>>(),
            ["chat", "superchat"]
        );
        assert_eq!(req.extensions(), "permessage-deflate");
        assert_eq!(req.headers().count(), 8);
        assert_eq!(req.header("CONNECTION"), Some("keep-alive, Upgrade"));
        assert_eq!(req.head(), GOOD);
    }

    /// The fields read from the kept text are httparse's: names as sent,
    /// values trimmed, in order, whatever the line ends and blank lines
    /// before the request line.
    #[test]
    fn the_kept_head_reads_as_httparse_parsed_it() {
        let odd: &[u8] =
            b"\r\n\nGET ws://h:1/a%20b?q=1 HTTP/1.1\nHost:h:1\r\nUpgrade:\twebsocket \r\n\
            Connection: Upgrade\nSec-WebSocket-Version: 13\r\nX-Empty:\r\nX-Colon: a:b: c\r\n\
            Sec-WebSocket-Key:  dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: a,, b\r\n\
            Sec-WebSocket-Protocol: c\r\nX-Bytes: caf\xc3\xa9 \xff!\r\n\r\n";
        for head in [GOOD.as_bytes(), odd] {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut expected = httparse::Request::new(&mut slots);
            assert!(expected.parse(head).unwrap().is_complete());
            let parsed = parse_request(head, 8192).unwrap().unwrap();
            let req = &parsed.request;
            assert_eq!(parsed.head_len, head.len());
            assert_eq!(req.key().as_bytes(), parsed.key);
            assert_eq!(req.uri(), expected.path.unwrap());
            let headers: Vec<(&str, String)> = expected
                .headers
                .iter()
                .map(|h| (h.name, String::from_utf8_lossy(h.value).trim().to_owned()))
                .collect();
            let kept: Vec<(&str, String)> = req.headers().map(|(n, v)| (n, v.to_owned())).collect();
            assert_eq!(kept, headers);
        }
        let parsed = parse_request(odd, 8192).unwrap().unwrap();
        let req = &parsed.request;
        assert!(!parsed.offers_extensions);
        assert_eq!(req.path(), "/a%20b");
        assert_eq!(req.subprotocols().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(req.header("x-bytes"), Some("caf\u{e9} \u{fffd}!"));
        assert_eq!(req.header("x-colon"), Some("a:b: c"));
        assert_eq!(req.header("x-empty"), Some(""));
        assert_eq!(req.header("x"), None);
        assert_eq!(req.host(), "h:1");
        assert_eq!(req.origin(), "");
        assert_eq!(req.extensions(), "");
    }

    /// The target, Host and Origin located while parsing are those read
    /// from the kept text: the last Host and Origin, trimmed alike.
    #[test]
    fn the_fields_located_while_parsing_are_the_texts_own() {
        let repeated: &[u8] = b"\r\nGET /r?q=a%20b HTTP/1.1\nHost: first\r\nOrigin: o1\r\n\
            Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nHost:\tlast:8080 \xc2\xa0\r\n\
            ORIGIN:  https://b.example\t\r\nX-Origin: no\r\n\r\n";
        let cases = [
            (
                GOOD.as_bytes(),
                "/chat?x=1",
                "example.com",
                "http://example.com",
            ),
            (repeated, "/r?q=a%20b", "last:8080", "https://b.example"),
        ];
        for (head, uri, host, origin) in cases {
            let req = parse_request(head, 8192).unwrap().unwrap().request;
            assert_eq!(fields(&req), (uri, host, origin));
            assert_eq!(fields(&read(&req)), (uri, host, origin));
            assert_eq!(req.origin(), req.values("origin").last().unwrap());
        }
        let no_origin = GOOD.replace("Origin: http://example.com\r\n", "");
        let req = parse_request(no_origin.as_bytes(), 8192)
            .unwrap()
            .unwrap()
            .request;
        assert_eq!(fields(&req), ("/chat?x=1", "example.com", ""));
        assert_eq!(fields(&read(&req)), fields(&req));
    }

    fn fields(req: &UpgradeRequest) -> (&str, &str, &str) {
        (req.uri(), req.host(), req.origin())
    }

    /// The request with its fields located by reading its text.
    fn read(req: &UpgradeRequest) -> UpgradeRequest {
        UpgradeRequest::from_head(req.shared_head())
    }

    #[test]
    fn incomplete_heads_wait_until_the_limit() {
        let bytes = &GOOD.as_bytes()[..40];
        assert_eq!(parse_request(bytes, 8192), Ok(None));
        assert_eq!(parse_request(bytes, 40), Err(HandshakeError::HeadTooLarge));
        assert_eq!(
            parse_request(GOOD.as_bytes(), 100),
            Err(HandshakeError::HeadTooLarge)
        );
    }

    fn refuse(req: &str) -> u16 {
        parse_request(req.as_bytes(), 8192).unwrap_err().status()
    }

    #[test]
    fn refusals_carry_the_right_status() {
        assert_eq!(refuse(&GOOD.replace("GET", "POST")), 405);
        assert_eq!(refuse(&GOOD.replace("HTTP/1.1", "HTTP/1.0")), 400);
        assert_eq!(refuse(&GOOD.replace("Version: 13", "Version: 8")), 426);
        assert_eq!(
            refuse(&GOOD.replace("Upgrade: websocket", "Upgrade: h2c")),
            426
        );
        assert_eq!(
            refuse(&GOOD.replace("keep-alive, Upgrade", "keep-alive")),
            400
        );
        assert_eq!(refuse(&GOOD.replace("Host: example.com\r\n", "")), 400);
        assert_eq!(
            refuse(&GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=")),
            400
        );
        assert_eq!(refuse("GARBAGE\r\n\r\n"), 400);
        let many: String = (0..70).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            refuse(&GOOD.replacen("\r\n", &format!("\r\n{many}"), 1)),
            431
        );
    }

    #[test]
    fn response_headers_are_checked() {
        assert!(check_header("WWW-Authenticate", "Basic realm=\"x\"").is_ok());
        assert!(check_header("X-Evil", "a\r\nSet-Cookie: x").is_err());
        assert!(check_header("Bad Name", "v").is_err());
        let parsed = parse_header_lines("A: 1\r\nB:2\n").unwrap();
        assert_eq!(parsed, [("A".into(), "1".into()), ("B".into(), "2".into())]);
        assert!(parse_header_lines("no colon").is_err());
    }

    #[test]
    fn request_paths() {
        assert_eq!(request_path("/a/b?q#f"), "/a/b");
        assert_eq!(request_path("ws://host:1/x?y"), "/x");
        assert_eq!(request_path("http://host"), "/");
    }
}
