// The browser's own WebSocket against the echo plugin: text and binary,
// 1 MiB messages, and permessage-deflate as Chromium offers it.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Server, launch } from "./helpers.mjs";

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/**
 * In the page: opens a WebSocket to `url`, sends each message, and reports
 * the negotiated extensions and whether each echo came back identical.
 */
async function echoInPage(page, url, messages) {
  return page.evaluate(
    async ({ url, messages }) => {
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = () => reject(new Error("cannot open " + url));
      });
      const results = [];
      for (const m of messages) {
        let sent;
        if (m.kind === "text") sent = m.char.repeat(m.length);
        else {
          // Incompressible: deflate cannot shrink it.
          sent = new Uint8Array(m.length);
          for (let i = 0; i < sent.length; i += 65536) crypto.getRandomValues(sent.subarray(i, i + 65536));
        }
        const reply = new Promise((resolve) => (ws.onmessage = (e) => resolve(e.data)));
        ws.send(sent);
        const got = await reply;
        let same;
        if (typeof sent === "string") same = got === sent;
        else {
          const back = new Uint8Array(got);
          same = back.length === sent.length && back.every((b, i) => b === sent[i]);
        }
        results.push({ kind: m.kind, length: m.length, type: typeof got === "string" ? "text" : "binary", same });
      }
      const extensions = ws.extensions;
      ws.close(1000);
      return { extensions, results };
    },
    { url, messages },
  );
}

async function receivedBytes(server) {
  const text = await (await fetch(server.adminUrl + "/metrics")).text();
  return Number(/^wsserver_received_bytes_total (\d+)/m.exec(text)[1]);
}

test("text, binary and 1 MiB messages echo intact, compressed by permessage-deflate", async () => {
  const server = await Server.start(["--admin", "127.0.0.1:0"]);
  const page = await browser.newPage();
  await page.goto(server.httpUrl + "/");
  const url = server.wsUrl + "/echo";

  // A 1 MiB text message that compresses well: on the wire it must be far
  // smaller, which only happens if deflate was really agreed.
  const before = await receivedBytes(server);
  const first = await echoInPage(page, url, [{ kind: "text", char: "a", length: 1 << 20 }]);
  assert.match(first.extensions, /^permessage-deflate\b/, `negotiated ${JSON.stringify(first.extensions)}`);
  assert.deepEqual(first.results, [{ kind: "text", length: 1 << 20, type: "text", same: true }]);
  const onTheWire = (await receivedBytes(server)) - before;
  assert.ok(onTheWire < 64 * 1024, `1 MiB of 'a' took ${onTheWire} bytes on the wire`);

  const all = await echoInPage(page, url, [
    { kind: "text", char: "é", length: 10 },
    { kind: "binary", length: 5 },
    { kind: "binary", length: 1 << 20 },
    { kind: "text", char: "x", length: 1 << 20 },
    { kind: "binary", length: 0 },
  ]);
  assert.deepEqual(all.results.map((r) => [r.kind, r.length, r.type, r.same]), [
    ["text", 10, "text", true],
    ["binary", 5, "binary", true],
    ["binary", 1 << 20, "binary", true],
    ["text", 1 << 20, "text", true],
    ["binary", 0, "binary", true],
  ]);
  await page.close();
  assert.equal(await server.stop(), 0);
});

test("without deflate on the server, Chromium's offer is declined", async () => {
  const server = await Server.start(["--set", "EnablePermessageDeflate=False"]);
  const page = await browser.newPage();
  await page.goto(server.httpUrl + "/");
  const { extensions, results } = await echoInPage(page, server.wsUrl + "/echo", [{ kind: "text", char: "b", length: 1000 }]);
  assert.equal(extensions, "");
  assert.equal(results[0].same, true);
  await page.close();
  assert.equal(await server.stop(), 0);
});
