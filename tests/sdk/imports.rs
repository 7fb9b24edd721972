//! A component that imports an interface the host does not provide is
//! refused with a message naming the import and what to do about it.

use std::path::Path;
use std::process::Stdio;

use crate::common::*;
use crate::{COMPILING, sdk_plugins};

#[tokio::test]
async fn a_component_importing_what_the_host_lacks_is_refused_by_name() {
    // Built here with the JavaScript SDK's build script, for a world that
    // adds `import test:extra/missing` to wsserver's.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fixture = repo.join("tests/sdk/missing-import");
    let dir = tempfile::tempdir().unwrap();
    let wit = dir.path().join("wit");
    std::fs::create_dir_all(wit.join("deps/wsserver")).unwrap();
    std::fs::copy(fixture.join("world.wit"), wit.join("world.wit")).unwrap();
    std::fs::copy(
        repo.join("wit/plugin.wit"),
        wit.join("deps/wsserver/plugin.wit"),
    )
    .unwrap();
    let wasm = dir.path().join("missing-import.wasm");
    let built = std::process::Command::new(repo.join("sdk/js/build.sh"))
        .arg(&fixture)
        .arg(&wasm)
        .env("WSSERVER_WIT", &wit)
        .output()
        .expect("run sdk/js/build.sh (`make plugins` installs its toolchain)");
    assert!(
        built.status.success(),
        "building the fixture failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );

    let plugin = format!("/={}", wasm.display());
    let cache = sdk_plugins().join("compiled");
    let run = tokio::process::Command::new(binary())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--plugin",
            &plugin,
            "--plugin-cache",
        ])
        .arg(&cache)
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(COMPILING, run)
        .await
        .expect("the server stops in time")
        .expect("run wsserver");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it started:\n{stderr}");
    assert!(
        stderr.contains("it imports test:extra/missing, which wsserver does not provide")
            && stderr.contains("rebuild it without them"),
        "{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "no ready line for a refused plugin"
    );
}
