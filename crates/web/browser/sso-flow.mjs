// Single sign-on with a Microsoft work account in headless Chromium (the system's, never a
// downloaded one), against the emulated identity platform: an Entra connection imports one person
// of our tenant as a desk agent; the administrator turns single sign-on on (the app registration,
// our tenant allowed) on the Single sign-on page; the agent clicks "Sign in with Microsoft",
// completes the emulator's sign-in page and is told its account waits for an administrator; the
// administrator enables it; the agent signs in again and lands signed in as its account; a person
// of a tenant outside the list is refused with the tenant named.
// A screenshot of each step goes to target/browser-output/sso-NN-*.png. Usage:
//   DESKBRIDGE_BIN=target/debug/deskbridge node crates/web/browser/sso-flow.mjs
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, failSetup, finish, launch, run, screenshotPrefix, start, step } from "./lib.mjs";

screenshotPrefix("sso-");

/** The members of a tenant of the emulator, read from its Graph with the app's secret. */
async function members(emu, app, tenant) {
  const token = await fetch(`${emu.authority_host}/${tenant}/oauth2/v2.0/token`, {
    method: "POST",
    body: new URLSearchParams({ grant_type: "client_credentials", client_id: app.client_id, client_secret: app.client_secret, scope: "https://graph.microsoft.com/.default" }),
  }).then((r) => r.json());
  const users = await fetch(`${emu.graph_url}/users?$select=id,userPrincipalName,userType,accountEnabled`, {
    headers: { authorization: `Bearer ${token.access_token}` },
  }).then((r) => r.json());
  return users.value.filter((u) => u.userType === "Member" && u.accountEnabled);
}

/** "Sign in with Microsoft" on a fresh sign-in page, through the emulator's sign-in page. */
async function microsoftSignIn(page, base, upn) {
  await page.goto(`${base}/login`);
  await page.getByRole("link", { name: "Sign in with Microsoft" }).click();
  await page.getByLabel("Email or username").fill(upn);
  await page.getByLabel("Password").fill("emulator");
  await page.getByRole("button", { name: "Accept" }).click();
  await page.waitForLoadState();
}

let browser;
try {
  const emu = await start(["emulator", "--listen", "127.0.0.1:0", "--tenants", "2", "--users-per-tenant", "6"]);
  const app = emu.apps.find((a) => a.kind === "multi_tenant_secret");
  const [ours, theirs] = emu.tenants;
  const agent = (await members(emu, app, ours.id))[0];
  const outsider = (await members(emu, app, theirs.id))[0];

  // Import `agent` as a desk agent: an Entra connection whose `*agent*` site selects that one person.
  const env = { SSO_FLOW_SECRET: app.client_secret };
  const added = run(["connection", "add", "entra", "--name", "Ours", "--tenant-id", ours.id, "--client-id", app.client_id,
    "--client-secret-env", "SSO_FLOW_SECRET", "--authority-host", emu.authority_host, "--graph-url", emu.graph_url], env);
  if (added.status !== 0) { throw new Error(`connection add: ${added.stderr}`); }
  const mapping = JSON.parse(run(["mappings", "show", "--connection", "Ours"]).stdout);
  mapping.site_mappings = [{ id: 1, name: "Agents", sequence: 1, target: { kind: "agent", licence_type: "concurrent" }, filter: `userPrincipalName eq '${agent.userPrincipalName}'` }];
  const file = join(mkdtempSync(join(tmpdir(), "sso-flow-")), "mapping.json");
  writeFileSync(file, JSON.stringify(mapping));
  const saved = run(["mappings", "set", "--connection", "Ours", "--file", file]);
  if (saved.status !== 0) { throw new Error(`mappings set: ${saved.stderr}`); }
  const synced = run(["sync", "--connection", "Ours"]);
  if (synced.status !== 0) { throw new Error(`sync: ${synced.stderr}`); }

  const server = await start(["serve", "--listen", "127.0.0.1:0"]);
  const base = server.url;
  const oneTime = server.first_admin.one_time_password;
  const password = "browser sso admin password";

  browser = await launch();
  const newPage = async () => {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    context.setDefaultTimeout(60_000);
    return context.newPage();
  };
  const admin = await newPage();
  const person = await newPage();

  await step(person, "no Microsoft sign-in while single sign-on is off", async () => {
    await person.goto(`${base}/login`);
    expect(await person.getByRole("link", { name: "Sign in with Microsoft" }).count() === 0, "the button is shown");
  });

  await step(admin, "administrator turns single sign-on on for our tenant", async () => {
    await admin.goto(`${base}/login`);
    await admin.getByLabel("Username").fill("admin");
    await admin.getByLabel("Password").fill(oneTime);
    await admin.getByRole("button", { name: "Sign in" }).click();
    await admin.waitForURL(/\/account$/);
    await admin.getByLabel("Current password").fill(oneTime);
    await admin.getByLabel("New password", { exact: true }).fill(password);
    await admin.getByLabel("New password again").fill(password);
    await admin.getByRole("button", { name: "Change password" }).click();
    await admin.getByText("Your password was changed").waitFor();
    await admin.goto(`${base}/admin/sso`);
    expect((await admin.content()).includes(`${base}/auth/sso/callback`), "the redirect URI to register is shown");
    const settings = admin.locator("form#sso-settings");
    await settings.getByLabel("Client id").fill(app.client_id);
    await settings.getByLabel("Client secret").fill(app.client_secret);
    await settings.getByLabel("Authority").fill(emu.authority_host);
    await settings.getByLabel("Single sign-on is on").check();
    await settings.getByRole("button", { name: "Save" }).click();
    await admin.getByText("Saved: single sign-on is on.").waitFor();
    const allow = admin.locator("form#sso-allow");
    await allow.getByLabel("Tenant id").fill(ours.id);
    await allow.getByLabel("Note").fill("our own tenant");
    await allow.getByRole("button", { name: "Allow tenant" }).click();
    await admin.getByText(`Tenant ${ours.id} may sign in.`).waitFor();
    await admin.getByRole("cell", { name: "added by an administrator" }).waitFor();
    expect(!(await admin.content()).includes(app.client_secret), "the client secret came back in the page");
  });

  await step(person, "the imported agent's first sign-in makes an account for an administrator to enable", async () => {
    await microsoftSignIn(person, base, agent.userPrincipalName);
    const alert = (await person.getByRole("alert").textContent()) ?? "";
    expect(alert.includes("an administrator must enable it"), alert);
  });

  await step(admin, "administrator enables the agent's account", async () => {
    await admin.goto(`${base}/admin/accounts`);
    const form = admin.locator("form#enable-account");
    await form.getByLabel("Disabled account").selectOption({ label: agent.userPrincipalName.toLowerCase() });
    await form.getByRole("button", { name: "Enable account" }).click();
    await admin.getByText("is enabled: it can sign in again").waitFor();
    const row = await admin.getByRole("row").filter({ has: admin.getByRole("cell", { name: agent.userPrincipalName.toLowerCase(), exact: true }) })
      .getByRole("cell").allTextContents();
    expect(row.some((c) => c.includes(agent.id)), `the row shows the linked identity: ${row}`);
  });

  await step(person, "the agent signs in with Microsoft", async () => {
    await microsoftSignIn(person, base, agent.userPrincipalName);
    await person.waitForURL(/\/connections$/);
    expect((await person.content()).includes(agent.userPrincipalName.toLowerCase()), "signed in as the agent's account");
  });

  const outside = await newPage();
  await step(outside, "someone from a tenant outside the list is refused", async () => {
    await microsoftSignIn(outside, base, outsider.userPrincipalName);
    const alert = (await outside.getByRole("alert").textContent()) ?? "";
    expect(alert.includes(`tenant ${theirs.id} is not allowed`), alert);
  });
} catch (e) {
  failSetup(e);
} finally {
  await finish(browser);
}
