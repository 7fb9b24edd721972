//! The upgrade request parser and the Sec-WebSocket-Extensions
//! negotiation. Parsing a prefix of the bytes either waits for more or
//! gives what the whole gives; a refusal carries one of the statuses the
//! server answers with; an accepted request's head fits the limit, its
//! key is 16 bytes, and its Host and Origin are the last of their
//! headers; a permessage-deflate agreement stays within the server's
//! settings, is a valid header value, and negotiating its own response
//! again gives the same agreement.

#![no_main]

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use libfuzzer_sys::fuzz_target;
use wsserver::protocol::deflate::{DeflateSettings, WindowBits, negotiate};
use wsserver::protocol::handshake::{
    HandshakeError, MAX_HEADERS, ParsedRequest, check_header, parse_request,
};

/// A 12-byte header, then the request (seeds are upgrade requests).
#[derive(Arbitrary, Debug)]
struct Input<'a> {
    max_head_len: u16,
    /// Lengths of prefixes to parse first.
    prefixes: [u16; 3],
    server_bits: u8,
    client_bits: u8,
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    request: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let max = usize::from(input.max_head_len).max(16);
    let whole = parse_request(input.request, max);
    for &len in &input.prefixes {
        let prefix = &input.request[..usize::from(len).min(input.request.len())];
        match parse_request(prefix, max) {
            Ok(None) => {}
            // Past the limit the whole may fail for a later byte first.
            Err(HandshakeError::HeadTooLarge) => assert!(whole.is_err(), "{whole:?}"),
            early => assert_eq!(early, whole, "a prefix of {} bytes", prefix.len()),
        }
    }
    let request = match whole {
        Ok(Some(ParsedRequest {
            request,
            head_len,
            key,
            offers_extensions,
        })) => {
            assert!(head_len <= input.request.len() && head_len <= max);
            assert!(matches!(BASE64.decode(request.key()), Ok(k) if k.len() == 16));
            // The checked key and the offers flag are the head's own.
            assert_eq!(&key[..], request.key().as_bytes());
            assert_eq!(
                offers_extensions,
                request.values("sec-websocket-extensions").next().is_some()
            );
            // The fields read from the kept head are httparse's.
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Request::new(&mut slots);
            assert!(matches!(parsed.parse(input.request), Ok(s) if s.is_complete()));
            assert_eq!(Some(request.uri()), parsed.path);
            // Host and Origin, located while parsing, are the last of their
            // headers as read from the kept head.
            assert_eq!(Some(request.host()), request.values("host").last());
            assert_eq!(
                request.origin(),
                request.values("origin").last().unwrap_or_default()
            );
            assert!(
                request
                    .headers()
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .eq(parsed.headers.iter().map(|h| (
                        h.name.to_owned(),
                        String::from_utf8_lossy(h.value).trim().to_owned()
                    ))),
                "{request:?}"
            );
            request
        }
        Ok(None) => {
            assert!(input.request.len() < max, "waiting past the limit");
            return;
        }
        Err(e) => {
            assert!(
                matches!(e.status(), 400 | 405 | 426 | 431),
                "{e}: {}",
                e.status()
            );
            return;
        }
    };
    let settings = DeflateSettings {
        server_max_window_bits: WindowBits::new(input.server_bits).unwrap_or(WindowBits::MAX),
        client_max_window_bits: WindowBits::new(input.client_bits).unwrap_or(WindowBits::MAX),
        server_no_context_takeover: input.server_no_context_takeover,
        client_no_context_takeover: input.client_no_context_takeover,
        ..DeflateSettings::default()
    };
    let values: Vec<&str> = request.values("sec-websocket-extensions").collect();
    let Some(agreement) = negotiate(&values, &settings) else {
        return;
    };
    let params = agreement.params;
    assert!(params.server_max_window_bits <= settings.server_max_window_bits);
    assert!(params.client_max_window_bits <= WindowBits::MAX);
    assert!(params.server_no_context_takeover >= settings.server_no_context_takeover);
    assert!(params.client_no_context_takeover >= settings.client_no_context_takeover);
    assert!(check_header("Sec-WebSocket-Extensions", &agreement.response).is_ok());
    let again = negotiate(&[agreement.response.as_str()], &settings);
    assert_eq!(again.as_ref(), Some(&agreement), "the response as an offer");
});
