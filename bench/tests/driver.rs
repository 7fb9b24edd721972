//! The driver end to end: a small config, two peers, two repeats.

use std::process::Command;

#[test]
fn driver_writes_table_chart_and_results() {
    let dir = std::env::temp_dir().join(format!("wsbench-driver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        r#"
        baseline = "tungstenite"
        [[peer]]
        name = "floor"
        command = ["{bin_dir}/echo-tcp", "--listen", "127.0.0.1:0"]
        [[peer]]
        name = "tungstenite"
        command = ["{bin_dir}/echo-tungstenite", "--listen", "127.0.0.1:0"]
        skip = ["idle"]
        [[peer]]
        name = "broken"
        command = ["/bin/false"]
        [[scenario]]
        name = "small echo"
        mode = "echo"
        args = ["--connections", "2", "--depth", "4"]
        [[scenario]]
        name = "few idle"
        mode = "idle"
        args = ["--connections", "20", "--settle", "0.1"]
        "#,
    )
    .unwrap();
    let out = dir.join("out");
    // Captured: the broken peer's progress lines say FAILED, which a
    // passing `make test` should not print.
    let run = Command::new(env!("CARGO_BIN_EXE_driver"))
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .args(["--duration", "0.3", "--warmup", "0.1", "--repeat", "2"])
        .output()
        .unwrap();
    let progress = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{progress}");
    assert!(
        progress.contains("small echo / broken #2: FAILED"),
        "{progress}"
    );

    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(table.contains("### small echo"), "{table}");
    assert!(
        table.contains("| tungstenite |") && table.contains("| 1.00× |"),
        "{table}"
    );
    assert!(table.contains("| floor |"), "{table}");
    // Skipped: the idle table has no tungstenite row.
    let idle = &table[table.find("### few idle").unwrap()..];
    assert!(!idle.contains("| tungstenite |"), "{idle}");
    assert!(idle.contains("20 of 20"), "{idle}");
    // A server that never starts is reported, not fatal.
    assert!(
        table.contains("small echo / broken: 2 of 2 runs failed"),
        "{table}"
    );

    let chart = std::fs::read_to_string(out.join("chart.svg")).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("floor"),
        "{chart}"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    // Echo: 3 peers × 2 repeats; idle: 2 peers (tungstenite skips) × 2.
    assert_eq!(results["outcomes"].as_array().unwrap().len(), 10);

    // Replaying the saved runs against another baseline runs nothing new.
    let replayed = dir.join("replayed");
    let status = Command::new(env!("CARGO_BIN_EXE_driver"))
        .arg("--config")
        .arg(&config)
        .arg("--replay")
        .arg(out.join("results.json"))
        .arg("--out")
        .arg(&replayed)
        .args(["--baseline", "floor"])
        .status()
        .unwrap();
    assert!(status.success());
    let table = std::fs::read_to_string(replayed.join("table.md")).unwrap();
    assert!(
        table.contains("vs floor") && table.contains("| floor |"),
        "{table}"
    );
    assert!(!replayed.join("logs").exists(), "a replay starts no server");
    std::fs::remove_dir_all(&dir).unwrap();
}
