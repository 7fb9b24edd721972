// wss:// in the browser: a certificate made by the test, which Chromium is
// told to trust by the SHA-256 of its public key (SPKI).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Server, WAIT, launch } from "./helpers.mjs";

let dir, server, spki;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "wsserver-wss-"));
  const key = join(dir, "key.pem");
  const cert = join(dir, "cert.pem");
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
  ], { stdio: "pipe" });
  const store = join(dir, "server.pem");
  writeFileSync(store, readFileSync(key, "utf8") + readFileSync(cert, "utf8"));
  const der = new X509Certificate(readFileSync(cert)).publicKey.export({ type: "spki", format: "der" });
  spki = createHash("sha256").update(der).digest("base64");
  server = await Server.start(["--set", "UseSSL=True", "--set", "SSLCertStoreType=PEMKeyFile", "--set", `SSLCertStore=${store}`]);
});
after(async () => {
  assert.equal(await server?.stop(), 0);
  rmSync(dir, { recursive: true, force: true });
});

test("the page loads over https and its WebSockets run over wss", async () => {
  assert.match(server.wsUrl, /^wss:\/\//);
  const browser = await launch([`--ignore-certificate-errors-spki-list=${spki}`]);
  try {
    const page = await browser.newPage();
    const response = await page.goto(server.httpUrl + "/");
    assert.equal(response.status(), 200);
    // The demo's chat connects on its own, to wss://.../chat/lobby.
    await page.waitForSelector("#chat-status.up", { timeout: WAIT });
    assert.match(await page.textContent("#chat-url"), /^wss:\/\//);
    const echoed = await page.evaluate(async (url) => {
      const ws = new WebSocket(url);
      await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
      const reply = new Promise((resolve) => (ws.onmessage = (e) => resolve(e.data)));
      ws.send("over TLS");
      const data = await reply;
      ws.close();
      return data;
    }, server.wsUrl + "/echo");
    assert.equal(echoed, "over TLS");
  } finally {
    await browser.close();
  }
});

test("a browser not told to trust the certificate refuses it", async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await assert.rejects(page.goto(server.httpUrl + "/"), /ERR_CERT_AUTHORITY_INVALID/);
  } finally {
    await browser.close();
  }
});
