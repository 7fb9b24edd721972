// The operator dashboard on the admin listener: the token asked for once,
// the tenants listed, counters that move, a connection dropped, and a
// component uploaded to hot-swap the chat tenant while a page chats.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Server, WAIT, launch, pluginDir, screenshotPath } from "./helpers.mjs";

const TOKEN = "dashboard-test-token";
const CHAT = "chat (built-in)";
let server, browser, context, dashboard, dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "wsserver-dashboard-"));
  server = await Server.start(["--admin", "127.0.0.1:0"], { env: { WSSERVER_ADMIN_TOKEN: TOKEN } });
  browser = await launch();
  context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  dashboard = await context.newPage();
});
after(async () => {
  await browser?.close();
  assert.equal(await server?.stop(), 0);
  rmSync(dir, { recursive: true, force: true });
});

/** The number a tile shows. */
async function tile(id) {
  return Number(await dashboard.getAttribute(`#tile-${id} .value`, "data-value"));
}

async function waitForTile(id, predicate, what) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const value = await tile(id);
    if (predicate(value)) return value;
    assert.ok(Date.now() < deadline, `${id} stayed at ${value}; wanted ${what}`);
    await dashboard.waitForTimeout(100);
  }
}

/** A demo page, connected to the chat room. */
async function chatPage(name) {
  const page = await context.newPage();
  await page.goto(server.httpUrl + "/");
  await page.fill("#name", name);
  await page.waitForSelector("#chat-status.up", { timeout: WAIT });
  return page;
}

/** Sends from `from` until `to` shows it: members join as they connect. */
async function chatThrough(from, to, text) {
  await from.fill("#message", text);
  await from.press("#message", "Enter");
  await to.waitForSelector(`#log .msg:not(.mine):has-text(${JSON.stringify(text)})`, { timeout: WAIT });
}

/** A component whose bytes differ from `file`'s but behave the same: a custom section appended. */
function withCustomSection(file, note) {
  const name = Buffer.from("wsserver-test");
  const payload = Buffer.concat([Buffer.from([name.length]), name, Buffer.from(note)]);
  assert.ok(payload.length < 128, "one-byte LEB128 size");
  return Buffer.concat([readFileSync(file), Buffer.from([0, payload.length]), payload]);
}

test("a wrong token is refused and nothing is shown without the right one", async () => {
  await dashboard.goto(server.adminUrl + "/");
  await dashboard.waitForSelector("#login:not([hidden])");
  assert.equal(await dashboard.isHidden("#app"), true);
  const unauthenticated = await dashboard.evaluate(async () => (await fetch("/tenants")).status);
  assert.equal(unauthenticated, 401);

  await dashboard.fill("#token", "not-the-token");
  await dashboard.click("#login button[type=submit]");
  await dashboard.waitForSelector("#login-error:has-text('Wrong token')");
  assert.equal(await dashboard.isHidden("#app"), true);

  await dashboard.fill("#token", TOKEN);
  await dashboard.click("#login button[type=submit]");
  await dashboard.waitForSelector("#app:not([hidden])");
  // Kept for the session: a reload asks no more.
  await dashboard.reload();
  await dashboard.waitForSelector(`#tenants tr[data-tenant="${CHAT}"]`, { timeout: WAIT });
  assert.equal(await dashboard.isHidden("#login"), true);
});

test("it lists the tenants with their routes and versions", async () => {
  await dashboard.waitForSelector(`#tenants tr[data-tenant="${CHAT}"]`, { timeout: WAIT });
  const rows = await dashboard.$$eval("#tenants tr", (trs) => trs.map((tr) => [...tr.children].slice(0, 3).map((td) => td.textContent)));
  assert.deepEqual(rows.map((r) => r.slice(0, 2)), [["echo (built-in)", "/"], [CHAT, "/chat"]]);
  for (const row of rows) assert.match(row[2], /^sha256:[0-9a-f]{12}…$/);
});

test("its counters move when a client sends, and it drops a connection", async () => {
  const before = await waitForTile("messages-in", (v) => v >= 0, "a number");
  const client = await context.newPage();
  // A page of the server's origin (its 404 page will do).
  await client.goto(server.httpUrl + "/no-page-here");
  await client.evaluate(async (url) => {
    const ws = (window.ws = new WebSocket(url));
    window.closeCode = new Promise((resolve) => (ws.onclose = (e) => resolve(e.code)));
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("cannot open " + url));
    });
    let echoed = 0;
    const all = new Promise((resolve) => (ws.onmessage = () => ++echoed === 25 && resolve()));
    for (let i = 0; i < 25; i++) ws.send("message " + i);
    await all;
  }, server.wsUrl + "/echo/counted");
  await waitForTile("messages-in", (v) => v >= before + 25, `at least ${before + 25}`);
  await waitForTile("messages-out", (v) => v >= 25, "at least 25");

  const row = dashboard.locator("#connections tr", { hasText: "/echo/counted" });
  await row.waitFor({ timeout: WAIT });
  await row.locator("button", { hasText: "Disconnect" }).click();
  assert.equal(await client.evaluate(() => window.closeCode), 1000);
  await row.waitFor({ state: "detached", timeout: WAIT });
  await client.close();
});

test("an upload hot-swaps the chat tenant while pages stay connected, and rolls back", async () => {
  const alice = await chatPage("alice");
  const bob = await chatPage("bob");
  await chatThrough(alice, bob, "before the swap");

  const component = join(dir, "chat-v2.wasm");
  writeFileSync(component, withCustomSection(join(pluginDir(), "chat.wasm"), "v2"));
  const row = dashboard.locator(`#tenants tr[data-tenant="${CHAT}"]`);
  await row.locator("input[type=file]").setInputFiles(component);
  await row.locator("button.swap").click();
  await dashboard.waitForSelector(`#events li:has-text("swap: tenant ${CHAT} now serves")`, { timeout: WAIT });
  await dashboard.waitForSelector(`#tenants tr[data-tenant="${CHAT}"] td.swaps:has-text("1 / 0 / 0")`, { timeout: WAIT });
  await server.stderrContaining(`admin swap: tenant ${CHAT} now serves`);

  // The same connections, served by the new version.
  await chatThrough(bob, alice, "after the swap");
  for (const page of [alice, bob]) {
    assert.equal(await page.locator("#log .note", { hasText: "joined" }).count(), 1, "no reconnection");
  }

  // Not a component: refused, logged, and the running version serves on.
  const broken = join(dir, "broken.wasm");
  writeFileSync(broken, "not wasm");
  await row.locator("input[type=file]").setInputFiles(broken);
  await row.locator("button.swap").click();
  await dashboard.waitForSelector(`#events li.error:has-text("swap of ${CHAT} failed")`, { timeout: WAIT });
  await server.stderrContaining(`admin swap of tenant ${CHAT} failed (422)`);
  await chatThrough(alice, bob, "still chatting");

  await row.locator("button", { hasText: "Roll back" }).click();
  await dashboard.waitForSelector(`#events li:has-text("rollback: tenant ${CHAT}")`, { timeout: WAIT });
  await dashboard.waitForSelector(`#tenants tr[data-tenant="${CHAT}"] td.swaps:has-text("1 / 1 / 1")`, { timeout: WAIT });
  await server.stderrContaining(`admin rollback: tenant ${CHAT} now serves`);
  await chatThrough(bob, alice, "after the rollback");

  // Some traffic for the charts, then the picture for the README.
  for (let i = 0; i < 6; i++) {
    await chatThrough(alice, bob, `chart ${i}`);
    await dashboard.waitForTimeout(400);
  }
  await dashboard.screenshot({ path: screenshotPath("dashboard.png"), fullPage: true });
  await alice.close();
  await bob.close();
});
