//! The Config method: reading and writing settings, per-connection keys,
//! and the errors a caller can get.

use std::sync::Arc;

use wsserver::ConfigError;
use wsserver::EchoHandler;
use wsserver::{Error, Settings, WsServer};

use crate::harness::*;

#[tokio::test]
async fn settings_read_back_in_the_form_they_are_set() {
    let t = server().start().await;
    let s = &t.server;
    assert_eq!(s.config("BufferMessage").unwrap(), "False");
    assert_eq!(
        s.config("bufferMESSAGE=yes").unwrap(),
        "",
        "a set returns nothing"
    );
    assert_eq!(s.config("BufferMessage").unwrap(), "True");
    s.config("MaxFrameSize = 4096").unwrap();
    assert_eq!(s.config("maxframesize").unwrap(), "4096");
    assert_eq!(s.settings().max_frame_size, 4096);
    assert!(s.config("BuildInfo").unwrap().starts_with("wsserver "));
}

#[tokio::test]
async fn the_listening_address_and_max_connections_are_locked_while_listening() {
    let t = server().start().await;
    let s = &t.server;
    for (setting, code) in [
        ("LocalPort=1234", 106),
        ("LocalHost=0.0.0.0", 107),
        ("MaxConnections=5", 108),
    ] {
        assert_eq!(s.config(setting).unwrap_err().code(), code, "{setting}");
    }
    assert_eq!(s.config("LocalHost").unwrap(), "127.0.0.1");
    // Other settings may change while listening.
    s.config("DefaultTimeout=30").unwrap();

    s.stop_listening().await;
    s.config("LocalPort=0").unwrap();
    s.config("MaxConnections=5").unwrap();
    assert_eq!(s.config("MaxConnections").unwrap(), "5");
}

#[tokio::test]
async fn per_connection_keys_take_the_connection_id() {
    let mut t = server().start().await;
    let (_c, id) = t.raw_client().await;
    let s = &t.server;
    assert_eq!(s.config(&format!("MaxLineLength[{id}]")).unwrap(), "2048");
    s.config(&format!("MaxLineLength[{id}]=80")).unwrap();
    assert_eq!(s.config(&format!("maxlinelength[{id}]")).unwrap(), "80");
    assert_eq!(t.conn(id).max_line_length(), 80);
    assert_eq!(
        s.config("MaxLineLength").unwrap(),
        "2048",
        "the default is unchanged"
    );

    assert_eq!(s.config(&format!("MessageLength[{id}]")).unwrap(), "0");
    s.config(&format!("MessageLength[{id}]=100")).unwrap();
    assert_eq!(s.config(&format!("MessageLength[{id}]")).unwrap(), "100");

    let unknown_id = id + 100;
    for key in ["MaxLineLength", "MessageLength"] {
        let e = s.config(&format!("{key}[{unknown_id}]=1")).unwrap_err();
        assert_eq!(e.code(), 126, "{key}");
        assert!(matches!(e, Error::InvalidConnectionId(n) if n == unknown_id));
    }
    let e = s.config(&format!("MaxLineLength[{id}]=many")).unwrap_err();
    assert!(
        matches!(&e, Error::Config(ConfigError::InvalidValue { value, .. }) if value == "many"),
        "{e}"
    );
}

#[tokio::test]
async fn property_methods_read_and_write_the_config_settings() {
    let t = server().start().await;
    let s = &t.server;
    assert_eq!(s.local_host(), "127.0.0.1");
    s.set_default_timeout(30).unwrap();
    assert_eq!(
        (s.default_timeout(), s.config("DefaultTimeout").unwrap()),
        (30, "30".into())
    );
    s.set_connection_backlog(64).unwrap();
    assert_eq!(s.connection_backlog(), 64);
    assert_eq!(s.set_local_host("0.0.0.0").unwrap_err().code(), 107);
    assert_eq!(s.set_local_port(1).unwrap_err().code(), 106);

    let settings = Settings {
        buffer_message: true,
        max_frame_size: 1000,
        ..Settings::default()
    };
    let preset = WsServer::with_settings(Arc::new(EchoHandler::new()), settings);
    assert_eq!(preset.config("BufferMessage").unwrap(), "True");
    assert_eq!(preset.settings().max_frame_size, 1000);
    assert!(!preset.listening());
}

/// The configuration error `setting` gets.
fn config_error(server: &WsServer, setting: &str) -> ConfigError {
    match server.config(setting) {
        Err(Error::Config(e)) => e,
        other => panic!("{setting}: {other:?}"),
    }
}

#[tokio::test]
async fn unknown_and_read_only_keys_are_errors_that_name_the_key() {
    let t = server().start().await;
    let s = &t.server;
    let unknown = ConfigError::UnknownKey("NoSuchSetting".into());
    assert_eq!(config_error(s, "NoSuchSetting"), unknown);
    assert_eq!(config_error(s, "NoSuchSetting=1"), unknown);
    assert!(unknown.to_string().contains("\"NoSuchSetting\""));
    // An unknown per-connection key, whatever the id.
    assert_eq!(
        config_error(s, "Nonsense[12345]=2"),
        ConfigError::UnknownKey("Nonsense[12345]".into())
    );
    assert_eq!(
        config_error(s, "MessageLength=5"),
        ConfigError::NeedsConnectionId {
            key: "MessageLength".into()
        }
    );
    assert!(matches!(
        config_error(s, "BuildInfo=mine"),
        ConfigError::ReadOnly { .. }
    ));
}
