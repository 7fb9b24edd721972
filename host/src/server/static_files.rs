//! Files for plain HTTP GET requests on the WebSocket port: a browser that
//! opens `http://HOST:PORT/` gets a page (which then opens its WebSocket)
//! instead of 426 Upgrade Required.
//!
//! The handler says which [`StaticSite`] serves a path
//! ([`Handler::static_site`](super::Handler::static_site)); this module
//! answers one GET from it and closes the connection. A site is a directory
//! on disk or a set of files built into the binary.
//!
//! What a request may not do: leave the directory. Every path segment is
//! percent-decoded on its own, and a decoded `/`, `\` or NUL, a `.` or `..`
//! segment is 400; hidden names (`.git`, `.env`) are 404; the file found is
//! canonicalized and must still lie under the directory's canonical path,
//! so a symlink pointing out of it is 404 as well. Files over
//! [`MAX_FILE_SIZE`] are not served (404, logged).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::protocol::handshake::{reason_phrase, request_path, write_error_response};

/// Larger files are not served: a static site here is a demo or a small
/// client app, not a download area.
pub const MAX_FILE_SIZE: u64 = 64 << 20;
/// What a directory request serves.
const INDEX: &str = "index.html";
/// Chunk size when a file is copied to the client.
const COPY_BUFFER: usize = 64 * 1024;

/// A file built into the binary, for [`StaticSite::embedded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedFile {
    /// Its path in the site, without the leading `/` (`index.html`).
    pub path: &'static str,
    pub body: &'static [u8],
}

/// Where a site's files come from.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    /// The canonical path of a directory.
    Directory(PathBuf),
    Embedded(&'static [EmbeddedFile]),
}

/// The files served for plain GET requests under a route.
#[derive(Debug, PartialEq, Eq)]
pub struct StaticSite {
    source: Source,
}

impl StaticSite {
    /// Serves the files under `dir`, read at each request (so edits show at
    /// once). Fails unless `dir` is a directory.
    pub fn directory(dir: &Path) -> io::Result<Self> {
        let root = std::fs::canonicalize(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(Self {
            source: Source::Directory(root),
        })
    }

    /// Serves files built into the binary.
    pub const fn embedded(files: &'static [EmbeddedFile]) -> Self {
        Self {
            source: Source::Embedded(files),
        }
    }

    /// The directory served, if the site is one.
    pub fn dir(&self) -> Option<&Path> {
        match &self.source {
            Source::Directory(root) => Some(root),
            Source::Embedded(_) => None,
        }
    }
}

/// A site and the route prefix it is mounted under (`/` or `/acme`): the
/// request `/acme/app.js` is the site's `app.js`.
#[derive(Debug, Clone)]
pub struct StaticMount {
    pub site: Arc<StaticSite>,
    pub prefix: String,
}

/// A plain (non-upgrade) GET request: what serving a file needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainGet {
    /// The request target as sent, query included.
    pub uri: String,
    pub host: String,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
}

impl PlainGet {
    /// Reads a complete request head already known to be a GET without
    /// `Upgrade: websocket`; None if it is not one after all, or if it is
    /// a WebSocket request that lost its Upgrade header (Sec-WebSocket-*
    /// headers, `Connection: upgrade`): that client gets 426, not a page.
    pub fn parse(head: &[u8]) -> Option<Self> {
        let mut slots = [httparse::EMPTY_HEADER; crate::protocol::handshake::MAX_HEADERS];
        let mut req = httparse::Request::new(&mut slots);
        if !matches!(req.parse(head), Ok(httparse::Status::Complete(_)))
            || req.method != Some("GET")
        {
            return None;
        }
        let websocket = req.headers.iter().any(|h| {
            let name = h.name.to_ascii_lowercase();
            name.starts_with("sec-websocket-")
                || (name == "connection"
                    && String::from_utf8_lossy(h.value)
                        .split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
        });
        if websocket {
            return None;
        }
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
        };
        Some(Self {
            uri: req.path?.to_owned(),
            host: header("host").unwrap_or_default(),
            if_none_match: header("if-none-match"),
            if_modified_since: header("if-modified-since"),
        })
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        request_path(&self.uri)
    }
}

/// What a request path asks of a site.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// The file at these decoded segments (never empty).
    File(Vec<String>),
    /// A directory named without its trailing slash: send the browser
    /// there, so the page's relative links resolve inside it.
    AddSlash,
}

/// Why a request gets no file.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// 400: a segment that could climb out or smuggle a separator.
    Malformed(&'static str),
    /// 404
    NotFound,
}

/// Resolves the path inside the site (after the route prefix) to decoded
/// segments, refusing anything that could leave the site.
fn resolve(inner: &str) -> Result<Target, Refusal> {
    if inner.is_empty() {
        return Ok(Target::AddSlash);
    }
    let mut segments = Vec::new();
    for raw in inner.split('/').filter(|s| !s.is_empty()) {
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| Refusal::Malformed("a path segment is not UTF-8"))?;
        if decoded.contains(['/', '\\', '\0']) {
            return Err(Refusal::Malformed(
                "an encoded slash, backslash or NUL in the path",
            ));
        }
        if decoded == "." || decoded == ".." {
            return Err(Refusal::Malformed("a . or .. segment in the path"));
        }
        if decoded.starts_with('.') {
            return Err(Refusal::NotFound);
        }
        segments.push(decoded.into_owned());
    }
    if inner.ends_with('/') {
        segments.push(INDEX.to_owned());
    }
    Ok(Target::File(segments))
}

/// The Content-Type for a file name.
fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" | "md" | "wit" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// A file found: its validators and how to read it.
struct Found {
    content_type: &'static str,
    len: u64,
    etag: String,
    last_modified: Option<SystemTime>,
    body: Body,
}

enum Body {
    Static(&'static [u8]),
    File(tokio::fs::File),
}

/// Outcome of a lookup.
enum Lookup {
    Found(Found),
    AddSlash,
    Refused(Refusal),
}

async fn lookup(site: &StaticSite, target: Target) -> Lookup {
    let segments = match target {
        Target::AddSlash => return Lookup::AddSlash,
        Target::File(segments) => segments,
    };
    let name = segments.last().map_or(INDEX, String::as_str);
    match &site.source {
        Source::Embedded(files) => {
            let path = segments.join("/");
            if files
                .iter()
                .any(|f| f.path.starts_with(&format!("{path}/")))
            {
                return Lookup::AddSlash;
            }
            match files.iter().find(|f| f.path == path) {
                Some(file) => Lookup::Found(Found {
                    content_type: content_type(name),
                    len: file.body.len() as u64,
                    etag: format!("\"{}\"", &hex::encode(Sha256::digest(file.body))[..16]),
                    last_modified: None,
                    body: Body::Static(file.body),
                }),
                None => Lookup::Refused(Refusal::NotFound),
            }
        }
        Source::Directory(root) => {
            let candidate = segments.iter().fold(root.clone(), |p, s| p.join(s));
            // Symlinks resolved: what is served must still be inside.
            let Ok(real) = tokio::fs::canonicalize(&candidate).await else {
                return Lookup::Refused(Refusal::NotFound);
            };
            if !real.starts_with(root) {
                return Lookup::Refused(Refusal::NotFound);
            }
            let Ok(meta) = tokio::fs::metadata(&real).await else {
                return Lookup::Refused(Refusal::NotFound);
            };
            if meta.is_dir() {
                return Lookup::AddSlash;
            }
            if !meta.is_file() {
                return Lookup::Refused(Refusal::NotFound);
            }
            if meta.len() > MAX_FILE_SIZE {
                tracing::warn!(
                    "static file {} is {} bytes, over the {MAX_FILE_SIZE}-byte cap; answering 404",
                    real.display(),
                    meta.len()
                );
                return Lookup::Refused(Refusal::NotFound);
            }
            let Ok(file) = tokio::fs::File::open(&real).await else {
                return Lookup::Refused(Refusal::NotFound);
            };
            let modified = meta.modified().ok();
            let stamp = modified
                .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            Lookup::Found(Found {
                content_type: content_type(name),
                len: meta.len(),
                etag: format!("W/\"{:x}-{stamp:x}\"", meta.len()),
                last_modified: modified,
                body: Body::File(file),
            })
        }
    }
}

/// Whether the client's cached copy is still the current one.
fn not_modified(request: &PlainGet, found: &Found) -> bool {
    if let Some(tags) = &request.if_none_match {
        // Weak comparison (RFC 9110 §13.1.2): W/ prefixes are ignored.
        let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
        let ours = bare(&found.etag);
        return tags.split(',').any(|t| t.trim() == "*" || bare(t) == ours);
    }
    match (&request.if_modified_since, found.last_modified) {
        (Some(since), Some(modified)) => httpdate::parse_http_date(since)
            // HTTP dates have whole seconds.
            .is_ok_and(|since| httpdate::HttpDate::from(modified) <= since.into()),
        _ => false,
    }
}

/// Answers `request` from `mount` and returns the status sent. The caller
/// closes the connection after it.
pub async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &PlainGet,
    mount: &StaticMount,
) -> io::Result<u16> {
    let path = request.path();
    let inner = if mount.prefix == "/" {
        path
    } else {
        path.strip_prefix(mount.prefix.as_str()).unwrap_or("")
    };
    let lookup = match resolve(inner) {
        Ok(target) => lookup(&mount.site, target).await,
        Err(refusal) => Lookup::Refused(refusal),
    };
    let found = match lookup {
        Lookup::Found(found) => found,
        Lookup::AddSlash => {
            let query = request.uri.find('?').map_or("", |i| &request.uri[i..]);
            let location = format!("{path}/{query}");
            return send_error(stream, 301, &[("Location", &location)], "moved\n").await;
        }
        Lookup::Refused(Refusal::Malformed(why)) => {
            return send_error(stream, 400, &[], &format!("{why}\n")).await;
        }
        Lookup::Refused(Refusal::NotFound) => {
            return send_error(stream, 404, &[], "no such file\n").await;
        }
    };
    let status = if not_modified(request, &found) {
        304
    } else {
        200
    };
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {}\r\nETag: {}\r\nCache-Control: no-cache\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        reason_phrase(status),
        found.content_type,
        found.etag,
    );
    if let Some(modified) = found.last_modified {
        head.push_str(&format!(
            "Last-Modified: {}\r\n",
            httpdate::fmt_http_date(modified)
        ));
    }
    if status == 200 {
        head.push_str(&format!("Content-Length: {}\r\n", found.len));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if status == 200 {
        match found.body {
            Body::Static(bytes) => stream.write_all(bytes).await?,
            Body::File(file) => {
                // At most the length announced, should the file grow.
                let mut reader = BufReader::with_capacity(COPY_BUFFER, file.take(found.len));
                tokio::io::copy_buf(&mut reader, stream).await?;
            }
        }
    }
    stream.flush().await?;
    Ok(status)
}

async fn send_error<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
) -> io::Result<u16> {
    let mut out = Vec::with_capacity(256);
    write_error_response(&mut out, status, headers, &[], body);
    stream.write_all(&out).await?;
    stream.flush().await?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(segments: &[&str]) -> Result<Target, Refusal> {
        Ok(Target::File(
            segments.iter().map(|s| s.to_string()).collect(),
        ))
    }

    #[test]
    fn paths_resolve_to_segments_with_index_html_for_directories() {
        assert_eq!(resolve("/"), file(&["index.html"]));
        assert_eq!(resolve("/css/site.css"), file(&["css", "site.css"]));
        assert_eq!(resolve("/docs/"), file(&["docs", "index.html"]));
        assert_eq!(resolve("//a//b"), file(&["a", "b"]));
        assert_eq!(resolve("/hello%20world.txt"), file(&["hello world.txt"]));
        assert_eq!(resolve(""), Ok(Target::AddSlash));
    }

    #[test]
    fn climbing_out_and_smuggled_separators_are_refused() {
        for bad in [
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/secret",
            "/..%2fsecret",
            "/a%2F..%2F..%2Fb",
            "/a%5c..%5cb",
            "/a%00.html",
            "/./a",
            "/%ff",
        ] {
            assert!(
                matches!(resolve(bad), Err(Refusal::Malformed(_))),
                "{bad}: {:?}",
                resolve(bad)
            );
        }
        assert_eq!(resolve("/.git/config"), Err(Refusal::NotFound));
        assert_eq!(resolve("/.env"), Err(Refusal::NotFound));
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("APP.JS"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("plugin.wasm"), "application/wasm");
        assert_eq!(content_type("README"), "application/octet-stream");
    }

    #[test]
    fn plain_gets_are_read_with_their_validators() {
        let head = b"GET /a/b.css?v=1 HTTP/1.1\r\nHost: x:1\r\nIf-None-Match: \"abc\"\r\n\r\n";
        let get = PlainGet::parse(head).unwrap();
        assert_eq!(get.path(), "/a/b.css");
        assert_eq!(get.host, "x:1");
        assert_eq!(get.if_none_match.as_deref(), Some("\"abc\""));
        assert!(PlainGet::parse(b"POST / HTTP/1.1\r\n\r\n").is_none());
        // A WebSocket request without its Upgrade header is not for a page.
        assert!(PlainGet::parse(b"GET / HTTP/1.1\r\nSec-WebSocket-Version: 13\r\n\r\n").is_none());
        assert!(
            PlainGet::parse(b"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n").is_none()
        );
    }

    #[test]
    fn validators_decide_not_modified() {
        let found = |etag: &str, modified| Found {
            content_type: "text/plain",
            len: 1,
            etag: etag.to_owned(),
            last_modified: modified,
            body: Body::Static(b"x"),
        };
        let get = |inm: Option<&str>, ims: Option<&str>| PlainGet {
            uri: "/".into(),
            host: String::new(),
            if_none_match: inm.map(str::to_owned),
            if_modified_since: ims.map(str::to_owned),
        };
        let f = found("W/\"1-2\"", None);
        assert!(not_modified(&get(Some("\"1-2\""), None), &f));
        assert!(not_modified(&get(Some("\"x\", W/\"1-2\""), None), &f));
        assert!(!not_modified(&get(Some("\"1-3\""), None), &f));
        let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let f = found("\"z\"", Some(when));
        let date = httpdate::fmt_http_date(when);
        assert!(not_modified(&get(None, Some(&date)), &f));
        let earlier = httpdate::fmt_http_date(when - std::time::Duration::from_secs(5));
        assert!(!not_modified(&get(None, Some(&earlier)), &f));
        // If-None-Match wins over If-Modified-Since.
        assert!(!not_modified(&get(Some("\"other\""), Some(&date)), &f));
    }
}
