//! Hostile test plugin: each text message names a misbehaviour, anything
//! else is echoed (so a test sees the tenant still serves):
//! - `malformed-batch`: returns a command batch that breaks the layout;
//! - `input-outside-batch`: returns a send of batch bytes past its end;
//! - `gigantic-batch`: returns 16 MiB of sends to the connection at once;
//! - `log-flood`: logs without end (until the CPU deadline);
//! - `recurse`: recurses until its stack overflows;
//! - `send-1gib`: sends one 1 GiB message (allocating it first);
//! - `sleep`: sleeps without end, 10 ms at a time (using no CPU time);
//! - `sleep-hour`: sleeps for an hour in one host call.
//!
//! An open request whose path contains `big-header` is answered with a
//! 1 MB header.
//!
//! It exports the handler itself rather than through `export_plugin!`, so
//! that it can return raw command batches.

use std::hint::black_box;

use wsserver_packed::{self as packed, Command, Writer};
use wsserver_sdk::__private::{Instance, packed as packed_export, plugin as plugin_export};
use wsserver_sdk::{
    Context, DataIn, Event, LogLevel, MessageFormat, OpenRequest, OpenResponse, Plugin, host,
};

const GIGANTIC_BATCH: usize = 16 << 20;
const SEND_CHUNK: usize = 1024;

#[derive(Default)]
struct Hostile;

impl Plugin for Hostile {
    fn open_request(&mut self, request: OpenRequest) -> OpenResponse {
        let response = OpenResponse::accept();
        if request.request_uri.contains("big-header") {
            return response.with_header("X-Big", "a".repeat(1 << 20));
        }
        response
    }

    fn data_in(&mut self, ctx: &mut Context, data: DataIn) {
        match &data.data[..] {
            b"log-flood" => loop {
                host::log(LogLevel::Info, "hostile: logging without end");
            },
            b"recurse" => {
                let depth = recurse(black_box(0));
                ctx.send_text(data.connection, format!("survived {depth}"));
            }
            b"sleep" => loop {
                std::thread::sleep(std::time::Duration::from_millis(10));
            },
            b"sleep-hour" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                ctx.send_text(data.connection, "slept an hour");
            }
            b"send-1gib" => {
                let huge = vec![0u8; 1 << 30];
                let _ = host::send(data.connection, MessageFormat::Binary, &huge);
                ctx.send_text(data.connection, "sent 1 GiB");
            }
            text => ctx.send_text(data.connection, String::from_utf8_lossy(text)),
        }
    }
}

/// Recurses without end, with a frame the optimiser cannot drop.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    if black_box(depth) == u64::MAX {
        return frame[1];
    }
    frame[7].wrapping_add(recurse(depth + 1))
}

/// The batch this plugin returns instead of its commands, if a message
/// asks for one.
fn raw_batch(batch: &[u8]) -> Option<Vec<u8>> {
    packed::events(batch)
        .flatten()
        .find_map(|event| match event {
            packed::Event::DataIn {
                connection, data, ..
            } => match data {
                // A command kind that does not exist, after one good command.
                b"malformed-batch" => {
                    let mut out = Vec::new();
                    Writer::new(&mut out).command(&Command::Send {
                        connection,
                        format: packed::SEND_TEXT,
                        data: b"before the bad record",
                    });
                    out.extend_from_slice(&[0xEE; 16]);
                    Some(out)
                }
                b"input-outside-batch" => {
                    let mut out = Vec::new();
                    Writer::new(&mut out).command(&Command::SendInput {
                        connection,
                        format: packed::SEND_BINARY,
                        offset: batch.len() as u32 - 4,
                        len: 8,
                    });
                    Some(out)
                }
                b"gigantic-batch" => {
                    let chunk = [b'g'; SEND_CHUNK];
                    let mut out = Vec::with_capacity(GIGANTIC_BATCH + 64);
                    while out.len() < GIGANTIC_BATCH {
                        Writer::new(&mut out).command(&Command::Send {
                            connection,
                            format: packed::SEND_BINARY,
                            data: &chunk,
                        });
                    }
                    Some(out)
                }
                _ => None,
            },
            _ => None,
        })
}

thread_local! {
    static INSTANCE: Instance<Hostile> = const { Instance::new() };
}

struct Exports;

impl plugin_export::exports::wsserver::plugin::handler::Guest for Exports {
    fn on_open_request(request: OpenRequest) -> OpenResponse {
        INSTANCE.with(|instance| instance.open_request(request))
    }

    fn on_events(events: Vec<Event>) -> Vec<wsserver_sdk::Command> {
        INSTANCE.with(|instance| instance.handle_events(events))
    }
}

plugin_export::export!(Exports with_types_in plugin_export);

impl packed_export::exports::wsserver::plugin::packed_handler::Guest for Exports {
    fn on_events(batch: Vec<u8>) -> Vec<u8> {
        match raw_batch(&batch) {
            Some(commands) => commands,
            None => INSTANCE.with(|instance| instance.handle_packed(batch)),
        }
    }
}

packed_export::export!(Exports with_types_in packed_export);
