//! Choosing a permessage-deflate configuration from the client's offers
//! (RFC 7692 §5 and §7.1) and writing the response header value.

use super::header::{self, Param};
use super::settings::{DeflateSettings, WindowBits};

/// The extension token, as registered by RFC 7692.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The parameters both sides agreed on for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message, so the server
    /// may reset its decompressor.
    pub client_no_context_takeover: bool,
    /// The largest window the server may compress with.
    pub server_max_window_bits: WindowBits,
    /// The largest window the client may compress with.
    pub client_max_window_bits: WindowBits,
}

/// An accepted offer: what to run with and what to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreement {
    pub params: Negotiated,
    /// The value of the response's `Sec-WebSocket-Extensions` header.
    pub response: String,
}

/// Picks the first acceptable permessage-deflate offer from the values of
/// the request's `Sec-WebSocket-Extensions` headers (in order; each may hold
/// several comma-separated offers), or `None` when deflate is disabled or no
/// offer is acceptable. Offers with unknown, duplicate or badly valued
/// parameters are declined as RFC 7692 §5 requires, and the next is tried.
/// A value with a syntax error still contributes the offers before the error.
pub fn negotiate(header_values: &[&str], settings: &DeflateSettings) -> Option<Agreement> {
    if !settings.enabled {
        return None;
    }
    header_values
        .iter()
        .flat_map(|value| header::offers(value).map_while(Result::ok))
        .filter(|offer| offer.name.eq_ignore_ascii_case(EXTENSION_NAME))
        .find_map(|offer| ClientOffer::parse(&offer.params).ok())
        .map(|offer| offer.accept(settings))
}

/// What one offer asks, once its parameters are known to be valid.
#[derive(Debug, Default, PartialEq, Eq)]
struct ClientOffer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<WindowBits>,
    client_max_window_bits: ClientWindow,
}

/// The three forms `client_max_window_bits` takes in an offer (§7.1.2.2).
#[derive(Debug, Default, PartialEq, Eq)]
enum ClientWindow {
    /// Absent: the client cannot be told to use a smaller window.
    #[default]
    Absent,
    /// Present without a value: the server may pick any size.
    ServerPicks,
    /// Present with a value: the client will use at most this.
    AtMost(WindowBits),
}

/// Why an offer was declined.
#[derive(Debug, PartialEq, Eq)]
enum Decline {
    UnknownParameter,
    DuplicateParameter,
    InvalidValue,
}

impl ClientOffer {
    fn parse(params: &[Param<'_>]) -> Result<Self, Decline> {
        let mut offer = Self::default();
        for param in params {
            let value = param.value.as_deref();
            let name = param.name.to_ascii_lowercase();
            match name.as_str() {
                "server_no_context_takeover" => {
                    set_flag(&mut offer.server_no_context_takeover, value)?
                }
                "client_no_context_takeover" => {
                    set_flag(&mut offer.client_no_context_takeover, value)?
                }
                "server_max_window_bits" => {
                    if offer.server_max_window_bits.is_some() {
                        return Err(Decline::DuplicateParameter);
                    }
                    let bits = value.and_then(parse_window_bits);
                    offer.server_max_window_bits = Some(bits.ok_or(Decline::InvalidValue)?);
                }
                "client_max_window_bits" => {
                    if offer.client_max_window_bits != ClientWindow::Absent {
                        return Err(Decline::DuplicateParameter);
                    }
                    offer.client_max_window_bits = match value {
                        None => ClientWindow::ServerPicks,
                        Some(value) => ClientWindow::AtMost(
                            parse_window_bits(value).ok_or(Decline::InvalidValue)?,
                        ),
                    };
                }
                _ => return Err(Decline::UnknownParameter),
            }
        }
        Ok(offer)
    }

    fn accept(&self, settings: &DeflateSettings) -> Agreement {
        let server_no_context_takeover =
            self.server_no_context_takeover || settings.wants_server_no_context_takeover();
        // A client offering client_no_context_takeover will not take over
        // anyway (§7.1.1.2); saying so back lets the server drop its
        // decompressor between messages.
        let client_no_context_takeover =
            self.client_no_context_takeover || settings.wants_client_no_context_takeover();
        // §7.1.2.1: answer with the same or a smaller value; the server may
        // also announce a smaller window unasked.
        let server_max_window_bits = self
            .server_max_window_bits
            .map_or(settings.server_max_window_bits, |asked| {
                asked.min(settings.server_max_window_bits)
            });
        let announce_server_bits =
            self.server_max_window_bits.is_some() || server_max_window_bits < WindowBits::MAX;
        let (client_max_window_bits, announce_client_bits) = match self.client_max_window_bits {
            // §7.1.2.2: the response must not name a size the client did
            // not say it can honour; it will use up to 32 KiB.
            ClientWindow::Absent => (WindowBits::MAX, false),
            ClientWindow::ServerPicks => (
                settings.client_max_window_bits,
                settings.client_max_window_bits < WindowBits::MAX,
            ),
            // Always echoed, so the limit binds whatever the client assumes
            // about an unanswered value.
            ClientWindow::AtMost(bits) => (bits.min(settings.client_max_window_bits), true),
        };

        let mut response = String::from(EXTENSION_NAME);
        if server_no_context_takeover {
            response.push_str("; server_no_context_takeover");
        }
        if client_no_context_takeover {
            response.push_str("; client_no_context_takeover");
        }
        if announce_server_bits {
            response.push_str(&format!(
                "; server_max_window_bits={}",
                server_max_window_bits.get()
            ));
        }
        if announce_client_bits {
            response.push_str(&format!(
                "; client_max_window_bits={}",
                client_max_window_bits.get()
            ));
        }
        Agreement {
            params: Negotiated {
                server_no_context_takeover,
                client_no_context_takeover,
                server_max_window_bits,
                client_max_window_bits,
            },
            response,
        }
    }
}

/// A flag parameter takes no value (§7.1.1) and may appear once.
fn set_flag(flag: &mut bool, value: Option<&str>) -> Result<(), Decline> {
    if *flag {
        return Err(Decline::DuplicateParameter);
    }
    if value.is_some() {
        return Err(Decline::InvalidValue);
    }
    *flag = true;
    Ok(())
}

/// §7.1.2: a decimal integer from 8 to 15 without leading zeroes (a quoted
/// value arrives here already unquoted).
fn parse_window_bits(value: &str) -> Option<WindowBits> {
    if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    WindowBits::new(value.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::super::settings::MemoryMode;
    use super::*;

    fn bits(n: u8) -> WindowBits {
        WindowBits::new(n).unwrap()
    }

    /// Dedicated mode with defaults: the server adds nothing of its own.
    fn dedicated() -> DeflateSettings {
        DeflateSettings {
            memory_mode: MemoryMode::Dedicated,
            ..DeflateSettings::default()
        }
    }

    fn response(headers: &[&str], settings: &DeflateSettings) -> Option<String> {
        negotiate(headers, settings).map(|agreement| agreement.response)
    }

    fn parse(offer: &str) -> Result<ClientOffer, Decline> {
        let offer = header::offers(offer).next().unwrap().unwrap();
        ClientOffer::parse(&offer.params)
    }

    #[test]
    fn a_bare_offer_is_accepted_as_is_in_dedicated_mode() {
        let agreement = negotiate(&["permessage-deflate"], &dedicated()).unwrap();
        assert_eq!(agreement.response, "permessage-deflate");
        assert_eq!(
            agreement.params,
            Negotiated {
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                server_max_window_bits: WindowBits::MAX,
                client_max_window_bits: WindowBits::MAX,
            }
        );
    }

    #[test]
    fn shared_mode_turns_off_context_takeover_both_ways() {
        let agreement = negotiate(&["permessage-deflate"], &DeflateSettings::default()).unwrap();
        assert_eq!(
            agreement.response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert!(agreement.params.server_no_context_takeover);
        assert!(agreement.params.client_no_context_takeover);
    }

    #[test]
    fn context_takeover_flags_are_honoured_from_the_offer_or_the_settings() {
        let cases = [
            (
                "permessage-deflate; server_no_context_takeover",
                dedicated(),
                "permessage-deflate; server_no_context_takeover",
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                dedicated(),
                "permessage-deflate; client_no_context_takeover",
            ),
            (
                "permessage-deflate",
                DeflateSettings {
                    server_no_context_takeover: true,
                    ..dedicated()
                },
                "permessage-deflate; server_no_context_takeover",
            ),
            (
                "permessage-deflate",
                DeflateSettings {
                    client_no_context_takeover: true,
                    ..dedicated()
                },
                "permessage-deflate; client_no_context_takeover",
            ),
        ];
        for (offer, settings, expected) in cases {
            assert_eq!(response(&[offer], &settings).as_deref(), Some(expected));
        }
    }

    #[test]
    fn server_max_window_bits_is_answered_with_the_same_or_a_smaller_value() {
        let limited = DeflateSettings {
            server_max_window_bits: bits(10),
            ..dedicated()
        };
        let cases = [
            (
                "server_max_window_bits=12",
                &dedicated(),
                12,
                "; server_max_window_bits=12",
            ),
            (
                "server_max_window_bits=8",
                &dedicated(),
                8,
                "; server_max_window_bits=8",
            ),
            (
                "server_max_window_bits=\"9\"",
                &dedicated(),
                9,
                "; server_max_window_bits=9",
            ),
            (
                "server_max_window_bits=12",
                &limited,
                10,
                "; server_max_window_bits=10",
            ),
            (
                "server_max_window_bits=9",
                &limited,
                9,
                "; server_max_window_bits=9",
            ),
            // Not asked: the server still announces its smaller window.
            (
                "client_no_context_takeover",
                &limited,
                10,
                "; client_no_context_takeover; server_max_window_bits=10",
            ),
        ];
        for (param, settings, negotiated, suffix) in cases {
            let offer = format!("permessage-deflate; {param}");
            let agreement = negotiate(&[&offer], settings).unwrap();
            assert_eq!(
                agreement.params.server_max_window_bits,
                bits(negotiated),
                "{offer}"
            );
            assert_eq!(
                agreement.response,
                format!("permessage-deflate{suffix}"),
                "{offer}"
            );
        }
    }

    #[test]
    fn client_max_window_bits_is_limited_only_when_the_client_allows_it() {
        let limited = DeflateSettings {
            client_max_window_bits: bits(10),
            ..dedicated()
        };
        let cases = [
            // Without a value: the server picks, and says so only if < 15.
            ("; client_max_window_bits", &dedicated(), 15, ""),
            (
                "; client_max_window_bits",
                &limited,
                10,
                "; client_max_window_bits=10",
            ),
            // With a value: echoed, or lowered to the server's choice.
            (
                "; client_max_window_bits=12",
                &dedicated(),
                12,
                "; client_max_window_bits=12",
            ),
            (
                "; client_max_window_bits=12",
                &limited,
                10,
                "; client_max_window_bits=10",
            ),
            (
                "; client_max_window_bits=9",
                &limited,
                9,
                "; client_max_window_bits=9",
            ),
            // Absent: the response must not name it, whatever the settings.
            ("", &limited, 15, ""),
        ];
        for (params, settings, negotiated, suffix) in cases {
            let offer = format!("permessage-deflate{params}");
            let agreement = negotiate(&[&offer], settings).unwrap();
            assert_eq!(
                agreement.params.client_max_window_bits,
                bits(negotiated),
                "{offer}"
            );
            assert_eq!(
                agreement.response,
                format!("permessage-deflate{suffix}"),
                "{offer}"
            );
        }
    }

    #[test]
    fn every_parameter_together() {
        let offer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                     server_max_window_bits=11; client_max_window_bits=13";
        let agreement = negotiate(&[offer], &dedicated()).unwrap();
        assert_eq!(
            agreement.response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=11; client_max_window_bits=13"
        );
        assert_eq!(
            agreement.params,
            Negotiated {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: bits(11),
                client_max_window_bits: bits(13),
            }
        );
    }

    #[test]
    fn offers_with_bad_parameters_are_declined_with_the_reason() {
        let cases = [
            ("permessage-deflate; foo", Decline::UnknownParameter),
            (
                "permessage-deflate; foo=1; server_no_context_takeover",
                Decline::UnknownParameter,
            ),
            ("permessage-deflate; mux", Decline::UnknownParameter),
            (
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                Decline::DuplicateParameter,
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                Decline::DuplicateParameter,
            ),
            (
                "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
                Decline::DuplicateParameter,
            ),
            (
                "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
                Decline::DuplicateParameter,
            ),
            (
                "permessage-deflate; server_no_context_takeover=1",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; client_no_context_takeover=\"\"",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; server_max_window_bits",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; server_max_window_bits=7",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; server_max_window_bits=16",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; server_max_window_bits=010",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; server_max_window_bits=+9",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; server_max_window_bits=\"\"",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; client_max_window_bits=0",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; client_max_window_bits=\"1 0\"",
                Decline::InvalidValue,
            ),
            (
                "permessage-deflate; client_max_window_bits=99999999999999999999",
                Decline::InvalidValue,
            ),
        ];
        for (offer, reason) in cases {
            assert_eq!(parse(offer), Err(reason), "{offer}");
            assert_eq!(response(&[offer], &dedicated()), None, "{offer}");
        }
    }

    #[test]
    fn the_first_acceptable_offer_wins_across_offers_and_headers() {
        let settings = dedicated();
        let headers = [
            "x-webkit-deflate-frame, permessage-deflate; foo",
            "permessage-deflate; server_max_window_bits=99, permessage-deflate; server_max_window_bits=10",
            "permessage-deflate",
        ];
        assert_eq!(
            response(&headers, &settings).as_deref(),
            Some("permessage-deflate; server_max_window_bits=10")
        );
        assert_eq!(
            response(&headers[2..], &settings).as_deref(),
            Some("permessage-deflate")
        );
        assert_eq!(response(&headers[..1], &settings), None);
    }

    #[test]
    fn a_broken_header_still_gives_its_earlier_offers_and_the_next_header() {
        let settings = dedicated();
        assert_eq!(
            response(
                &["permessage-deflate; client_max_window_bits, permessage-deflate; \"x"],
                &settings
            )
            .as_deref(),
            Some("permessage-deflate")
        );
        assert_eq!(
            response(
                &[
                    "permessage-deflate; p=\"unclosed, permessage-deflate",
                    "permessage-deflate; server_no_context_takeover"
                ],
                &settings
            )
            .as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
    }

    #[test]
    fn names_match_in_any_case() {
        assert_eq!(
            response(
                &["PerMessage-Deflate; Server_No_Context_Takeover"],
                &dedicated()
            )
            .as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
    }

    #[test]
    fn nothing_is_negotiated_when_disabled_or_not_offered() {
        let disabled = DeflateSettings {
            enabled: false,
            ..DeflateSettings::default()
        };
        assert_eq!(negotiate(&["permessage-deflate"], &disabled), None);
        assert_eq!(negotiate(&[], &DeflateSettings::default()), None);
        assert_eq!(
            negotiate(&["", "x-webkit-deflate-frame"], &DeflateSettings::default()),
            None
        );
        assert_eq!(
            negotiate(&["permessage-deflate-x"], &DeflateSettings::default()),
            None
        );
    }

    #[test]
    fn never_panics_and_answers_parse_back_to_what_was_agreed() {
        let mut rng = fastrand::Rng::with_seed(7);
        let pieces = [
            "permessage-deflate",
            "; ",
            ",",
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
            "=",
            "8",
            "9",
            "12",
            "15",
            "16",
            "\"10\"",
            "\"",
            " ",
            "x",
        ];
        for _ in 0..20_000 {
            let header: String = (0..rng.usize(0..10))
                .map(|_| pieces[rng.usize(..pieces.len())])
                .collect();
            let settings = DeflateSettings {
                memory_mode: if rng.bool() {
                    MemoryMode::Shared
                } else {
                    MemoryMode::Dedicated
                },
                server_max_window_bits: bits(rng.u8(8..=15)),
                client_max_window_bits: bits(rng.u8(8..=15)),
                ..DeflateSettings::default()
            };
            let Some(agreement) = negotiate(&[&header], &settings) else {
                continue;
            };
            // The answer itself is a valid single offer with the agreed values.
            let answer = parse(&agreement.response).unwrap();
            assert_eq!(
                answer.server_no_context_takeover,
                agreement.params.server_no_context_takeover
            );
            assert_eq!(
                answer.client_no_context_takeover,
                agreement.params.client_no_context_takeover
            );
            assert_eq!(
                answer.server_max_window_bits.unwrap_or(WindowBits::MAX),
                agreement.params.server_max_window_bits
            );
            assert!(agreement.params.server_max_window_bits <= settings.server_max_window_bits);
        }
    }
}
