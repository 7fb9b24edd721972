//! The TOML configuration file and `--set Key=Value` items (each line of
//! the input is also tried as one). A file that
//! parses parses the same once written back by the TOML library; every
//! setting it holds is refused with an error naming its key or applied,
//! and then reads back as a value that sets and reads back unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsserver::Settings;
use wsserver::config::{apply_set, parse};

/// Applies one setting and checks what it reads back as.
fn check_setting(settings: &mut Settings, key: &str, value: &str) {
    match settings.set(key, value) {
        Ok(()) => {
            // TLS stores read back as a summary (blobs hold keys).
            if key.to_ascii_lowercase().starts_with("ssl") {
                return;
            }
            let Ok(read) = settings.get(key) else { return };
            settings
                .set(key, &read)
                .unwrap_or_else(|e| panic!("{key}: {read:?} read back but refused: {e}"));
            assert_eq!(settings.get(key).ok().as_ref(), Some(&read), "{key}");
        }
        Err(e) => {
            let text = e.to_string().to_ascii_lowercase();
            let named = key.trim().to_ascii_lowercase();
            assert!(
                named.starts_with("ssl") || text.contains(&named),
                "{e} does not name {key:?}"
            );
        }
    }
}

fuzz_target!(|text: &str| {
    if let Ok(config) = parse(text) {
        let table: toml::Table = text.parse().expect("parsed once");
        let written = toml::to_string(&table).expect("writes back");
        // The same configuration, but for the line each setting stood on.
        let mut again = parse(&written).expect(&written);
        assert_eq!(again.settings.len(), config.settings.len(), "{written}");
        for (a, b) in again.settings.iter_mut().zip(&config.settings) {
            a.line = b.line;
        }
        assert_eq!(again, config, "{written}");
        let mut settings = Settings::default();
        for setting in &config.settings {
            check_setting(&mut settings, &setting.name, &setting.value);
        }
    }
    let mut settings = Settings::default();
    for item in text.lines() {
        match apply_set(&mut settings, item) {
            Ok(()) => {
                let (key, value) = item.split_once('=').expect("applied");
                check_setting(&mut settings, key.trim(), value);
            }
            Err(e) => assert!(e.to_string().starts_with("--set "), "{e}"),
        }
    }
});
