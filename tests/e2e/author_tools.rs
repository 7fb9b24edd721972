//! The plugin author's commands through the real binary: `wsserver new`
//! writes a project per language whose own build and test pass (built with
//! the real toolchains, outside the repository), and `wsserver dev`
//! rebuilds and hot-swaps on a source change while a client stays
//! connected.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

/// `wsserver new --lang LANG NAME --dir DIR`, checked to succeed.
async fn new_project(lang: &str, name: &str, dir: &Path) {
    let dir = dir.display().to_string();
    let out = run_to_exit(&["new", "--lang", lang, name, "--dir", &dir]).await;
    assert!(
        out.status.success(),
        "wsserver new --lang {lang}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the generated project's test.sh (build, then a client check
/// against this binary).
async fn run_project_test(dir: &Path) {
    // Rust projects share one target directory across runs: the SDK's
    // dependencies then build once per machine, not once per test run.
    let cargo_target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("new-rust-target");
    let out = tokio::time::timeout(
        Duration::from_secs(900),
        tokio::process::Command::new(dir.join("test.sh"))
            .env("WSSERVER", binary())
            .env("CARGO_TARGET_DIR", cargo_target)
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .output(),
    )
    .await
    .expect("test.sh within 15 minutes")
    .expect("run test.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok: "),
        "{}/test.sh failed:\n{stdout}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn new_project_builds_and_passes_its_test(lang: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("hello-{lang}");
    let dir = tmp.path().join(&name);
    new_project(lang, &name, &dir).await;
    for file in ["build.sh", "test.sh", "test_plugin.py", "README.md"] {
        assert!(dir.join(file).is_file(), "{lang}: no {file}");
    }
    run_project_test(&dir).await;
    assert!(dir.join(format!("{name}.wasm")).is_file());
}

#[tokio::test]
async fn new_rust_project_builds_outside_the_repository_and_its_test_passes() {
    new_project_builds_and_passes_its_test("rust").await;
}

#[tokio::test]
async fn new_c_project_builds_and_its_test_passes() {
    new_project_builds_and_passes_its_test("c").await;
}

#[tokio::test]
async fn new_js_project_builds_and_its_test_passes() {
    new_project_builds_and_passes_its_test("js").await;
}

#[tokio::test]
async fn new_python_project_builds_and_its_test_passes() {
    new_project_builds_and_passes_its_test("python").await;
}

#[tokio::test]
async fn new_refuses_an_existing_directory_and_a_bad_name() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
    let dir = tmp.path().display().to_string();
    let out = run_to_exit(&["new", "--lang", "c", "x", "--dir", &dir]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("keep.txt")).unwrap(),
        "mine"
    );
    let out = run_to_exit(&["new", "--lang", "c", "Bad Name"]).await;
    assert_eq!(out.status.code(), Some(2));
}

/// Waits up to two minutes for the server's stderr to hold `needle`.
pub async fn logged(server: &ServerProcess, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = server.stderr();
        if log.contains(needle) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `text` and returns the answer.
async fn ask(ws: &mut Ws, text_out: &str) -> String {
    ws.send(Message::text(text_out)).await.expect("send");
    text(ws).await
}

#[tokio::test]
async fn dev_rebuilds_and_swaps_on_a_source_change_while_a_client_stays_connected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("live");
    new_project("c", "live", &dir).await;
    let dir_arg = dir.display().to_string();
    let server = ServerProcess::start(&["dev", &dir_arg]).await;
    let mut ws = ws_connect(&server.url).await;
    assert_eq!(ask(&mut ws, "one").await, "one");

    // Change the source: answers get a prefix once the new build serves.
    let source = dir.join("main.c");
    let original = std::fs::read_to_string(&source).unwrap();
    let changed = original.replace(
        "    ws_send(conn, format, data, len);",
        "    ws_send_text(conn, \"v2 \");\n    ws_send(conn, format, data, len);",
    );
    assert_ne!(changed, original, "the template's echo line moved");
    std::fs::write(&source, &changed).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let answer = ask(&mut ws, "two").await;
        if answer == "v2 " {
            assert_eq!(text(&mut ws).await, "two");
            break;
        }
        assert_eq!(answer, "two", "the old version answers until the swap");
        assert!(Instant::now() < deadline, "no swap within 120 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A broken source: the error is printed, the running version serves on.
    std::fs::write(&source, format!("{changed}\nthis is not C;\n")).unwrap();
    let log = logged(&server, "the running version keeps serving").await;
    assert!(log.contains("main.c:") && log.contains("error:"), "{log}");
    assert_eq!(ask(&mut ws, "three").await, "v2 ");
    assert_eq!(text(&mut ws).await, "three");
}
