//! Plain GET requests on the WebSocket port: the built-in demo page, a
//! tenant's static directory, and every way out of that directory refused.

use std::io::Write;

use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

/// Sends a plain GET for `target` and reads the whole response.
async fn get(server: &ServerProcess, target: &str, extra_headers: &str) -> String {
    let mut c = RawClient::tcp(server.addr).await;
    let request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}\r\n");
    c.send(request.as_bytes()).await;
    c.read_http_response().await
}

fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"))
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = &response[..response.find("\r\n\r\n").unwrap_or(response.len())];
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

#[tokio::test]
async fn the_default_server_serves_the_demo_page_and_its_chat_and_echo_work() {
    let mut server = ServerProcess::start(&[]).await;
    let line = server.next_stdout_line().await;
    assert_eq!(
        line,
        format!("open http://{}/ in a browser", server.addr),
        "the ready line is followed by the URL to open"
    );

    let page = get(&server, "/", "").await;
    assert_eq!(status(&page), 200, "{page}");
    assert_eq!(
        header(&page, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(body(&page).contains("wsserver demo chat"), "{page}");
    assert!(body(&page).contains("builtin:chat"), "names the plugin");
    assert!(body(&page).contains("docs/README.md"), "links the docs");
    let etag = header(&page, "ETag").expect("an ETag").to_owned();
    let cached = get(&server, "/", &format!("If-None-Match: {etag}\r\n")).await;
    assert_eq!(status(&cached), 304, "{cached}");
    assert!(body(&cached).is_empty());

    let readme = get(&server, "/docs/README.md", "").await;
    assert_eq!(status(&readme), 200);
    assert!(body(&readme).starts_with("# wsserver"), "{readme}");
    assert_eq!(status(&get(&server, "/nope.html", "").await), 404);

    // What the page does: two members of /chat/lobby, and echo elsewhere.
    let room = format!("{}/chat/lobby", server.url);
    let mut a = ws_connect(&room).await;
    let mut b = ws_connect(&room).await;
    let mut other_room = ws_connect(&format!("{}/chat/elsewhere", server.url)).await;
    // Each joins once connected: wait until both are subscribed by
    // checking a round trip from each side.
    let said = r#"{"from":"a","text":"hello b"}"#;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        a.send(Message::text(said)).await.unwrap();
        match timeout(std::time::Duration::from_millis(200), b.next()).await {
            Ok(Some(Ok(message))) => {
                assert_eq!(message, Message::text(said));
                break;
            }
            Ok(other) => panic!("b got {other:?}"),
            Err(_) => assert!(tokio::time::Instant::now() < deadline, "b never heard a"),
        }
    }
    b.send(Message::text("hi a")).await.unwrap();
    let heard = timeout(WAIT, a.next()).await.expect("a hears b");
    assert_eq!(heard.unwrap().unwrap(), Message::text("hi a"));
    assert!(
        timeout(std::time::Duration::from_millis(200), other_room.next())
            .await
            .is_err(),
        "another room hears nothing"
    );
    let mut echo = ws_connect(&format!("{}/echo", server.url)).await;
    assert_echo(&mut echo, "still echo").await;
}

/// A site with a page, a style sheet, a subdirectory, a hidden file, a
/// symlink inside and one pointing out, and a file over the size cap;
/// beside it, outside the site, a secret.
fn site() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let site = root.path().join("site");
    std::fs::create_dir_all(site.join("sub")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(site.join("style.css"), "h1 { color: red }").unwrap();
    std::fs::write(site.join("hello world.txt"), "spaced").unwrap();
    std::fs::write(site.join("sub/index.html"), "<h1>sub</h1>").unwrap();
    std::fs::write(site.join(".env"), "SECRET=1").unwrap();
    std::fs::write(root.path().join("secret.txt"), "TOP SECRET").unwrap();
    std::os::unix::fs::symlink(root.path().join("secret.txt"), site.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(root.path(), site.join("up")).unwrap();
    std::os::unix::fs::symlink(site.join("style.css"), site.join("alias.css")).unwrap();
    // Sparse: over the cap without writing 64 MiB.
    let big = std::fs::File::create(site.join("big.bin")).unwrap();
    big.set_len(65 << 20).unwrap();
    root
}

#[tokio::test]
async fn a_static_directory_is_served_with_types_index_redirects_and_validators() {
    let root = site();
    let dir = root.path().join("site");
    let server = ServerProcess::start(&["--static", dir.to_str().unwrap()]).await;

    let home = get(&server, "/", "").await;
    assert_eq!(status(&home), 200, "{home}");
    assert_eq!(body(&home), "<h1>home</h1>");
    assert_eq!(header(&home, "Content-Length"), Some("13"));
    let css = get(&server, "/style.css?v=2", "").await;
    assert_eq!(
        header(&css, "Content-Type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(header(&css, "X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(
        body(&get(&server, "/hello%20world.txt", "").await),
        "spaced"
    );
    assert_eq!(
        body(&get(&server, "/alias.css", "").await),
        "h1 { color: red }"
    );

    let moved = get(&server, "/sub?x=1", "").await;
    assert_eq!(status(&moved), 301, "{moved}");
    assert_eq!(header(&moved, "Location"), Some("/sub/?x=1"));
    assert_eq!(body(&get(&server, "/sub/", "").await), "<h1>sub</h1>");

    let etag = header(&css, "ETag").unwrap().to_owned();
    let modified = header(&css, "Last-Modified").unwrap().to_owned();
    let by_tag = get(&server, "/style.css", &format!("If-None-Match: {etag}\r\n")).await;
    assert_eq!(status(&by_tag), 304, "{by_tag}");
    let by_date = get(
        &server,
        "/style.css",
        &format!("If-Modified-Since: {modified}\r\n"),
    )
    .await;
    assert_eq!(status(&by_date), 304, "{by_date}");
    let stale = get(&server, "/style.css", "If-None-Match: \"old\"\r\n").await;
    assert_eq!(status(&stale), 200);

    assert_eq!(
        status(&get(&server, "/big.bin", "").await),
        404,
        "over the cap"
    );
    assert!(
        server
            .stderr_containing("over the")
            .await
            .contains("big.bin"),
        "the refusal of a file over the cap is logged"
    );
    // WebSockets still work beside the files.
    let mut ws = ws_connect(&server.url).await;
    assert_echo(&mut ws, "files and sockets").await;
}

#[tokio::test]
async fn no_request_leaves_the_directory() {
    let root = site();
    let dir = root.path().join("site");
    let server = ServerProcess::start(&["--static", dir.to_str().unwrap()]).await;
    let attempts = [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/..%2fsecret.txt",
        "/sub%2f..%2f..%2fsecret.txt",
        "/sub/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/..%5csecret.txt",
        "/leak.txt",
        "/up/secret.txt",
        "/.env",
        "/index.html%00.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "http://127.0.0.1/../secret.txt",
    ];
    for target in attempts {
        let response = get(&server, target, "").await;
        let code = status(&response);
        assert!(
            code == 400 || code == 404,
            "{target}: got {code}: {response}"
        );
        assert!(
            !response.contains("TOP SECRET") && !response.contains("SECRET=1"),
            "{target} leaked: {response}"
        );
    }
    // And the server is none the worse for it.
    assert_eq!(status(&get(&server, "/", "").await), 200);
}

#[tokio::test]
async fn a_tenant_serves_its_own_directory_under_its_route() {
    let root = site();
    let mut toml = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile_in(root.path())
        .unwrap();
    write!(
        toml,
        "[[tenant]]\nname = \"acme\"\nfile = \"builtin:echo\"\nroutes = [\"/acme\"]\nstatic = \"site\"\n\
         [[tenant]]\nname = \"plain\"\nfile = \"builtin:echo\"\nroutes = [\"/\"]\n"
    )
    .unwrap();
    let server = ServerProcess::start(&["--config", toml.path().to_str().unwrap()]).await;
    let moved = get(&server, "/acme", "").await;
    assert_eq!(status(&moved), 301);
    assert_eq!(header(&moved, "Location"), Some("/acme/"));
    assert_eq!(body(&get(&server, "/acme/", "").await), "<h1>home</h1>");
    assert_eq!(
        body(&get(&server, "/acme/sub/index.html", "").await),
        "<h1>sub</h1>"
    );
    // The other tenant has no files: a plain GET is told to upgrade.
    let plain = get(&server, "/style.css", "").await;
    assert_eq!(status(&plain), 426, "{plain}");
    let mut ws = ws_connect(&format!("{}/acme/room", server.url)).await;
    assert_echo(&mut ws, "acme sockets").await;
}

#[tokio::test]
async fn a_missing_static_directory_stops_the_start_and_names_it() {
    let out = run_to_exit(&["--listen", "127.0.0.1:0", "--static", "/no/such/site"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("static") && stderr.contains("/no/such/site"),
        "{stderr}"
    );
}
