//! The compiled-component cache through the binary: an artefact planted in
//! the cache without the cache's key is never run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

/// Serves `plugin` on every path with the cache in `cache`.
async fn serve(cache: &Path, plugin: &str) -> ServerProcess {
    let route = format!("/={}", plugin_file(plugin).display());
    ServerProcess::start(&[
        "--plugin-cache",
        &cache.display().to_string(),
        "--plugin",
        &route,
    ])
    .await
}

/// The one compiled artefact in `cache`, once it is there.
async fn artefact(cache: &Path) -> PathBuf {
    for _ in 0..200 {
        let found: Vec<PathBuf> = std::fs::read_dir(cache)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect();
        if let [one] = found.as_slice() {
            return one.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no compiled artefact in {}", cache.display());
}

/// Whether the server answers like the echo plugin (the trap plugin
/// would close the connection with 1011 instead).
async fn echoes(server: &ServerProcess) -> bool {
    let mut ws = ws_connect(&server.url).await;
    ws.send(Message::text("who are you?")).await.unwrap();
    matches!(
        tokio::time::timeout(WAIT, ws.next()).await,
        Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "who are you?"
    )
}

#[tokio::test]
async fn a_forged_artefact_in_the_cache_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("components");
    let server = serve(&cache, "echo").await;
    assert!(echoes(&server).await);
    let echo_artefact = artefact(&cache).await;
    drop(server);

    // Real code for this very wasmtime, the trap plugin's, compiled by a
    // server with another cache (another key), planted under the echo
    // plugin's name: first with that cache's tag, then with no tag at all.
    let other = dir.path().join("other");
    let server = serve(&other, "trap").await;
    let trap_artefact = std::fs::read(artefact(&other).await).unwrap();
    drop(server);
    for forged in [&trap_artefact[..], &trap_artefact[32..]] {
        std::fs::write(&echo_artefact, forged).unwrap();
        let server = serve(&cache, "echo").await;
        assert!(echoes(&server).await, "the forged artefact was run");
        let log = server.stderr();
        assert!(log.contains("authentication tag does not verify"), "{log}");
        // Compiled again and stored with a genuine tag.
        drop(server);
        assert_ne!(std::fs::read(&echo_artefact).unwrap(), forged);
    }
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&cache).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
}
