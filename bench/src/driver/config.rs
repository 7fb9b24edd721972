//! The driver's configuration: which servers to compare and which
//! load-generator runs make up the table. Adding a server is one entry.

use std::path::Path;

use serde::Deserialize;

use crate::report::Mode;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Peer the ratios are taken against, unless the command line names one.
    pub baseline: Option<String>,
    #[serde(rename = "peer")]
    pub peers: Vec<PeerSpec>,
    #[serde(rename = "scenario")]
    pub scenarios: Vec<Scenario>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSpec {
    pub name: String,
    /// Program and arguments. `{bin_dir}` stands for the directory of the
    /// driver's own executable, where the bench peers are built.
    pub command: Vec<String>,
    /// For a server that cannot print `listening on ws://HOST:PORT`: its
    /// fixed URL; the driver waits until the port accepts instead.
    pub url: Option<String>,
    /// Scenario names or modes this peer does not take part in.
    #[serde(default)]
    pub skip: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub mode: Mode,
    /// Load-generator arguments for this mode.
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("peer {0:?} has an empty command")]
    EmptyCommand(String),
    #[error("no peer is named {0:?}")]
    UnknownPeer(String),
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: display.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|error| match error {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: display,
                source,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: String::new(),
            source,
        })?;
        if let Some(peer) = config.peers.iter().find(|peer| peer.command.is_empty()) {
            return Err(ConfigError::EmptyCommand(peer.name.clone()));
        }
        if let Some(baseline) = &config.baseline {
            config.peer(baseline)?;
        }
        Ok(config)
    }

    pub fn peer(&self, name: &str) -> Result<&PeerSpec, ConfigError> {
        self.peers
            .iter()
            .find(|peer| peer.name == name)
            .ok_or_else(|| ConfigError::UnknownPeer(name.to_owned()))
    }
}

impl PeerSpec {
    /// The command with `{bin_dir}` replaced.
    pub fn command_in(&self, bin_dir: &Path) -> Vec<String> {
        let bin_dir = bin_dir.display().to_string();
        self.command
            .iter()
            .map(|part| part.replace("{bin_dir}", &bin_dir))
            .collect()
    }

    pub fn takes_part_in(&self, scenario: &Scenario) -> bool {
        !self
            .skip
            .iter()
            .any(|skipped| *skipped == scenario.name || skipped == scenario.mode.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        baseline = "b"
        [[peer]]
        name = "a"
        command = ["{bin_dir}/echo-a", "--listen", "127.0.0.1:0"]
        skip = ["fanout"]
        [[peer]]
        name = "b"
        command = ["/opt/b"]
        url = "ws://127.0.0.1:9001/"
        [[scenario]]
        name = "echo small"
        mode = "echo"
        args = ["--size", "32"]
        [[scenario]]
        name = "rooms"
        mode = "fanout"
    "#;

    #[test]
    fn reads_peers_and_scenarios() {
        let config = Config::parse(EXAMPLE).unwrap();
        assert_eq!(config.baseline.as_deref(), Some("b"));
        let a = config.peer("a").unwrap();
        assert_eq!(
            a.command_in(Path::new("/t/release")),
            ["/t/release/echo-a", "--listen", "127.0.0.1:0"]
        );
        assert_eq!(
            config.peer("b").unwrap().url.as_deref(),
            Some("ws://127.0.0.1:9001/")
        );
        assert_eq!(config.scenarios[0].mode, Mode::Echo);
        assert_eq!(config.scenarios[0].args, ["--size", "32"]);
        assert!(config.scenarios[1].args.is_empty());
    }

    #[test]
    fn skips_by_mode_or_scenario_name() {
        let config = Config::parse(EXAMPLE).unwrap();
        let (a, b) = (config.peer("a").unwrap(), config.peer("b").unwrap());
        assert!(a.takes_part_in(&config.scenarios[0]));
        assert!(!a.takes_part_in(&config.scenarios[1]));
        assert!(b.takes_part_in(&config.scenarios[1]));
    }

    #[test]
    fn shipped_config_names_the_bench_peers_and_the_required_table() {
        let config = Config::parse(include_str!("../../bench.toml")).unwrap();
        for peer in ["raw-tcp", "tokio-tungstenite", "fastwebsockets"] {
            assert!(config.peer(peer).is_ok(), "{peer}");
        }
        let modes: Vec<Mode> = config.scenarios.iter().map(|s| s.mode).collect();
        for mode in [Mode::Echo, Mode::Idle, Mode::Handshake, Mode::Fanout] {
            assert!(modes.contains(&mode), "{mode:?}");
        }
    }

    #[test]
    fn rejects_unknown_baseline_and_empty_commands() {
        let unknown = EXAMPLE.replace("baseline = \"b\"", "baseline = \"zz\"");
        assert!(
            matches!(Config::parse(&unknown), Err(ConfigError::UnknownPeer(name)) if name == "zz")
        );
        let empty = EXAMPLE.replace("command = [\"/opt/b\"]", "command = []");
        assert!(
            matches!(Config::parse(&empty), Err(ConfigError::EmptyCommand(name)) if name == "b")
        );
        assert!(matches!(
            Config::parse("peer = 3"),
            Err(ConfigError::Parse { .. })
        ));
    }
}
