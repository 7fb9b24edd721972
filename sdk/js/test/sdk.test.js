// The SDK without a host: message assembly, dispatch and commands.
import assert from "node:assert/strict";
import { test } from "node:test";

import { MessageAssembler } from "../src/assembler.js";
import { Plugin, exportPlugin, handleEvents } from "../src/plugin.js";
import { encodeUtf8 } from "../src/utf8.js";

const chunk = (connection, format, text, eom) => ({
  connection,
  format,
  data: encodeUtf8(text),
  eom,
  eol: false,
});
const dataIn = (...args) => ({ tag: "data-in", val: chunk(...args) });

class Recorder extends Plugin {
  constructor() {
    super();
    this.seen = [];
  }
  connected(ctx, connection) {
    this.seen.push(`connected ${connection}`);
    ctx.subscribe(connection, "room");
  }
  message(ctx, message) {
    this.seen.push(`message ${message.connection} ${message.format} ${message.text}`);
    ctx.sendMessage(message);
  }
  disconnected(ctx, info) {
    this.seen.push(`disconnected ${info.connection} ${info.code}`);
  }
  readyToSend(ctx, connection) {
    this.seen.push(`ready ${connection}`);
  }
  error(ctx, error) {
    this.seen.push(`error ${error.connection} ${error.kind}`);
  }
  ping(ctx, ping) {
    this.seen.push(`ping ${ping.connection} ${ping.response}`);
  }
}

test("events reach their methods in order and commands come back in order", () => {
  const plugin = new Recorder();
  const commands = handleEvents(plugin, [
    { tag: "error", val: { connection: 2, code: 10035, description: "full" } },
    { tag: "connected", val: 1 },
    dataIn(1, "text", "hé", false),
    dataIn(2, "binary", "b", true),
    dataIn(1, "continuation", "llo", true),
    { tag: "ping", val: { connection: 1, payload: new Uint8Array(), response: true } },
    { tag: "ready-to-send", val: 2 },
    { tag: "disconnected", val: { connection: 2, code: 1001, description: "" } },
  ]);
  assert.deepEqual(plugin.seen, [
    "error 2 would-block",
    "connected 1",
    "message 2 binary b",
    "message 1 text héllo",
    "ping 1 true",
    "ready 2",
    "disconnected 2 1001",
  ]);
  assert.deepEqual(
    commands.map((c) => [c.tag, c.val.connection, c.val.format]),
    [
      ["subscribe", 1, undefined],
      ["send", 2, "binary"],
      ["send", 1, "text"],
    ],
  );
  assert.deepEqual(commands[2].val.data, encodeUtf8("héllo"));
});

test("a disconnect drops the unfinished message", () => {
  const plugin = new Recorder();
  handleEvents(plugin, [
    dataIn(1, "text", "part", false),
    { tag: "disconnected", val: { connection: 1, code: 1006, description: "" } },
  ]);
  assert.equal(plugin.messages.isAssembling(1), false);
});

test("unfinished messages survive snapshot and restore through the exports", () => {
  const old = exportPlugin(Recorder);
  old.handler.onEvents([dataIn(7, "text", "frag", false), dataIn(2 ** 40 + 3, "binary", "xy", false)]);
  const fresh = exportPlugin(Recorder);
  fresh.lifecycle.restore(old.lifecycle.snapshot());
  const commands = fresh.handler.onEvents([
    dataIn(7, "continuation", "ment", true),
    dataIn(2 ** 40 + 3, "continuation", "z", true),
  ]);
  assert.deepEqual(
    commands.map((c) => [c.val.connection, c.val.format, Buffer.from(c.val.data).toString()]),
    [
      [7, "text", "fragment"],
      [2 ** 40 + 3, "binary", "xyz"],
    ],
  );
});

test("a damaged snapshot is refused with a message", () => {
  const assembler = new MessageAssembler();
  assembler.push(chunk(1, "text", "abc", false));
  const good = assembler.snapshot();
  assert.throws(() => MessageAssembler.restore(new Uint8Array()), /truncated/);
  assert.throws(() => MessageAssembler.restore(Uint8Array.of(2)), /version 2/);
  for (let cut = 2; cut < good.length; cut++) {
    assert.throws(() => MessageAssembler.restore(good.slice(0, cut)), /truncated/, `cut at ${cut}`);
  }
  const exported = exportPlugin(Recorder);
  assert.throws(() => exported.lifecycle.restore(Uint8Array.of(9)), (e) => e === "unsupported message snapshot version 9");
});

test("open requests get helpers and answers get the WIT shape", () => {
  class Gate extends Plugin {
    openRequest(request) {
      if (request.header("authorization") !== "Bearer t") return { status: 401, headers: { "WWW-Authenticate": "Bearer" } };
      return { subprotocol: request.subprotocols[0], status: 101 };
    }
  }
  const { handler } = exportPlugin(Gate);
  const request = (headers) => ({ connection: 1, requestUri: "/a?b", subprotocols: ["v1"], headers });
  assert.deepEqual(handler.onOpenRequest(request([])), {
    status: 401,
    subprotocol: null,
    headers: [{ name: "WWW-Authenticate", value: "Bearer" }],
  });
  assert.deepEqual(handler.onOpenRequest(request([{ name: "Authorization", value: "Bearer t" }])), {
    status: 101,
    subprotocol: "v1",
    headers: [],
  });
  assert.deepEqual(exportPlugin(Plugin).handler.onOpenRequest(request([])), { status: 101, subprotocol: null, headers: [] });
});
