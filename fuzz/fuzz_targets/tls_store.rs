//! Loading the TLS certificate store from PEM or PKCS#12 (PFX) bytes, as
//! blobs so no file is touched. A store that cannot serve is refused with
//! the component's code for it (271 unreadable or malformed, 272 no
//! matching certificate, 273 no usable key); one that loads has a
//! certificate whose key matches, which inspecting the store agrees with.
//! CA lists fail with 274 only.

#![no_main]

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use libfuzzer_sys::fuzz_target;
use wsserver::tls::StoreType;
use wsserver::tls::SubjectQuery;
use wsserver::tls::ca_list;
use wsserver::tls::{CertSource, inspect, load};

/// A 9-byte header, then the store (seeds are PEM and PKCS#12 stores).
#[derive(Arbitrary, Debug)]
struct Input<'a> {
    pfx: bool,
    /// NUL-padded.
    password: [u8; 8],
    bytes: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let (store_type, store) = if input.pfx {
        (StoreType::PfxBlob, BASE64.encode(input.bytes))
    } else {
        (
            StoreType::PemKeyBlob,
            String::from_utf8_lossy(input.bytes).into_owned(),
        )
    };
    let source = CertSource {
        store_type,
        store,
        password: String::from_utf8_lossy(&input.password)
            .trim_end_matches('\0')
            .to_owned(),
        subject: SubjectQuery::Any,
    };
    match load(&source, &[]) {
        Ok(loaded) => {
            assert!(loaded.certified_key.keys_match().is_ok());
            let listed = inspect(&source).expect("a loaded store inspects");
            assert!(
                listed
                    .iter()
                    .any(|c| c.fingerprint_sha256 == loaded.info.fingerprint_sha256)
            );
        }
        Err(e) => assert!(matches!(e.code(), 271..=273), "{e}: code {}", e.code()),
    }
    if !input.pfx {
        let text = String::from_utf8_lossy(input.bytes);
        // Only PEM text: anything else is a path to read.
        if text.contains("-----BEGIN ") {
            if let Err(e) = ca_list("SSLCACerts", &text) {
                assert_eq!(e.code(), 274, "{e}");
            }
        }
    }
});
