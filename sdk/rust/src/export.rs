//! The macros that export a [`Plugin`] as a component, and the per-instance
//! state they rely on.

use std::any::TypeId;
use std::cell::{Cell, RefCell};

use crate::plugin::{Lifecycle, Plugin, handle_events};
use crate::types::{Command, Event, OpenRequest, OpenResponse};

thread_local! {
    /// The exported plugin type, while a call into it runs.
    static EXPORTED: Cell<Option<TypeId>> = const { Cell::new(None) };
    /// The default methods of the exported type that ran in that call
    /// (`wsserver_packed::DEFAULT_*` bits).
    static DEFAULTS_RAN: Cell<u8> = const { Cell::new(0) };
}

/// Called by the default methods of [`Plugin`] for type `P`: only the
/// exported type's own defaults count, so an override that sometimes
/// delegates to another type's default still gets its calls.
pub(crate) fn note_default<P: 'static>(method: u8) {
    if EXPORTED.get() == Some(TypeId::of::<P>()) {
        DEFAULTS_RAN.set(DEFAULTS_RAN.get() | method);
    }
}

/// Holds the plugin of this component instance, created on first use.
///
/// Used by the export macros only; an instance is single-threaded, so the
/// macros keep it in a `thread_local!`.
#[doc(hidden)]
pub struct Instance<P> {
    plugin: RefCell<Option<P>>,
    /// Default methods seen to run (`wsserver_packed::DEFAULT_*` bits)...
    defaults: Cell<u8>,
    /// ... and those of them the host has been told of, in a packed batch
    /// of commands (the typed `on-events` has no way to say it).
    told: Cell<u8>,
    /// The buffer the last packed call's commands were written in, kept
    /// for the next call's (see [`handle_packed`](Self::handle_packed)).
    commands: Cell<Vec<u8>>,
}

/// The largest command buffer kept between calls: a burst does not stay
/// in the plugin's memory.
const KEEP_COMMANDS: usize = 64 * 1024;

impl<P: Plugin> Instance<P> {
    #[allow(clippy::new_without_default)] // must be const for thread_local!
    pub const fn new() -> Self {
        Self {
            plugin: RefCell::new(None),
            defaults: Cell::new(0),
            told: Cell::new(0),
            commands: Cell::new(Vec::new()),
        }
    }

    /// Runs `f` on the plugin, noting which of its default methods ran.
    fn with<R>(&self, f: impl FnOnce(&mut P) -> R) -> R {
        // The component model never re-enters an instance, so no other
        // borrow can be live here.
        let mut plugin = self.plugin.borrow_mut();
        EXPORTED.set(Some(TypeId::of::<P>()));
        DEFAULTS_RAN.set(0);
        let result = f(plugin.get_or_insert_with(P::default));
        EXPORTED.set(None);
        self.defaults.set(self.defaults.get() | DEFAULTS_RAN.take());
        result
    }

    pub fn open_request(&self, request: OpenRequest) -> OpenResponse {
        self.with(|plugin| plugin.open_request(request))
    }

    pub fn handle_events(&self, events: Vec<Event>) -> Vec<Command> {
        self.with(|plugin| handle_events(plugin, events))
    }

    /// Handles a packed batch. The commands leave in the batch's own
    /// buffer, which the host frees after the call, and the buffer they
    /// were written in is kept for the next call: a call costs the guest
    /// one allocation (the batch) instead of two.
    pub fn handle_packed(&self, batch: Vec<u8>) -> Vec<u8> {
        let spare = self.commands.take();
        let mut commands = self.with(|plugin| crate::packed::handle_packed(plugin, &batch, spare));
        let untold = self.defaults.get() & !self.told.get();
        if untold != 0 {
            wsserver_packed::Writer::new(&mut commands)
                .command(&wsserver_packed::Command::Defaults(untold));
            self.told.set(self.told.get() | untold);
        }
        let mut reply = batch;
        reply.clear();
        reply.extend_from_slice(&commands);
        if commands.capacity() <= KEEP_COMMANDS {
            commands.clear();
            self.commands.set(commands);
        }
        reply
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
                $instance.with(|instance| instance.handle_packed(batch))
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
        crate::types::request("/", &[])
    }

    /// The packed commands an instance returns for one connected event.
    fn packed_turn<P: Plugin>(instance: &Instance<P>) -> Vec<wsserver_packed::Command<'static>> {
        let mut batch = Vec::new();
        wsserver_packed::Writer::new(&mut batch).event(&wsserver_packed::Event::Connected(1));
        let out = instance.handle_packed(batch);
        wsserver_packed::commands(&out)
            .map(|c| match c.unwrap() {
                wsserver_packed::Command::Defaults(methods) => {
                    wsserver_packed::Command::Defaults(methods)
                }
                other => panic!("unexpected command {other:?}"),
            })
            .collect()
    }

    use wsserver_packed::Command::Defaults;
    use wsserver_packed::{DEFAULT_CONNECTED, DEFAULT_OPEN_REQUEST};

    #[test]
    fn a_plugin_keeping_default_methods_says_so_once_each() {
        let instance = Instance::<Counter>::new();
        assert_eq!(packed_turn(&instance), [Defaults(DEFAULT_CONNECTED)]);
        assert_eq!(instance.open_request(open()), OpenResponse::accept());
        assert_eq!(packed_turn(&instance), [Defaults(DEFAULT_OPEN_REQUEST)]);
        instance.open_request(open());
        assert_eq!(packed_turn(&instance), [], "said once");
    }

    /// Decides itself, with another type's defaults for some requests.
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

        fn connected(&mut self, ctx: &mut Context, connection: u64) {
            Counter::default().connected(ctx, connection);
        }
    }

    /// Echoes each data-in by reference.
    #[derive(Default)]
    struct Echoing;

    impl Plugin for Echoing {
        fn data_in_ref(&mut self, ctx: &mut Context, data: crate::DataInRef<'_>) {
            ctx.send_slice(data.connection, crate::MessageFormat::Binary, data.data);
        }
    }

    #[test]
    fn commands_leave_in_the_batchs_buffer_and_theirs_is_kept_for_the_next_call() {
        let instance = Instance::<Echoing>::new();
        for round in 0..2 {
            let mut batch = Vec::new();
            wsserver_packed::Writer::new(&mut batch).event(&wsserver_packed::Event::DataIn {
                connection: 7,
                format: wsserver_packed::BINARY,
                eom: true,
                eol: false,
                data: b"hello",
            });
            let (at, len) = (batch.as_ptr(), batch.len());
            let out = instance.handle_packed(batch);
            assert_eq!(out.as_ptr(), at, "round {round}: the batch's buffer");
            let commands: Vec<_> = wsserver_packed::commands(&out)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(
                commands,
                [wsserver_packed::Command::SendInput {
                    connection: 7,
                    format: wsserver_packed::SEND_BINARY,
                    offset: (len - 5) as u32,
                    len: 5,
                }]
            );
            let kept = instance.commands.take();
            assert!(kept.is_empty() && kept.capacity() >= len, "round {round}");
            instance.commands.set(kept);
        }
    }

    #[test]
    fn a_plugin_with_its_own_methods_gets_every_call() {
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
