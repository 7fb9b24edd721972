//! The dashboard page on the admin listener, and the log lines that swaps
//! and rollbacks through the admin API leave (the browser tests drive the
//! page itself).

use crate::common::*;

const TOKEN: &str = "dashboard-token";

async fn start() -> (ServerProcess, String) {
    let mut server = ServerProcess::start_with_env(
        &["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
        &[("WSSERVER_ADMIN_TOKEN", TOKEN)],
    )
    .await;
    let admin = server.admin_url().await;
    (server, admin)
}

#[tokio::test]
async fn the_page_needs_no_token_but_everything_it_reads_does() {
    let (_server, admin) = start().await;
    let page = http("GET", &admin, "/", None, None).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.header("content-security-policy")
            .is_some_and(|csp| csp.contains("default-src 'self'")),
        "{:?}",
        page.headers
    );
    assert!(page.body.contains("<title>wsserver dashboard</title>"));
    // No data in the page, and none without the token.
    assert!(!page.body.contains("echo (built-in)"));
    assert_eq!(
        http("GET", &admin, "/tenants", None, None).await.status,
        401
    );
    assert_eq!(
        http("GET", &admin, "/tenants", Some(TOKEN), None)
            .await
            .status,
        200
    );
    // The page is only GET /.
    assert_eq!(http("POST", &admin, "/", None, None).await.status, 401);
}

/// The chat component with a custom section appended: other
/// bytes, same behaviour.
fn chat_v2() -> Vec<u8> {
    let mut wasm = std::fs::read(plugin_file("chat")).expect("the chat component");
    let name = b"wsserver-test";
    let payload: Vec<u8> = [&[name.len() as u8][..], name, b"v2"].concat();
    wasm.extend_from_slice(&[0, payload.len() as u8]);
    wasm.extend_from_slice(&payload);
    wasm
}

#[tokio::test]
async fn swaps_and_rollbacks_through_the_api_are_logged_whatever_their_outcome() {
    let (server, admin) = start().await;
    let tenant = "/tenants/chat%20(built-in)";
    let swap = |body: Vec<u8>| {
        let admin = admin.clone();
        async move {
            http_with(
                "POST",
                &admin,
                &format!("{tenant}/swap"),
                Some(TOKEN),
                Some("application/wasm"),
                body,
            )
            .await
        }
    };
    let done = swap(chat_v2()).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let log = server
        .stderr_containing("admin swap: tenant chat (built-in) now serves sha256:")
        .await;
    assert!(
        log.contains("admin swap: tenant chat (built-in) now serves"),
        "{log}"
    );

    let refused = swap(b"not a component".to_vec()).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    let log = server
        .stderr_containing("admin swap of tenant chat (built-in) failed (422)")
        .await;
    assert!(log.contains("the running version keeps serving"), "{log}");

    let rolled = http(
        "POST",
        &admin,
        &format!("{tenant}/rollback"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(rolled.status, 200, "{}", rolled.body);
    let log = server
        .stderr_containing("admin rollback: tenant chat (built-in) now serves")
        .await;
    assert!(log.contains("admin rollback"), "{log}");
    let again = http(
        "POST",
        &admin,
        "/tenants/echo%20(built-in)/rollback",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.body);
    let log = server
        .stderr_containing("admin rollback of tenant echo (built-in) failed (409)")
        .await;
    assert!(log.contains("failed (409)"), "{log}");
    // Written for a file, not a terminal: no colour codes.
    assert!(!log.contains('\u{1b}'), "ANSI codes in {log:?}");
}
