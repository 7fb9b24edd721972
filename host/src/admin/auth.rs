//! Who may use the admin API: the bearer token when one is configured, and
//! otherwise only clients on the same machine (loopback listener).

use std::net::SocketAddr;

use hyper::header::{AUTHORIZATION, HeaderMap};
use subtle::ConstantTimeEq;

use super::error::AdminError;

#[derive(Debug)]
pub(super) struct Access {
    token: Option<String>,
}

impl Access {
    pub fn new(token: Option<String>) -> Result<Self, AdminError> {
        if token.as_deref().is_some_and(str::is_empty) {
            return Err(AdminError::EmptyToken);
        }
        Ok(Self { token })
    }

    /// Without a token the API may only listen where only local clients
    /// reach it.
    pub fn check_address(&self, addr: SocketAddr) -> Result<(), AdminError> {
        if self.token.is_none() && !addr.ip().to_canonical().is_loopback() {
            return Err(AdminError::NotLoopback { addr });
        }
        Ok(())
    }

    /// Whether the request carries the token (always, when none is set).
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let Some(given) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
        else {
            return false;
        };
        // Constant time, so response timing does not reveal how much of a
        // guess was right.
        given.as_bytes().ct_eq(token.as_bytes()).into()
    }
}

/// The token of an `Authorization: Bearer TOKEN` value (the scheme is
/// case-insensitive, RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        h
    }

    #[test]
    fn the_token_must_match_exactly() {
        let access = Access::new(Some("s3cret".into())).unwrap();
        assert!(access.allows(&headers("Bearer s3cret")));
        assert!(access.allows(&headers("bearer  s3cret")));
        assert!(!access.allows(&headers("Bearer s3cre")));
        assert!(!access.allows(&headers("Bearer s3cret2")));
        assert!(!access.allows(&headers("Basic s3cret")));
        assert!(!access.allows(&HeaderMap::new()));
    }

    #[test]
    fn without_a_token_everyone_is_allowed_but_only_on_loopback() {
        let open = Access::new(None).unwrap();
        assert!(open.allows(&HeaderMap::new()));
        assert!(open.check_address("127.0.0.1:9".parse().unwrap()).is_ok());
        assert!(open.check_address("[::1]:9".parse().unwrap()).is_ok());
        assert!(
            open.check_address("[::ffff:127.0.0.1]:9".parse().unwrap())
                .is_ok()
        );
        for addr in ["0.0.0.0:9", "10.1.2.3:9", "[::]:9"] {
            let e = open.check_address(addr.parse().unwrap()).unwrap_err();
            assert!(matches!(e, AdminError::NotLoopback { .. }), "{addr}: {e}");
        }
        let guarded = Access::new(Some("t".into())).unwrap();
        assert!(guarded.check_address("0.0.0.0:9".parse().unwrap()).is_ok());
    }

    #[test]
    fn an_empty_token_is_refused() {
        assert!(matches!(
            Access::new(Some(String::new())),
            Err(AdminError::EmptyToken)
        ));
    }
}
