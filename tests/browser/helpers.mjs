// What the browser tests share: the real wsserver binary as a child
// process, and Debian's Chromium driven by playwright-core.

import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

/** Upper bound for anything a test waits for, in milliseconds. */
export const WAIT = 10_000;

function required(name, hint) {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name} (${hint}); \`make browser-tests\` does`);
  return value;
}

/** A running wsserver: its addresses and what it printed. */
export class Server {
  constructor(child, lines) {
    this.child = child;
    this.lines = lines;
    this.stderr = "";
    child.stderr.on("data", (chunk) => (this.stderr += chunk));
  }

  /**
   * Starts `wsserver --listen 127.0.0.1:0 ARGS...` and reads its ready line,
   * the admin line when `--admin` is given, and the URL line when a page is
   * served on /.
   */
  static async start(args = [], { env = {} } = {}) {
    const child = spawn(required("WSSERVER_BIN", "the wsserver binary"), ["--listen", "127.0.0.1:0", ...args], {
      env: { ...process.env, RUST_LOG: "info", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const server = new Server(child, lines);
    const ready = await server.nextLine();
    const match = /^listening on (wss?):\/\/(\S+)$/.exec(ready);
    if (!match) throw new Error(`unexpected first line ${JSON.stringify(ready)}; stderr:\n${server.stderr}`);
    server.wsUrl = `${match[1]}://${match[2]}`;
    server.httpUrl = `${match[1] === "wss" ? "https" : "http"}://${match[2]}`;
    if (args.includes("--admin")) {
      server.adminUrl = (await server.nextLine()).replace(/^admin on /, "");
    }
    return server;
  }

  /** The next line on stdout (fails after WAIT). */
  async nextLine() {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no line from wsserver; stderr:\n${this.stderr}`)), WAIT);
    });
    try {
      const { value, done } = await Promise.race([this.lines.next(), timeout]);
      if (done) throw new Error(`wsserver exited; stderr:\n${this.stderr}`);
      return value;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits until stderr holds `needle`. */
  async stderrContaining(needle) {
    const deadline = Date.now() + WAIT;
    while (!this.stderr.includes(needle)) {
      if (Date.now() > deadline) throw new Error(`stderr never said ${JSON.stringify(needle)}:\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return this.stderr;
  }

  /** SIGTERM, then the exit code. */
  async stop() {
    if (this.child.exitCode !== null) return this.child.exitCode;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), WAIT);
    const code = await exited;
    clearTimeout(timer);
    return code;
  }
}

/** Headless Chromium: Debian's package unless CHROMIUM names another. */
export function launch(args = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args,
  });
}

/** Where screenshots go: SCREENSHOT_DIR (the README's, for `make screenshots`) or a temporary folder. */
export function screenshotPath(name) {
  const dir = process.env.SCREENSHOT_DIR || join(tmpdir(), "wsserver-screenshots");
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}

/** The folder of the built plugin components. */
export function pluginDir() {
  return required("WSSERVER_PLUGIN_DIR", "the plugins built for wasm32-wasip2");
}
