//! The JSON bodies the admin API reads, parsed and checked without
//! touching the server: the fuzz targets feed them arbitrary bytes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::MessageKind;
use crate::protocol::close::{MAX_REASON_LEN, is_valid_wire_code};

/// `POST /tenants/{name}/swap` with a JSON body: a component file on the
/// server (default: the tenant's own file, read again) and configuration
/// values (default: the running ones).
#[derive(Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SwapRequest {
    pub file: Option<PathBuf>,
    pub config: Option<BTreeMap<String, String>>,
}

/// `DELETE /connections/{id}`: both optional; the defaults are the
/// DisconnectStatusCode and DisconnectStatusDescription settings.
#[derive(Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DisconnectRequest {
    pub code: Option<u16>,
    pub reason: Option<String>,
}

/// The close frame a [`DisconnectRequest`] asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Closing {
    /// Neither code nor reason: Disconnect with the settings' defaults.
    Default,
    /// A code that may be sent and a reason that fits a close frame.
    With { code: u16, reason: String },
}

impl DisconnectRequest {
    /// Checks the code and reason; a missing code is `default_code`.
    pub fn closing(self, default_code: u16) -> Result<Closing, InvalidBody> {
        let (code, reason) = match self {
            Self {
                code: None,
                reason: None,
            } => return Ok(Closing::Default),
            Self { code, reason } => (code.unwrap_or(default_code), reason.unwrap_or_default()),
        };
        if reason.len() > MAX_REASON_LEN {
            return Err(InvalidBody(format!(
                "a close reason is at most {MAX_REASON_LEN} bytes"
            )));
        }
        if !is_valid_wire_code(code) {
            return Err(InvalidBody(format!(
                "close code {code} may not be sent (1000-1003, 1007-1014, 3000-4999)"
            )));
        }
        Ok(Closing::With { code, reason })
    }
}

/// `POST /listening`.
#[derive(Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListeningRequest {
    pub listening: bool,
}

/// `PUT /config/{Key}`: a string, or a number or boolean written as the
/// TOML file would have it.
#[derive(Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigRequest {
    pub value: ConfigValue,
}

#[derive(Debug, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ConfigValue {
    Text(String),
    Number(i64),
    Flag(bool),
}

impl ConfigValue {
    /// The value as `Config("Key=Value")` takes it.
    pub fn to_setting(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Number(n) => n.to_string(),
            Self::Flag(true) => "True".to_owned(),
            Self::Flag(false) => "False".to_owned(),
        }
    }
}

/// `POST /tenants/{name}/publish`.
#[derive(Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub topic: String,
    #[serde(default)]
    pub format: PublishFormat,
    /// The message: text as it is, binary in base64.
    pub data: String,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishFormat {
    #[default]
    Text,
    Binary,
}

impl PublishRequest {
    /// The message to publish: its type and bytes.
    pub fn message(&self) -> Result<(MessageKind, Vec<u8>), InvalidBody> {
        match self.format {
            PublishFormat::Text => Ok((MessageKind::Text, self.data.clone().into_bytes())),
            PublishFormat::Binary => BASE64
                .decode(self.data.as_bytes())
                .map(|data| (MessageKind::Binary, data))
                .map_err(|e| InvalidBody(format!("data: not base64 for a binary message: {e}"))),
        }
    }
}

/// A body the API refuses (HTTP 400), with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidBody(pub String);

impl fmt::Display for InvalidBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidBody {}

/// A JSON body.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, InvalidBody> {
    serde_json::from_slice(body).map_err(|e| InvalidBody(format!("invalid JSON body: {e}")))
}

/// A JSON body, or the default when it has none (only white space).
pub fn parse_json_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, InvalidBody> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnect_bodies_are_checked() {
        let body: DisconnectRequest = parse_json_or_default(b" \n").unwrap();
        assert_eq!(body.closing(1000), Ok(Closing::Default));
        let body: DisconnectRequest = parse_json(br#"{"reason": "bye"}"#).unwrap();
        assert_eq!(
            body.closing(4000),
            Ok(Closing::With {
                code: 4000,
                reason: "bye".into()
            })
        );
        let body: DisconnectRequest = parse_json(br#"{"code": 1005}"#).unwrap();
        assert!(body.closing(1000).unwrap_err().0.contains("1005"));
        let long = format!(r#"{{"reason": "{}"}}"#, "x".repeat(124));
        let body: DisconnectRequest = parse_json(long.as_bytes()).unwrap();
        assert!(body.closing(1000).is_err());
        let e = parse_json::<DisconnectRequest>(br#"{"cdoe": 1}"#).unwrap_err();
        assert!(
            e.0.starts_with("invalid JSON body") && e.0.contains("cdoe"),
            "{e}"
        );
    }

    #[test]
    fn config_values_take_the_toml_forms() {
        let body: ConfigRequest = parse_json(br#"{"value": 5}"#).unwrap();
        assert_eq!(body.value.to_setting(), "5");
        let body: ConfigRequest = parse_json(br#"{"value": false}"#).unwrap();
        assert_eq!(body.value.to_setting(), "False");
        let body: ConfigRequest = parse_json(br#"{"value": "127.0.0.*"}"#).unwrap();
        assert_eq!(body.value.to_setting(), "127.0.0.*");
    }
}
