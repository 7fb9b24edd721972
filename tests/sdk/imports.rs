//! A component that imports an interface the host does not provide is
//! refused with a message naming the import and what to do about it.

use std::path::Path;

use crate::common::*;
use crate::{component, serve, toml_path};

#[tokio::test]
async fn a_component_importing_what_the_host_lacks_is_refused_by_name() {
    // Built here with the JavaScript SDK's build script, for a world that
    // adds `import test:extra/missing` to wsserver's.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fixture = repo.join("tests/sdk/missing-import");
    let build = tempfile::tempdir().unwrap();
    let wit = build.path().join("wit");
    std::fs::create_dir_all(wit.join("deps/wsserver")).unwrap();
    std::fs::copy(fixture.join("world.wit"), wit.join("world.wit")).unwrap();
    std::fs::copy(
        repo.join("wit/plugin.wit"),
        wit.join("deps/wsserver/plugin.wit"),
    )
    .unwrap();
    let wasm = build.path().join("missing-import.wasm");
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

    // Offered as a hot swap to a running tenant: refused, and the running
    // version keeps serving.
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[[tenant]]\nname = \"echo\"\nfile = {}\nroutes = [\"/\"]\n",
        toml_path(&component("echo-js"))
    );
    let (server, admin) = serve(dir.path(), &toml, 1).await;
    let refused = http_with(
        "POST",
        &admin,
        "/tenants/echo/swap",
        None,
        Some("application/wasm"),
        std::fs::read(&wasm).unwrap(),
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    let error = refused.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("it imports test:extra/missing, which wsserver does not provide")
            && error.contains("rebuild it without them"),
        "{error}"
    );
    let mut ws = ws_connect(&server.url).await;
    assert_eq!(ask(&mut ws, "still echoing").await, "still echoing");
}
