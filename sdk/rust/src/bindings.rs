//! Bindings that wit-bindgen generates from `wit/plugin.wit` (linked into
//! this crate as `wit/deps/plugin.wit`, so the crate carries the contract
//! when packaged).
//!
//! The `plugin` world gives the types, the host imports and the `handler`
//! export. The `lifecycle` export is generated on its own (see
//! `wit/lifecycle.wit` beside this crate), so only a plugin that implements
//! it exports it.
//! The generated ABI glue needs `unsafe`; nothing else in the crate does.
#![allow(unsafe_code)]

/// Bindings for the `plugin` world: all types, the host imports and the
/// `handler` export.
pub mod plugin {
    wit_bindgen::generate!({
        path: "wit",
        world: "wsserver:plugin/plugin",
        pub_export_macro: true,
        additional_derives: [PartialEq],
    });
}

/// Bindings for the `lifecycle` export alone. A stateful plugin exports
/// both [`plugin`] and this; the component linker merges the two worlds
/// into `stateful-plugin`.
pub mod lifecycle {
    wit_bindgen::generate!({
        path: "wit",
        world: "wsserver:sdk-rust/lifecycle-export",
        pub_export_macro: true,
    });
}

/// Bindings for the `packed-handler` export alone (the fast path of
/// `on-events`); every plugin exports it beside `handler`.
pub mod packed {
    wit_bindgen::generate!({
        path: "wit",
        world: "wsserver:sdk-rust/packed-export",
        pub_export_macro: true,
    });
}
