// What the browser flows share: starting our binary (emulator, server) in a throw-away data
// directory, system Chromium, steps that screenshot themselves, and the summary at the end.
//   DESKBRIDGE_BIN  the binary (default target/debug/deskbridge)
//   CHROMIUM        the browser (default /usr/bin/chromium; never a downloaded one)
//   BROWSER_OUTPUT  where screenshots go (default target/browser-output)
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const root = resolve(new URL("../../..", import.meta.url).pathname);
const bin = resolve(root, process.env.DESKBRIDGE_BIN ?? "target/debug/deskbridge");
const browserPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const out = resolve(root, process.env.BROWSER_OUTPUT ?? "target/browser-output");
mkdirSync(out, { recursive: true });
const dataDir = mkdtempSync(join(tmpdir(), "deskbridge-browser-"));
const children = [];

/** Starts a process of ours and resolves with the JSON object on its first stdout line. */
export function start(args) {
  return new Promise((ok, fail) => {
    const child = spawn(bin, args, { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, DESKBRIDGE_DATA_DIR: dataDir, DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS: "127.0.0.1" } });
    children.push(child);
    child.on("error", fail);
    child.on("exit", (code) => fail(new Error(`${args[0]} exited with ${code} before it was ready`)));
    const lines = createInterface({ input: child.stdout });
    lines.once("line", (line) => {
      try { ok(JSON.parse(line)); } catch (e) { fail(new Error(`${args[0]} printed ${line}: ${e}`)); }
    });
  });
}

/** Runs a command of ours to its end (against the same data directory as `start`); returns its
 *  exit status, standard output and standard error. */
export function run(args, env = {}) {
  const done = spawnSync(bin, args, { encoding: "utf8", env: { ...process.env, DESKBRIDGE_DATA_DIR: dataDir, DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS: "127.0.0.1", DESKBRIDGE_LOG: "error", ...env } });
  if (done.error) { throw done.error; }
  return { status: done.status, stdout: done.stdout, stderr: done.stderr };
}

/** Headless system Chromium. */
export function launch() {
  return chromium.launch({ executablePath: browserPath, headless: true, args: ["--no-sandbox"] });
}

let passed = 0;
let failed = 0;
let shot = 0;
let prefix = "";

/** Screenshots are named `<prefix>NN-<step>.png`, so that flows sharing `out` do not clash. */
export function screenshotPrefix(p) { prefix = p; }

/** Runs one step; a failure is counted and the flow goes on. The page is screenshot after. */
export async function step(page, name, body) {
  try {
    await body();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
  } finally {
    shot += 1;
    const file = join(out, `${prefix}${String(shot).padStart(2, "0")}-${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
  }
}

export function expect(cond, what) {
  if (!cond) { throw new Error(what); }
}

/** A failure outside any step (the setup). */
export function failSetup(e) {
  failed += 1;
  console.log(`FAIL setup: ${e.stack ?? e}`);
}

/** Closes the browser, stops our processes, removes the data directory, prints the summary and exits. */
export async function finish(browser) {
  if (browser) { await browser.close().catch(() => {}); }
  for (const child of children) { child.kill("SIGTERM"); }
  rmSync(dataDir, { recursive: true, force: true });
  console.log(`screenshots in ${out}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}
