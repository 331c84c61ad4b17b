// Running many tenants unattended, in headless Chromium (the system's, never a downloaded one):
// two connections synced from the command line, one of them failing; the connection list shows
// each one's health (customer, last run, open errors), the failing one marked; it sorts and
// filters by plain links; the run history lists the CLI's runs.
// A screenshot of each step goes to target/browser-output/health-NN-*.png. Usage:
//   DESKBRIDGE_BIN=target/debug/deskbridge node crates/web/browser/health-flow.mjs
import { expect, failSetup, finish, launch, run, screenshotPrefix, start, step } from "./lib.mjs";

screenshotPrefix("health-");

/** The texts of the connection list's rows, first cell (the name) first. */
async function rows(page) {
  const out = [];
  for (const row of await page.locator("#health tbody tr").all()) {
    out.push(await row.getByRole("cell").allTextContents());
  }
  return out;
}

let browser;
try {
  const emu = await start(["emulator", "--listen", "127.0.0.1:0", "--tenants", "2", "--users-per-tenant", "8"]);
  const app = emu.apps.find((a) => a.kind === "multi_tenant_secret");
  const server = await start(["serve", "--listen", "127.0.0.1:0"]);
  const base = server.url;
  const oneTime = server.first_admin.one_time_password;
  const password = "browser health password";

  // Two connections from the command line: alpha syncs, beta's secret is wrong.
  for (const [name, tenant, secret] of [["alpha", emu.tenants[0], app.client_secret], ["beta", emu.tenants[1], "not-the-secret"]]) {
    const added = run(["connection", "add", "entra", "--name", name, "--tenant-id", tenant.id, "--client-id", app.client_id,
      "--client-secret-env", "HEALTH_FLOW_SECRET", "--authority-host", emu.authority_host, "--graph-url", emu.graph_url,
      "--customer", `${name} Ltd`], { HEALTH_FLOW_SECRET: secret });
    if (added.status !== 0) { throw new Error(`connection add ${name}: ${added.stderr}`); }
  }
  const synced = run(["sync", "--connection", "alpha"]);
  if (synced.status !== 0) { throw new Error(`sync alpha: ${synced.stderr}`); }
  const failed = run(["sync", "--connection", "beta"]);
  if (failed.status === 0) { throw new Error("sync beta succeeded with a wrong secret"); }

  browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  page.setDefaultTimeout(60_000);

  await step(page, "sign in", async () => {
    await page.goto(`${base}/`);
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel("Password").fill(oneTime);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(/\/account$/);
    await page.getByLabel("Current password").fill(oneTime);
    await page.getByLabel("New password", { exact: true }).fill(password);
    await page.getByLabel("New password again").fill(password);
    await page.getByRole("button", { name: "Change password" }).click();
    await page.getByText("Your password was changed").waitFor();
  });

  await step(page, "the list shows each connection's health", async () => {
    await page.goto(`${base}/connections`);
    const [alpha, beta] = await rows(page);
    expect(alpha[0] === "alpha" && alpha[1] === "alpha Ltd" && alpha[3] === "ok", `alpha row ${alpha}`);
    expect(alpha[4] === "succeeded (directory)" && Number(alpha[6]) > 0, `alpha's last run ${alpha}`);
    expect(beta[0] === "beta" && beta[1] === "beta Ltd" && beta[3] === "failing", `beta row ${beta}`);
    expect(beta[4] === "failed (directory)" && Number(beta[11]) >= 1, `beta's last run and open errors ${beta}`);
  });

  await step(page, "a failing connection stands out", async () => {
    const cell = page.locator("#health tbody tr", { hasText: "beta Ltd" }).getByRole("cell", { name: "failing", exact: true });
    expect(await cell.getAttribute("class") === "bad", "the failing cell is marked");
    const colour = await cell.evaluate((el) => getComputedStyle(el).color);
    const ok = page.locator("#health tbody tr", { hasText: "alpha Ltd" }).getByRole("cell", { name: "ok", exact: true });
    const okColour = await ok.evaluate((el) => getComputedStyle(el).color);
    expect(colour !== okColour, `failing is ${colour}, ok is ${okColour}`);
  });

  await step(page, "sorting by open errors puts beta first", async () => {
    await page.getByRole("link", { name: "Sort by open errors (most first)" }).click();
    await page.waitForURL(/sort=errors/);
    const names = (await rows(page)).map((r) => r[0]);
    expect(names.join(",") === "beta,alpha", `order ${names}`);
    await page.getByText("Sorted by open errors (most first)").waitFor();
  });

  await step(page, "sorting by name puts alpha first again", async () => {
    await page.getByRole("link", { name: "Sort by name" }).click();
    await page.waitForURL(/sort=name/);
    const names = (await rows(page)).map((r) => r[0]);
    expect(names.join(",") === "alpha,beta", `order ${names}`);
  });

  await step(page, "only failing connections", async () => {
    await page.getByRole("link", { name: "Only failing connections" }).click();
    await page.waitForURL(/failing=true/);
    const names = (await rows(page)).map((r) => r[0]);
    expect(names.join(",") === "beta", `shown ${names}`);
    await page.getByRole("link", { name: "Show every connection" }).click();
    await page.waitForURL((url) => !url.search.includes("failing"));
    expect((await rows(page)).length === 2, "both again");
  });

  await step(page, "the run history shows the CLI's runs", async () => {
    await page.getByRole("link", { name: "Every run" }).click();
    await page.waitForURL(/\/runs$/);
    const history = [];
    for (const row of await page.locator("#runs tbody tr").all()) {
      history.push(await row.getByRole("cell").allTextContents());
    }
    expect(history.length === 2, `${history.length} runs`);
    const [newest, oldest] = history;
    expect(newest[1] === "beta" && newest[3] === "failed", `newest ${newest}`);
    expect(oldest[1] === "alpha" && oldest[2] === "directory" && oldest[3] === "succeeded", `oldest ${oldest}`);
    expect(oldest[10] === "direct" && /^\d+ (s|min|h|days?)( \d+ (s|min|h))?$/.test(oldest[5]), `a CLI run, queued by no job, with a duration in words: ${oldest}`);
  });

  await step(page, "a run of the history opens its page", async () => {
    await page.locator("#runs tbody tr", { hasText: "alpha" }).getByRole("link").first().click();
    await page.waitForURL(/\/runs\/\d+$/);
    await page.getByRole("heading", { name: /^Run \d+$/ }).waitFor();
  });
} catch (e) {
  failSetup(e);
}
await finish(browser);
