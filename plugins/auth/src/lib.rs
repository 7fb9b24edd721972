//! Admits only clients that present the configured token, then echoes like
//! the echo plugin.
//!
//! - Token: `?token=...` in the request URI, or an `Authorization: Bearer ...`
//!   header; either may carry it. The accepted value is the plugin config key
//!   `auth.token`, or [`DEFAULT_TOKEN`] if the operator set none.
//! - Missing or wrong token: 401 with `WWW-Authenticate: Bearer
//!   realm="wsserver"`.
//! - Subprotocols: of those the client offers, the first (in the client's
//!   order of preference) that is in [`SUBPROTOCOLS`]; none if the client
//!   offers none of them.

use std::borrow::Cow;

use subtle::ConstantTimeEq;
use wsserver_sdk::{
    Context, DataIn, DisconnectInfo, MessageAssembler, OpenRequest, OpenResponse, Plugin, host,
};

/// Plugin config key holding the accepted token.
pub const TOKEN_KEY: &str = "auth.token";
/// The token accepted when `auth.token` is not set. For development only:
/// set `auth.token` in production.
pub const DEFAULT_TOKEN: &str = "wsserver-dev-token";
/// The subprotocols this plugin speaks.
pub const SUBPROTOCOLS: [&str; 2] = ["chat.v2", "chat.v1"];
const CHALLENGE: &str = r#"Bearer realm="wsserver""#;

#[derive(Default)]
struct Auth {
    messages: MessageAssembler,
}

impl Plugin for Auth {
    fn open_request(&mut self, request: OpenRequest) -> OpenResponse {
        // Read on each request so that a configuration reload applies at once.
        let expected = host::config_get(TOKEN_KEY);
        answer(&request, expected.as_deref().unwrap_or(DEFAULT_TOKEN))
    }

    fn data_in(&mut self, ctx: &mut Context, data: DataIn) {
        if let Some(message) = self.messages.push(data) {
            ctx.send_message(message);
        }
    }

    fn disconnected(&mut self, _ctx: &mut Context, info: DisconnectInfo) {
        self.messages.forget(info.connection);
    }
}

wsserver_sdk::export_plugin!(Auth);

/// The response to an open request, given the accepted token.
fn answer(request: &OpenRequest, expected: &str) -> OpenResponse {
    if !presented_tokens(request).any(|token| token_matches(&token, expected)) {
        return OpenResponse::reject(401).with_header("WWW-Authenticate", CHALLENGE);
    }
    let response = OpenResponse::accept();
    match request
        .subprotocols
        .iter()
        .find(|offered| SUBPROTOCOLS.contains(&offered.as_str()))
    {
        Some(subprotocol) => response.with_subprotocol(subprotocol.as_str()),
        None => response,
    }
}

/// Every token the client presented: `token` query parameters and the
/// Bearer credentials of the Authorization header.
fn presented_tokens(request: &OpenRequest) -> impl Iterator<Item = Cow<'_, str>> {
    let from_query = request
        .query()
        .into_iter()
        .flat_map(|query| form_urlencoded::parse(query.as_bytes()))
        .filter(|(name, _)| name == "token")
        .map(|(_, value)| value);
    let from_header = request
        .header("Authorization")
        .and_then(bearer_credentials)
        .map(Cow::Borrowed);
    from_query.chain(from_header)
}

/// The credentials of an `Authorization: Bearer <token>` value (the scheme
/// is case-insensitive, RFC 7235).
fn bearer_credentials(authorization: &str) -> Option<&str> {
    let (scheme, credentials) = authorization.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("Bearer")
        .then(|| credentials.trim_start())
}

/// Compares in constant time, so response timing does not reveal how much
/// of a guess was right. An empty token never matches.
fn token_matches(presented: &str, expected: &str) -> bool {
    !presented.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsserver_sdk::Header;

    fn request(uri: &str, headers: &[(&str, &str)], subprotocols: &[&str]) -> OpenRequest {
        OpenRequest {
            connection: 1,
            request_uri: uri.into(),
            host: "localhost".into(),
            origin: None,
            subprotocols: subprotocols.iter().map(|p| p.to_string()).collect(),
            extensions: String::new(),
            headers: headers
                .iter()
                .map(|(name, value)| Header::new(*name, *value))
                .collect(),
            remote_address: "127.0.0.1".into(),
            remote_port: 50000,
            local_address: "127.0.0.1".into(),
            tls: None,
        }
    }

    fn assert_rejected(response: &OpenResponse) {
        assert_eq!(response.status, 401);
        assert_eq!(
            response.headers,
            [Header::new(
                "WWW-Authenticate",
                r#"Bearer realm="wsserver""#
            )]
        );
        assert_eq!(response.subprotocol, None);
    }

    #[test]
    fn rejects_a_request_without_a_token() {
        assert_rejected(&answer(&request("/", &[], &[]), "s3cret"));
    }

    #[test]
    fn rejects_a_wrong_or_empty_token() {
        assert_rejected(&answer(&request("/?token=guess", &[], &[]), "s3cret"));
        assert_rejected(&answer(
            &request("/", &[("Authorization", "Bearer s3cre")], &[]),
            "s3cret",
        ));
        assert_rejected(&answer(&request("/?token=", &[], &[]), ""));
        assert_rejected(&answer(
            &request("/", &[("Authorization", "Basic s3cret")], &[]),
            "s3cret",
        ));
    }

    #[test]
    fn accepts_the_token_in_the_query_percent_decoded() {
        let response = answer(&request("/chat?room=1&token=a%2Bb%20c", &[], &[]), "a+b c");
        assert!(response.is_accepted());
        assert!(response.headers.is_empty());
    }

    #[test]
    fn accepts_a_bearer_token_with_any_scheme_case() {
        for value in ["Bearer s3cret", "bearer  s3cret", " BEARER s3cret "] {
            let response = answer(&request("/", &[("authorization", value)], &[]), "s3cret");
            assert!(response.is_accepted(), "{value:?}");
        }
    }

    #[test]
    fn picks_the_clients_first_supported_subprotocol() {
        let offered =
            |protocols: &[&str]| answer(&request("/?token=t", &[], protocols), "t").subprotocol;
        assert_eq!(offered(&["chat.v1", "chat.v2"]), Some("chat.v1".into()));
        assert_eq!(offered(&["mqtt", "chat.v2"]), Some("chat.v2".into()));
        assert_eq!(offered(&["mqtt"]), None);
        assert_eq!(offered(&[]), None);
    }
}
