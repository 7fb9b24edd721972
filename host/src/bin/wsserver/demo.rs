//! The built-in demo: what a browser opening `http://127.0.0.1:8080/` gets
//! from a server started with no configuration. A chat page (the built-in
//! chat plugin on [`CHAT_ROUTE`]) with an echo box (the built-in echo
//! plugin, every other path), and the documentation it links to.

use std::sync::{Arc, LazyLock};

use wsserver::{EmbeddedFile, StaticSite};

/// The `static` value naming this site, as `builtin:echo` names a plugin.
pub const BUILTIN: &str = "builtin:demo";
/// Where the default configuration serves the chat plugin; the page's own
/// script connects under it.
pub const CHAT_ROUTE: &str = "/chat";

const FILES: &[EmbeddedFile] = &[
    EmbeddedFile {
        path: "index.html",
        body: include_bytes!("demo/index.html"),
    },
    EmbeddedFile {
        path: "docs/README.md",
        body: include_bytes!("../../../../README.md"),
    },
    EmbeddedFile {
        path: "docs/plugins.md",
        body: include_bytes!("../../../../wit/README.md"),
    },
    EmbeddedFile {
        path: "docs/plugin.wit",
        body: include_bytes!("../../../../wit/plugin.wit"),
    },
];

static SITE: LazyLock<Arc<StaticSite>> = LazyLock::new(|| Arc::new(StaticSite::embedded(FILES)));

/// The demo's files.
pub fn site() -> Arc<StaticSite> {
    SITE.clone()
}
