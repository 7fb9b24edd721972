//! The macros that export a [`Plugin`] as a component, and the per-instance
//! state they rely on.

use std::any::TypeId;
use std::cell::{Cell, RefCell};

use crate::plugin::{Lifecycle, Plugin, handle_events};
use crate::types::{Command, Event, OpenRequest, OpenResponse};

thread_local! {
    /// The plugin type whose default [`Plugin::open_request`] ran last.
    static DEFAULT_OPEN: Cell<Option<TypeId>> = const { Cell::new(None) };
}

/// Called by the default [`Plugin::open_request`] of `P`.
pub(crate) fn note_default_open<P: 'static>() {
    DEFAULT_OPEN.set(Some(TypeId::of::<P>()));
}

/// Holds the plugin of this component instance, created on first use.
///
/// Used by the export macros only; an instance is single-threaded, so the
/// macros keep it in a `thread_local!`.
#[doc(hidden)]
pub struct Instance<P> {
    plugin: RefCell<Option<P>>,
    open: Cell<OpenAnswers>,
}

/// What the host knows of the plugin's answers to open requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenAnswers {
    Unknown,
    /// The plugin's own type keeps the default `open_request`: the next
    /// packed batch of commands says so (`accept-every-open`), so the
    /// host stops asking.
    AlwaysAccept,
    Told,
}

impl<P: Plugin> Instance<P> {
    #[allow(clippy::new_without_default)] // must be const for thread_local!
    pub const fn new() -> Self {
        Self {
            plugin: RefCell::new(None),
            open: Cell::new(OpenAnswers::Unknown),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut P) -> R) -> R {
        // The component model never re-enters an instance, so no other
        // borrow can be live here.
        let mut plugin = self.plugin.borrow_mut();
        f(plugin.get_or_insert_with(P::default))
    }

    pub fn open_request(&self, request: OpenRequest) -> OpenResponse {
        DEFAULT_OPEN.set(None);
        let response = self.with(|plugin| plugin.open_request(request));
        // Only `P`'s own default counts: a plugin that overrides the method
        // and sometimes delegates to another type's default still decides.
        if DEFAULT_OPEN.take() == Some(TypeId::of::<P>()) && self.open.get() == OpenAnswers::Unknown
        {
            self.open.set(OpenAnswers::AlwaysAccept);
        }
        response
    }

    pub fn handle_events(&self, events: Vec<Event>) -> Vec<Command> {
        self.with(|plugin| handle_events(plugin, events))
    }

    pub fn handle_packed(&self, batch: &[u8]) -> Vec<u8> {
        let mut commands = self.with(|plugin| crate::packed::handle_packed(plugin, batch));
        if self.open.get() == OpenAnswers::AlwaysAccept {
            wsserver_packed::Writer::new(&mut commands)
                .command(&wsserver_packed::Command::AcceptEveryOpen);
            self.open.set(OpenAnswers::Told);
        }
        commands
    }
}

impl<P: Plugin + Lifecycle> Instance<P> {
    pub fn snapshot(&self) -> Vec<u8> {
        self.with(|plugin| plugin.snapshot())
    }

    pub fn restore(&self, state: Vec<u8>) -> Result<(), String> {
        self.with(|plugin| plugin.restore(state))
    }
}

/// Exports a [`Plugin`] type as the component's `handler` (world `plugin`).
/// Use once, in the plugin crate's `lib.rs`, built as a `cdylib` for
/// `wasm32-wasip2`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            $crate::__export_handler!($plugin, INSTANCE);
        };
    };
}

/// Exports a type implementing [`Plugin`] and [`Lifecycle`] as the
/// component's `handler` and `lifecycle` (world `stateful-plugin`), so its
/// state survives hot swap. Use instead of [`export_plugin!`].
#[macro_export]
macro_rules! export_stateful_plugin {
    ($plugin:ty) => {
        const _: () = {
            $crate::__export_handler!($plugin, INSTANCE);

            struct LifecycleExports;

            impl $crate::__private::lifecycle::exports::wsserver::plugin::lifecycle::Guest
                for LifecycleExports
            {
                fn snapshot() -> ::std::vec::Vec<u8> {
                    INSTANCE.with(|instance| instance.snapshot())
                }

                fn restore(
                    state: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    INSTANCE.with(|instance| instance.restore(state))
                }
            }

            $crate::__private::lifecycle::export!(
                LifecycleExports with_types_in $crate::__private::lifecycle
            );
        };
    };
}

/// The `handler` export of both macros above, with the plugin kept in the
/// thread-local `$instance`.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_handler {
    ($plugin:ty, $instance:ident) => {
        ::std::thread_local! {
            static $instance: $crate::__private::Instance<$plugin> =
                const { $crate::__private::Instance::new() };
        }

        struct HandlerExports;

        impl $crate::__private::plugin::exports::wsserver::plugin::handler::Guest
            for HandlerExports
        {
            fn on_open_request(request: $crate::OpenRequest) -> $crate::OpenResponse {
                $instance.with(|instance| instance.open_request(request))
            }

            fn on_events(
                events: ::std::vec::Vec<$crate::Event>,
            ) -> ::std::vec::Vec<$crate::Command> {
                $instance.with(|instance| instance.handle_events(events))
            }
        }

        $crate::__private::plugin::export!(
            HandlerExports with_types_in $crate::__private::plugin
        );

        impl $crate::__private::packed::exports::wsserver::plugin::packed_handler::Guest
            for HandlerExports
        {
            fn on_events(batch: ::std::vec::Vec<u8>) -> ::std::vec::Vec<u8> {
                $instance.with(|instance| instance.handle_packed(&batch))
            }
        }

        $crate::__private::packed::export!(
            HandlerExports with_types_in $crate::__private::packed
        );
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::types::{DataFormat, DataIn};

    /// Counts data-in events; its count is its state.
    #[derive(Default)]
    struct Counter(u32);

    impl Plugin for Counter {
        fn data_in(&mut self, _: &mut Context, _: DataIn) {
            self.0 += 1;
        }
    }

    impl Lifecycle for Counter {
        fn snapshot(&self) -> Vec<u8> {
            self.0.to_le_bytes().to_vec()
        }
        fn restore(&mut self, state: Vec<u8>) -> Result<(), String> {
            let bytes = state
                .try_into()
                .map_err(|_| "expected 4 bytes".to_owned())?;
            self.0 = u32::from_le_bytes(bytes);
            Ok(())
        }
    }

    fn data() -> Event {
        Event::DataIn(DataIn {
            connection: 1,
            format: DataFormat::Text,
            data: Vec::new(),
            eom: true,
            eol: false,
        })
    }

    fn open() -> OpenRequest {
        OpenRequest {
            connection: 1,
            request_uri: "/".into(),
            host: String::new(),
            origin: None,
            subprotocols: Vec::new(),
            extensions: String::new(),
            headers: Vec::new(),
            remote_address: "127.0.0.1".into(),
            remote_port: 1,
            local_address: "127.0.0.1".into(),
            tls: None,
        }
    }

    /// The packed commands an instance returns for one connected event.
    fn packed_turn<P: Plugin>(instance: &Instance<P>) -> Vec<wsserver_packed::Command<'static>> {
        let mut batch = Vec::new();
        wsserver_packed::Writer::new(&mut batch).event(&wsserver_packed::Event::Connected(1));
        let out = instance.handle_packed(&batch);
        wsserver_packed::commands(&out)
            .map(|c| match c.unwrap() {
                wsserver_packed::Command::AcceptEveryOpen => {
                    wsserver_packed::Command::AcceptEveryOpen
                }
                other => panic!("unexpected command {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_plugin_keeping_the_default_open_answer_says_so_once() {
        let instance = Instance::<Counter>::new();
        assert_eq!(packed_turn(&instance), [], "nothing before an open request");
        assert_eq!(instance.open_request(open()), OpenResponse::accept());
        assert_eq!(
            packed_turn(&instance),
            [wsserver_packed::Command::AcceptEveryOpen]
        );
        instance.open_request(open());
        assert_eq!(packed_turn(&instance), [], "said once");
    }

    /// Decides itself, with another type's default for some requests.
    #[derive(Default)]
    struct Picky;

    impl Plugin for Picky {
        fn open_request(&mut self, request: OpenRequest) -> OpenResponse {
            if request.request_uri == "/" {
                Counter::default().open_request(request)
            } else {
                OpenResponse::reject(404)
            }
        }
    }

    #[test]
    fn a_plugin_with_its_own_open_answer_is_always_asked() {
        let instance = Instance::<Picky>::new();
        assert_eq!(instance.open_request(open()), OpenResponse::accept());
        assert_eq!(packed_turn(&instance), []);
    }

    #[test]
    fn an_instance_keeps_its_plugin_between_calls_and_hands_state_over() {
        let old = Instance::<Counter>::new();
        old.handle_events(vec![data(), data()]);
        old.handle_events(vec![data()]);
        let state = old.snapshot();

        let new = Instance::<Counter>::new();
        assert_eq!(new.restore(state), Ok(()));
        new.handle_events(vec![data()]);
        assert_eq!(new.snapshot(), 4u32.to_le_bytes());
        assert_eq!(new.restore(vec![1]), Err("expected 4 bytes".to_owned()));
    }
}
