// The admin UI's main flow in headless Chromium (the system's, never a downloaded one), against
// the emulator: sign in, add an Entra connection, authorise and check it, add a field and a site
// mapping, preview the import, run it and watch its progress, browse the users, set up asset
// import and import the managed devices, read the logs.
// A screenshot of each step goes to target/browser-output/. Usage:
//   DESKBRIDGE_BIN=target/debug/deskbridge node crates/web/browser/main-flow.mjs
import { expect, failSetup, finish, launch, start, step } from "./lib.mjs";

const seen = [];
async function remember(page) { seen.push(await page.content()); }

let browser;
try {
  // --auto-approve: the emulator's authorize page signs in at once (no password form to fill).
  const emu = await start(["emulator", "--listen", "127.0.0.1:0", "--tenants", "1", "--users-per-tenant", "25", "--auto-approve"]);
  const app = emu.apps.find((a) => a.kind === "multi_tenant_secret");
  const tenant = emu.tenants[0];
  const server = await start(["serve", "--listen", "127.0.0.1:0"]);
  const base = server.url;
  const oneTime = server.first_admin.one_time_password;
  const password = "browser test password";

  browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
  page.setDefaultTimeout(60_000);
  let connectionUrl = "";

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

  await step(page, "add an Entra connection", async () => {
    await page.goto(`${base}/connections`);
    await page.getByRole("link", { name: "Add a Microsoft Entra ID connection" }).click();
    await page.getByLabel("Connection name").fill("Contoso");
    await page.getByLabel("Tenant id").fill(tenant.id);
    await page.getByLabel("Client id").fill(app.client_id);
    await page.getByLabel("Client secret value").fill(app.client_secret);
    await page.getByLabel("Identity platform host").fill(emu.authority_host);
    await page.getByLabel("Graph URL").fill(emu.graph_url);
    await page.getByLabel("Authentication").selectOption("delegated");
    await page.getByRole("button", { name: "Add connection" }).click();
    await page.getByText("Connection added").waitFor();
    connectionUrl = page.url().split("?")[0];
    await remember(page);
  });

  await step(page, "authorise it", async () => {
    // Sign in with Microsoft: off to the (emulated) authorize endpoint and back to our callback.
    await page.getByRole("button", { name: "Sign in with Microsoft" }).click();
    await page.getByText("the connection is authorised").waitFor();
    await page.getByRole("button", { name: "Test connection" }).click();
    await page.getByText("Test passed").waitFor();
    await remember(page);
  });

  await step(page, "check it", async () => {
    await page.getByRole("link", { name: "Configuration check" }).click();
    const crosses = await page.locator("td.bad").count();
    expect(crosses === 0, `${crosses} checks failed`);
    expect(await page.locator("td.ok").count() >= 3, "three ticks");
  });

  await step(page, "add a field mapping", async () => {
    await page.getByRole("link", { name: "Field mappings" }).click();
    await page.getByLabel("Microsoft Entra property").fill("officeLocation");
    await page.getByLabel("Desk field").fill("creation_type");
    await page.getByRole("button", { name: "Add field mapping" }).click();
    await page.getByText("Mappings saved").waitFor();
  });

  await step(page, "add a site mapping", async () => {
    await page.getByRole("link", { name: "Site mappings" }).click();
    await page.getByLabel("Name", { exact: true }).fill("Everyone else");
    await page.getByLabel("Sequence").fill("90");
    await page.getByLabel("Desk site").selectOption({ index: 0 });
    await page.getByRole("button", { name: "Add site mapping" }).click();
    await page.getByText("Mappings saved").waitFor();
    await page.getByRole("cell", { name: "Everyone else" }).waitFor();
  });

  await step(page, "preview the import", async () => {
    await page.getByRole("link", { name: "Imports" }).click();
    await page.getByRole("button", { name: "Preview import" }).click();
    await page.getByText("What an import would do").waitFor();
    const rows = await page.locator("#preview tbody tr").count();
    expect(rows >= 25, `${rows} rows in the preview`);
    await remember(page);
  });

  await step(page, "run it and watch progress", async () => {
    await page.getByRole("button", { name: "Import", exact: true }).click();
    await page.waitForURL(/\/runs\/\d+$/);
    await page.locator("#run-finished").waitFor({ timeout: 120_000 });
    expect((await page.content()).includes("succeeded"), "the run succeeded");
  });

  await step(page, "browse the imported users", async () => {
    await page.getByRole("link", { name: "Imported users" }).click();
    const rows = await page.locator("#directory tbody tr").count();
    expect(rows >= 10, `${rows} users listed`);
    await remember(page);
  });

  await step(page, "set up asset import", async () => {
    await page.goto(`${connectionUrl}/mappings/assets`);
    await page.getByLabel("Import managed devices as assets").check();
    await page.getByLabel("Asset type", { exact: true }).selectOption("single");
    await page.getByLabel("Type name").fill("Managed device");
    await page.getByRole("button", { name: "Save asset settings" }).click();
    await page.getByText("Mappings saved").waitFor();
    await remember(page);
  });

  await step(page, "import managed devices", async () => {
    await page.getByRole("link", { name: "Imports" }).click();
    await page.getByRole("button", { name: "Import managed devices" }).click();
    await page.waitForURL(/\/runs\/\d+$/);
    await page.locator("#run-finished").waitFor({ timeout: 120_000 });
    expect((await page.content()).includes("succeeded"), "the asset run succeeded");
  });

  await step(page, "read the logs", async () => {
    await page.goto(`${connectionUrl}/logs`);
    expect(await page.locator("#log tbody tr").count() > 1, "inbound entries");
    await page.getByRole("link", { name: "Outbound" }).click();
    expect(await page.locator("#log tbody tr").count() > 1, "outbound entries");
    await remember(page);
  });

  await step(page, "secrets never come back and a CSRF-less POST is refused", async () => {
    for (const html of seen) {
      expect(!html.includes(app.client_secret), "the client secret appeared in a page");
    }
    const res = await page.request.post(`${connectionUrl}/cursors/reset`, { form: { x: "1" } });
    expect(res.status() === 403, `status ${res.status()}`);
  });
} catch (e) {
  failSetup(e);
} finally {
  await finish(browser);
}
