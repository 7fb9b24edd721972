//! Reading a `Sec-WebSocket-Extensions` value: the RFC 6455 §9.1 grammar
//! built from RFC 7230 tokens, quoted-strings, parameters and `#` lists.
//!
//! ```text
//! extension-list = 1#extension
//! extension      = token *( OWS ";" OWS token [ OWS "=" OWS ( token / quoted-string ) ] )
//! ```

use std::borrow::Cow;

/// One extension offer: its name and its parameters in order.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Offer<'a> {
    pub name: &'a str,
    pub params: Vec<Param<'a>>,
}

/// One `name[=value]` parameter; a quoted value is returned unescaped.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Param<'a> {
    pub name: &'a str,
    pub value: Option<Cow<'a, str>>,
}

/// Where a header value stopped following the grammar (byte offset).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SyntaxError {
    pub at: usize,
}

/// The offers of one header value, in order. A syntax error ends the list
/// (after yielding the error), since a broken quoted-string makes every
/// later comma ambiguous.
pub(super) fn offers(value: &str) -> Offers<'_> {
    Offers {
        text: value,
        pos: 0,
        failed: false,
    }
}

pub(super) struct Offers<'a> {
    text: &'a str,
    pos: usize,
    failed: bool,
}

impl<'a> Iterator for Offers<'a> {
    type Item = Result<Offer<'a>, SyntaxError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        // RFC 7230 §7: empty list elements (",,") are ignored.
        loop {
            self.skip_ows();
            if !self.eat(b',') {
                break;
            }
        }
        if self.pos == self.text.len() {
            return None;
        }
        let offer = self.offer();
        self.failed = offer.is_err();
        Some(offer)
    }
}

impl<'a> Offers<'a> {
    fn offer(&mut self) -> Result<Offer<'a>, SyntaxError> {
        let name = self.token()?;
        let mut params = Vec::new();
        loop {
            self.skip_ows();
            if self.pos == self.text.len() || self.eat(b',') {
                return Ok(Offer { name, params });
            }
            if !self.eat(b';') {
                return Err(self.error());
            }
            self.skip_ows();
            let name = self.token()?;
            self.skip_ows();
            let value = if self.eat(b'=') {
                self.skip_ows();
                Some(if self.peek() == Some(b'"') {
                    self.quoted_string()?
                } else {
                    Cow::Borrowed(self.token()?)
                })
            } else {
                None
            };
            params.push(Param { name, value });
        }
    }

    fn token(&mut self) -> Result<&'a str, SyntaxError> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error());
        }
        Ok(&self.text[start..self.pos])
    }

    /// `DQUOTE *( qdtext / "\" char ) DQUOTE`, unescaped; borrowed when it
    /// holds no backslash.
    fn quoted_string(&mut self) -> Result<Cow<'a, str>, SyntaxError> {
        let open = self.pos;
        self.pos += 1;
        let body_start = self.pos;
        let mut unescaped: Option<String> = None;
        let mut chars = self.text[body_start..].char_indices();
        while let Some((offset, c)) = chars.next() {
            let at = body_start + offset;
            match c {
                '"' => {
                    self.pos = at + 1;
                    return Ok(match unescaped {
                        Some(owned) => Cow::Owned(owned),
                        None => Cow::Borrowed(&self.text[body_start..at]),
                    });
                }
                '\\' => {
                    let Some((_, escaped)) = chars.next().filter(|&(_, c)| is_qtext(c)) else {
                        self.pos = at;
                        return Err(self.error());
                    };
                    unescaped
                        .get_or_insert_with(|| self.text[body_start..at].to_owned())
                        .push(escaped);
                }
                c if is_qtext(c) => {
                    if let Some(owned) = unescaped.as_mut() {
                        owned.push(c);
                    }
                }
                _ => {
                    self.pos = at;
                    return Err(self.error());
                }
            }
        }
        self.pos = open;
        Err(self.error())
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn error(&self) -> SyntaxError {
        SyntaxError { at: self.pos }
    }
}

/// RFC 7230 §3.2.6 `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// What may stand inside a quoted-string, escaped or not: HTAB, SP, visible
/// ASCII and obs-text (non-ASCII). The caller handles `"` and `\` first.
fn is_qtext(c: char) -> bool {
    c == '\t' || c == ' ' || c.is_ascii_graphic() || !c.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param<'a>(name: &'a str, value: Option<&'a str>) -> Param<'a> {
        Param {
            name,
            value: value.map(Cow::Borrowed),
        }
    }

    #[test]
    fn reads_several_offers_with_spaces_and_empty_elements() {
        let parsed: Vec<_> = offers(
            " , permessage-deflate ; client_max_window_bits,, x-webkit-deflate-frame,\
             permessage-deflate;server_max_window_bits=10\t;\tserver_no_context_takeover ,",
        )
        .collect();
        assert_eq!(
            parsed,
            vec![
                Ok(Offer {
                    name: "permessage-deflate",
                    params: vec![param("client_max_window_bits", None)],
                }),
                Ok(Offer {
                    name: "x-webkit-deflate-frame",
                    params: vec![],
                }),
                Ok(Offer {
                    name: "permessage-deflate",
                    params: vec![
                        param("server_max_window_bits", Some("10")),
                        param("server_no_context_takeover", None),
                    ],
                }),
            ]
        );
    }

    #[test]
    fn unescapes_quoted_values_and_keeps_commas_inside_them() {
        let parsed: Vec<_> = offers(r#"a; p = "1,0"; q="x\"y\\z", b; r="""#).collect();
        assert_eq!(
            parsed,
            vec![
                Ok(Offer {
                    name: "a",
                    params: vec![
                        param("p", Some("1,0")),
                        Param {
                            name: "q",
                            value: Some(Cow::Owned(r#"x"y\z"#.to_owned())),
                        },
                    ],
                }),
                Ok(Offer {
                    name: "b",
                    params: vec![param("r", Some(""))],
                }),
            ]
        );
    }

    #[test]
    fn a_syntax_error_ends_the_list_after_the_good_offers() {
        let cases = [
            ("a, b c, d", 5),
            ("a; =1, d", 3),
            ("a; p=, d", 5),
            ("a; p=\"open, d", 5),
            ("a; p=\"bad\\\u{1}\", d", 9),
            ("a; p=\"ctl\u{7f}\", d", 9),
            ("a;", 2),
            ("(a)", 0),
            ("a; p=1=2", 6),
        ];
        for (text, at) in cases {
            let parsed: Vec<_> = offers(text).collect();
            assert_eq!(parsed.last(), Some(&Err(SyntaxError { at })), "{text:?}");
            assert!(
                parsed[..parsed.len() - 1].iter().all(Result::is_ok),
                "{text:?}"
            );
        }
    }

    #[test]
    fn empty_or_blank_values_hold_no_offer() {
        assert_eq!(offers("").count(), 0);
        assert_eq!(offers(" \t, ,").count(), 0);
    }

    #[test]
    fn never_panics_on_arbitrary_text() {
        let mut rng = fastrand::Rng::with_seed(7692);
        let alphabet: Vec<char> = "ab=;,\"\\ \t\u{1}\u{7f}é_-1".chars().collect();
        for _ in 0..20_000 {
            let len = rng.usize(0..24);
            let text: String = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            for offer in offers(&text) {
                if let Err(SyntaxError { at }) = offer {
                    assert!(at <= text.len());
                }
            }
        }
    }
}
