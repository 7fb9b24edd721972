//! The TOML configuration file.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//!
//! [settings]            # WSServer keys, as with --set
//! MaxConnections = 5000
//! BufferMessage = true
//! AllowedClients = "127.0.0.*"
//! ```

use std::path::Path;

use anyhow::{Context, bail};
use toml::{Table, Value};

/// What the file asks for, in file order.
#[derive(Debug, Default, PartialEq)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub settings: Vec<(String, String)>,
}

pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| format!("in {}", path.display()))
}

pub fn parse(text: &str) -> anyhow::Result<FileConfig> {
    let table: Table = text.parse()?;
    let mut out = FileConfig::default();
    for (key, value) in table {
        match (key.as_str(), value) {
            ("listen", Value::String(s)) => out.listen = Some(s),
            ("listen", other) => bail!("listen must be a \"HOST:PORT\" string, not {other}"),
            ("settings", Value::Table(settings)) => {
                for (name, value) in settings {
                    let text = match value {
                        Value::String(s) => s,
                        Value::Integer(i) => i.to_string(),
                        Value::Boolean(b) => if b { "True" } else { "False" }.to_owned(),
                        other => bail!(
                            "settings.{name} must be a string, integer or boolean, not {other}"
                        ),
                    };
                    out.settings.push((name, text));
                }
            }
            ("settings", other) => bail!("settings must be a table, not {other}"),
            (other, _) => bail!("unknown key \"{other}\" (expected listen or [settings])"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listen_and_settings() {
        let c = parse("listen = \"0.0.0.0:9\"\n[settings]\nMaxConnections = 5\nBufferMessage = true\nAllowedClients = \"*\"\n").unwrap();
        assert_eq!(c.listen.as_deref(), Some("0.0.0.0:9"));
        assert_eq!(
            c.settings,
            [
                ("AllowedClients".into(), "*".into()),
                ("BufferMessage".into(), "True".into()),
                ("MaxConnections".into(), "5".into()),
            ]
        );
    }

    #[test]
    fn errors_name_the_key() {
        let e = format!("{:#}", parse("lisen = 1").unwrap_err());
        assert!(e.contains("lisen"), "{e}");
        let e = format!(
            "{:#}",
            parse("[settings]\nMaxConnections = [1]").unwrap_err()
        );
        assert!(e.contains("settings.MaxConnections"), "{e}");
    }
}
