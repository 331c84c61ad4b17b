// The admin UI in people's words, in headless Chromium (the system's, never a downloaded one)
// running in the Asia/Kolkata zone: times show in the viewer's zone to the second, intervals in
// words, sites as "Site — Customer" and no bare object id where a name exists; the site-mapping
// target and the circuit breaker are forms whose saves show in the stored configuration; a
// destructive button without its tick box changes nothing and says why.
// A screenshot of each step goes to target/browser-output/words-NN-*.png. Usage:
//   DESKBRIDGE_BIN=target/debug/deskbridge node crates/web/browser/words-flow.mjs
import { expect, failSetup, finish, launch, run, screenshotPrefix, start, step } from "./lib.mjs";

screenshotPrefix("words-");

// Chromium's ICU may still name the zone by its older name.
const ZONE = / Asia\/(Kolkata|Calcutta) \(UTC\+05:30\)$/;
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

/** The instant `iso` as Asia/Kolkata (UTC+05:30, no summer time) reads it, to the second. */
function kolkata(iso) {
  const d = new Date(new Date(iso).getTime() + 330 * 60_000);
  return d.toISOString().slice(0, 19).replace("T", " ");
}

let browser;
try {
  const emu = await start(["emulator", "--listen", "127.0.0.1:0", "--tenants", "1", "--users-per-tenant", "8"]);
  const app = emu.apps.find((a) => a.kind === "multi_tenant_secret");
  const server = await start(["serve", "--listen", "127.0.0.1:0"]);
  const base = server.url;
  const oneTime = server.first_admin.one_time_password;
  const password = "browser words password";
  const added = run(["connection", "add", "entra", "--name", "alpha", "--tenant-id", emu.tenants[0].id, "--client-id", app.client_id,
    "--client-secret-env", "WORDS_FLOW_SECRET", "--authority-host", emu.authority_host, "--graph-url", emu.graph_url,
    "--customer", "Alpha Ltd"], { WORDS_FLOW_SECRET: app.client_secret });
  if (added.status !== 0) { throw new Error(`connection add: ${added.stderr}`); }

  browser = await launch();
  const context = await browser.newContext({ timezoneId: "Asia/Kolkata", locale: "en-GB", viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  let connectionUrl = "";
  let mappingsApi = "";

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
    await page.goto(`${base}/connections`);
    await page.getByRole("link", { name: "alpha", exact: true }).click();
    await page.waitForURL(/\/connections\/\d+$/);
    connectionUrl = page.url();
    mappingsApi = connectionUrl.replace("/connections/", "/api/v1/connections/") + "/mappings";
  });

  await step(page, "sites read as site and customer", async () => {
    await page.goto(`${connectionUrl}/mappings/sites`);
    const options = await page.getByLabel("Desk site").locator("option").allTextContents();
    expect(options.includes("Main — Alpha Ltd"), `site picker ${options}`);
    const targets = await page.locator("#site-mappings tbody td").allTextContents();
    expect(targets.some((t) => t === "Main — Alpha Ltd"), `the table names the site and customer: ${targets}`);
    const text = await page.locator("main").innerText();
    expect(!UUID.test(text), `no bare id on the site mappings: ${text.match(UUID)}`);
  });

  await step(page, "the site target form saves", async () => {
    await page.getByLabel("Name", { exact: true }).fill("Offices");
    await page.getByLabel("Sequence").fill("20");
    await page.getByLabel("Where the users go").selectOption("customer_by_field");
    await page.getByLabel("Desk customer").selectOption({ label: "Alpha Ltd" });
    await page.getByLabel("Property that names the site").fill("officeLocation");
    await page.getByRole("button", { name: "Add site mapping" }).click();
    await page.getByText("Mappings saved").waitFor();
    await page.getByRole("cell", { name: "A site per value of officeLocation under Alpha Ltd (made when missing)" }).waitFor();
    const saved = await (await page.request.get(mappingsApi)).json();
    const offices = saved.site_mappings.find((m) => m.name === "Offices");
    expect(offices && offices.target.kind === "customer_by_field" && offices.target.field === "officeLocation" && offices.sequence === 20,
      `stored ${JSON.stringify(offices)}`);
  });

  await step(page, "a bad circuit breaker value is refused in words", async () => {
    await page.goto(`${connectionUrl}/mappings/advanced`);
    const share = page.getByLabel("Maximum share to deactivate (percent)");
    expect(await share.getAttribute("max") === "100", "bounded at 100");
    // Past the browser's own check, as a script or an old browser would send it.
    await share.evaluate((el) => { el.removeAttribute("max"); el.removeAttribute("min"); });
    await share.fill("150");
    await page.getByRole("button", { name: "Save circuit breaker" }).click();
    await page.getByText("Maximum share to deactivate must be a number more than 0 and at most 100.").waitFor();
    const saved = await (await page.request.get(mappingsApi)).json();
    expect(saved.circuit_breaker.max_deactivate_percent === 20, `unchanged ${JSON.stringify(saved.circuit_breaker)}`);
  });

  await step(page, "the circuit breaker form saves", async () => {
    await page.goto(`${connectionUrl}/mappings/advanced`);
    await page.getByLabel("Maximum share to deactivate (percent)").fill("35");
    await page.getByLabel("Always allow this many deactivations").fill("4");
    await page.getByRole("button", { name: "Save circuit breaker" }).click();
    await page.getByText("Mappings saved").waitFor();
    const saved = await (await page.request.get(mappingsApi)).json();
    expect(saved.circuit_breaker.max_deactivate_percent === 35 && saved.circuit_breaker.floor === 4, `stored ${JSON.stringify(saved.circuit_breaker)}`);
    const code = await page.getByLabel("Mappings (JSON)").inputValue();
    expect(code.includes('"max_deactivate_percent": 35'), "the JSON editor shows the change");
  });

  await step(page, "a run's times show in the viewer's zone", async () => {
    const synced = run(["sync", "--connection", "alpha"]);
    if (synced.status !== 0) { throw new Error(`sync: ${synced.stderr}`); }
    await page.goto(`${base}/runs`);
    const time = page.locator("#runs tbody tr").first().locator("time");
    const iso = await time.getAttribute("datetime");
    const shown = await time.innerText();
    expect(shown.startsWith(`${kolkata(iso)} `) && ZONE.test(shown), `${iso} shown as ${shown}`);
    expect((await time.getAttribute("title")).endsWith(" UTC"), "the UTC rendering stays as the title");
    await page.locator("#runs tbody tr").first().getByRole("link").first().click();
    await page.waitForURL(/\/runs\/\d+$/);
    const started = await page.locator("time").first().innerText();
    expect(ZONE.test(started), `run page ${started}`);
  });

  await step(page, "intervals read in words", async () => {
    await page.goto(`${connectionUrl}/agent`);
    await page.getByLabel("Every (e.g. 15m, 1h; or leave empty and give a cron expression)").fill("30m");
    await page.getByRole("button", { name: "Add schedule" }).click();
    await page.getByText(/Schedule \d+ added/).waitFor();
    const when = await page.locator("#schedules tbody tr").first().getByRole("cell").allTextContents();
    expect(when[1] === "every 30 minutes", `schedule ${when}`);
    expect(ZONE.test(when[5]), `next due ${when[5]}`);
    await page.goto(`${base}/runs`);
    const duration = (await page.locator("#runs tbody tr").first().getByRole("cell").allTextContents())[5];
    expect(/^\d+ (s|min|h|days?)( \d+ (s|min|h))?$/.test(duration), `run duration ${duration}`);
  });

  await step(page, "the directory names users' sites", async () => {
    await page.goto(`${connectionUrl}/directory/users`);
    const sites = await page.locator("#directory tbody tr td:nth-child(4)").allTextContents();
    expect(sites.length > 0 && sites.every((s) => s.endsWith(" — Alpha Ltd")), `sites ${sites}`);
    const text = await page.locator("#directory").innerText();
    expect(!UUID.test(text), `no bare id in the directory: ${text.match(UUID)}`);
  });

  await step(page, "a destructive button without its tick box changes nothing", async () => {
    await page.goto(`${connectionUrl}/agent`);
    const form = page.locator("form#reset");
    await form.getByText("Yes, forget the delta links: the next sync reads every record again").waitFor();
    await form.getByRole("button", { name: "Reset delta (next sync reads everything)" }).click();
    await page.getByRole("alert").getByText("Nothing was changed: tick the box to confirm the reset of the delta.").waitFor();
    const cursors = await page.locator("main").innerText();
    expect(!cursors.includes("cursors cleared"), "nothing was reset");
    const remove = page.locator("form[id^=remove-schedule-]").first();
    await remove.getByRole("button").click();
    await page.getByRole("alert").getByText(/Nothing was changed: tick the box to confirm the removal of schedule \d+/).waitFor();
    expect(await page.locator("#schedules tbody tr").count() === 1, "the schedule is still there");
  });

  await step(page, "with the tick box the removal happens", async () => {
    const remove = page.locator("form[id^=remove-schedule-]").first();
    await remove.getByRole("checkbox").check();
    await remove.getByRole("button").click();
    await page.getByText(/Schedule \d+ removed/).waitFor();
    expect(await page.locator("#schedules tbody td.empty").count() === 1, "no schedule left");
  });
} catch (e) {
  failSetup(e);
}
await finish(browser);
