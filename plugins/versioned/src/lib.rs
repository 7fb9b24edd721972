//! Test plugin for hot swap: answers each text message `TEXT` with
//! `VERSION COUNT TEXT`, where VERSION is the configuration value `version`
//! (`unversioned` without it) and COUNT is the number of messages the
//! connection has sent, counting this one.
//!
//! It exports `lifecycle`, so the counts survive a hot swap: a client sees
//! the version change and the count go on. With the configuration value
//! `refuse-restore` set, `restore` refuses every state that holds a count,
//! which aborts the swap to that version (the tests' "restore error"; an
//! instance serving no client yet accepts, so a tenant's instances can
//! disagree).

use std::collections::BTreeMap;

use wsserver_sdk::{
    ConnectionId, Context, DataIn, DisconnectInfo, Lifecycle, MessageAssembler, Plugin, host,
};

/// First line of a snapshot; a restore of anything else is refused.
const SNAPSHOT_FORMAT: &str = "versioned-counts/1";

#[derive(Default)]
struct Versioned {
    counts: BTreeMap<ConnectionId, u64>,
    messages: MessageAssembler,
    /// `version`, read once per instance.
    version: Option<String>,
}

impl Versioned {
    fn version(&mut self) -> &str {
        self.version.get_or_insert_with(|| {
            host::config_get("version").unwrap_or_else(|| "unversioned".to_owned())
        })
    }
}

impl Plugin for Versioned {
    fn data_in(&mut self, ctx: &mut Context, data: DataIn) {
        let Some(message) = self.messages.push(data) else {
            return;
        };
        let count = self.counts.entry(message.connection).or_default();
        *count += 1;
        let count = *count;
        let text = String::from_utf8_lossy(&message.data).into_owned();
        let reply = format!("{} {count} {text}", self.version());
        ctx.send_text(message.connection, reply);
    }

    fn disconnected(&mut self, _ctx: &mut Context, info: DisconnectInfo) {
        self.counts.remove(&info.connection);
        self.messages.forget(info.connection);
    }
}

impl Lifecycle for Versioned {
    fn snapshot(&self) -> Vec<u8> {
        let mut text = format!("{SNAPSHOT_FORMAT}\n");
        for (id, count) in &self.counts {
            text.push_str(&format!("{id} {count}\n"));
        }
        text.into_bytes()
    }

    fn restore(&mut self, state: Vec<u8>) -> Result<(), String> {
        let counts = parse_counts(&state)?;
        if !counts.is_empty() && host::config_get("refuse-restore").is_some() {
            return Err("configured to refuse states with counts (refuse-restore)".to_owned());
        }
        self.counts = counts;
        Ok(())
    }
}

/// The counts of a snapshot.
fn parse_counts(state: &[u8]) -> Result<BTreeMap<ConnectionId, u64>, String> {
    let text = std::str::from_utf8(state).map_err(|_| "the state is not UTF-8".to_owned())?;
    let mut lines = text.lines();
    if lines.next() != Some(SNAPSHOT_FORMAT) {
        return Err(format!("not a {SNAPSHOT_FORMAT} state"));
    }
    lines
        .map(|line| {
            line.split_once(' ')
                .and_then(|(id, count)| Some((id.parse().ok()?, count.parse().ok()?)))
                .ok_or_else(|| format!("bad state line {line:?}"))
        })
        .collect()
}

wsserver_sdk::export_stateful_plugin!(Versioned);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_back_as_the_same_counts() {
        let mut plugin = Versioned::default();
        plugin.counts.insert(7, 41);
        plugin.counts.insert(9, 1);
        assert_eq!(parse_counts(&plugin.snapshot()), Ok(plugin.counts.clone()));
        assert_eq!(
            parse_counts(&Versioned::default().snapshot()),
            Ok(BTreeMap::new())
        );
    }

    #[test]
    fn foreign_or_damaged_states_are_refused() {
        assert!(parse_counts(b"echo-assembler/1\n").is_err());
        assert!(parse_counts(b"versioned-counts/1\n7 x\n").is_err());
        assert!(parse_counts(&[0xff]).is_err());
    }
}
