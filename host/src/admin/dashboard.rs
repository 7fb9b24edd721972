//! The operator dashboard: one HTML page, built into the binary, served at
//! `/` on the admin listener. It holds no data of its own: its script asks
//! the operator for the token (kept in the browser tab's session storage)
//! and reads and acts through the same endpoints as any other client, so
//! the page itself needs no token and nothing works without one where one
//! is configured.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

const PAGE: &str = include_str!("dashboard.html");

/// The page, for `GET /` (or `/index.html`); None for any other request.
pub(super) fn page<B>(request: &Request<B>) -> Option<Response<Full<Bytes>>> {
    let wanted =
        request.method() == Method::GET && matches!(request.uri().path(), "/" | "/index.html");
    if !wanted {
        return None;
    }
    let mut reply = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    *reply.status_mut() = StatusCode::OK;
    let headers = reply.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The page talks to this origin only.
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    Some(reply)
}
