//! The admin API's JSON bodies. Each body type accepts or refuses with
//! "invalid JSON body"; an accepted body written back as JSON reads back
//! the same; a disconnect request gives a close code that may be sent and
//! a reason that fits a close frame, which survive the wire format; a
//! config value's number reads back as the number; a binary publish's
//! base64 data decodes to bytes that encode back to it.

#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use wsserver::MessageKind;
use wsserver::admin::request::{
    Closing, ConfigRequest, ConfigValue, DisconnectRequest, ListeningRequest, PublishFormat,
    PublishRequest, SwapRequest, parse_json, parse_json_or_default,
};
use wsserver::protocol::close::{encode_close_payload, is_valid_wire_code, parse_close_payload};

/// The body as `T`, checked to survive being written back.
fn round_trip<T>(body: &[u8]) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug + Default,
{
    match parse_json_or_default::<T>(body) {
        Ok(value) => {
            let written = serde_json::to_vec(&value).expect("writes");
            assert_eq!(parse_json::<T>(&written).as_ref(), Ok(&value), "round trip");
            Some(value)
        }
        Err(e) => {
            assert!(e.0.starts_with("invalid JSON body"), "{e}");
            None
        }
    }
}

fuzz_target!(|body: &[u8]| {
    round_trip::<SwapRequest>(body);
    if let Some(request) = round_trip::<DisconnectRequest>(body)
        && let Ok(Closing::With { code, reason }) = request.closing(1000)
    {
        assert!(is_valid_wire_code(code) && reason.len() <= 123);
        let payload = encode_close_payload(code, &reason);
        let frame = parse_close_payload(&payload).expect("a valid close payload");
        assert_eq!((frame.code, frame.reason), (Some(code), reason.as_str()));
    }
    match parse_json::<ListeningRequest>(body) {
        Ok(value) => {
            let written = serde_json::to_vec(&value).expect("writes");
            assert_eq!(parse_json(&written).as_ref(), Ok(&value));
        }
        Err(e) => assert!(e.0.starts_with("invalid JSON body"), "{e}"),
    }
    match parse_json::<ConfigRequest>(body) {
        Ok(ConfigRequest {
            value: ConfigValue::Number(n),
        }) => assert_eq!(ConfigValue::Number(n).to_setting().parse::<i64>(), Ok(n)),
        Ok(other) => {
            let written = serde_json::to_vec(&other).expect("writes");
            assert_eq!(parse_json(&written).as_ref(), Ok(&other));
        }
        Err(e) => assert!(e.0.starts_with("invalid JSON body"), "{e}"),
    }
    match parse_json::<PublishRequest>(body) {
        Ok(request) => {
            let written = serde_json::to_vec(&request).expect("writes");
            assert_eq!(parse_json(&written).as_ref(), Ok(&request));
            match (request.format, request.message()) {
                (PublishFormat::Text, Ok((kind, data))) => {
                    assert_eq!((kind, data), (MessageKind::Text, request.data.into_bytes()))
                }
                (PublishFormat::Binary, Ok((kind, data))) => {
                    assert_eq!(kind, MessageKind::Binary);
                    assert_eq!(BASE64.encode(data), request.data);
                }
                (PublishFormat::Text, Err(e)) => panic!("text refused: {e}"),
                (PublishFormat::Binary, Err(e)) => assert!(e.0.starts_with("data: "), "{e}"),
            }
        }
        Err(e) => assert!(e.0.starts_with("invalid JSON body"), "{e}"),
    }
});
