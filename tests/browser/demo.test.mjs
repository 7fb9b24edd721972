// The built-in demo: a server started with no configuration serves a chat
// page on /, and two pages chat through the built-in chat plugin.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Server, WAIT, launch, screenshotPath } from "./helpers.mjs";

let server, browser;
before(async () => {
  server = await Server.start();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  assert.equal(await server?.stop(), 0);
});

test("the server says which URL to open", async () => {
  assert.equal(await server.nextLine(), `open ${server.httpUrl}/ in a browser`);
});

test("two pages chat through the server", async () => {
  const context = await browser.newContext({ viewport: { width: 900, height: 860 } });
  const [alice, bob] = [await context.newPage(), await context.newPage()];
  for (const [page, name] of [[alice, "alice"], [bob, "bob"]]) {
    await page.goto(server.httpUrl + "/");
    await page.fill("#name", name);
    await page.dispatchEvent("#name", "change");
    await page.waitForSelector("#chat-status.up", { timeout: WAIT });
  }
  assert.match(await alice.textContent("#chat-url"), /\/chat\/lobby$/);
  assert.match(await alice.textContent("body"), /builtin:chat/, "the page names the plugin that answers");

  await alice.fill("#message", "hello from alice");
  await alice.press("#message", "Enter");
  await bob.waitForSelector("#log .msg:not(.mine):has-text('hello from alice')", { timeout: WAIT });
  assert.equal(await bob.textContent("#log .msg:not(.mine) b"), "alice");

  await bob.fill("#message", "hi alice, bob here");
  await bob.click("#send-button");
  await alice.waitForSelector("#log .msg:not(.mine):has-text('hi alice, bob here')", { timeout: WAIT });

  // The echo box on the same page: the echo plugin on every other path.
  await alice.click("#echo-button");
  await alice.waitForSelector("#echo-out:has-text('← hello, wasm')", { timeout: WAIT });

  await alice.screenshot({ path: screenshotPath("demo.png") });
  await context.close();
});

test("the documentation links work", async () => {
  const page = await browser.newPage();
  await page.goto(server.httpUrl + "/");
  for (const [link, expected] of [["README", "# wsserver"], ["writing plugins", "plugin"], ["the plugin contract (WIT)", "package wsserver:plugin"]]) {
    const href = await page.getAttribute(`a:has-text("${link}")`, "href");
    const response = await page.request.get(new URL(href, server.httpUrl + "/").href);
    assert.equal(response.status(), 200, href);
    assert.match(await response.text(), new RegExp(expected.replace(/[()]/g, "\\$&")), href);
  }
  await page.close();
});
