// Looking after accounts in headless Chromium (the system's, never a downloaded one), as an
// administrator and an agent see it: the administrator resets the agent's password (a tick box
// confirms it; the one-time password is shown once; the agent's session ends and it must choose
// a new password), disables the agent (its session ends, its API token is refused, and the
// sign-in page says the account is disabled whether the password is right or not), cannot pick
// itself to reset or disable, and enables the agent again.
// A screenshot of each step goes to target/browser-output/accounts-NN-*.png. Usage:
//   DESKBRIDGE_BIN=target/debug/deskbridge node crates/web/browser/accounts-flow.mjs
import { expect, failSetup, finish, launch, screenshotPrefix, start, step } from "./lib.mjs";

screenshotPrefix("accounts-");

async function signIn(page, base, username, password) {
  await page.goto(`${base}/login`);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  // Whatever the answer (another sign-in form, or a page of the site), its CSRF token is new.
  const form = await page.locator('form#login input[name="csrf"]').inputValue();
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForFunction((old) => document.querySelector('input[name="csrf"]')?.value !== old, form);
  await page.waitForLoadState();
}

async function changePassword(page, current, next) {
  await page.getByLabel("Current password").fill(current);
  await page.getByLabel("New password", { exact: true }).fill(next);
  await page.getByLabel("New password again").fill(next);
  await page.getByRole("button", { name: "Change password" }).click();
  await page.getByText("Your password was changed").waitFor();
}

async function alertText(page) {
  return (await page.getByRole("alert").textContent()) ?? "";
}

async function statusText(page) {
  return (await page.getByRole("status").textContent()) ?? "";
}

/** The cells of the accounts table's row for `username`. */
async function accountRow(page, username) {
  return page.getByRole("row").filter({ has: page.getByRole("cell", { name: username, exact: true }) })
    .getByRole("cell").allTextContents();
}

let browser;
try {
  const server = await start(["serve", "--listen", "127.0.0.1:0"]);
  const base = server.url;
  const adminOneTime = server.first_admin.one_time_password;
  const adminPassword = "browser admin password";
  const agentPasswords = ["agent password number one", "agent password number two"];
  let agentOneTime = "";
  let resetOneTime = "";
  let apiToken = "";
  const me = (token) => fetch(`${base}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });

  browser = await launch();
  const newPage = async () => {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    context.setDefaultTimeout(60_000);
    return context.newPage();
  };
  const admin = await newPage();
  const agent = await newPage();

  await step(admin, "administrator signs in, sets a password and adds an agent", async () => {
    await signIn(admin, base, "admin", adminOneTime);
    await admin.waitForURL(/\/account$/);
    await changePassword(admin, adminOneTime, adminPassword);
    await admin.getByRole("link", { name: "Accounts" }).click();
    const form = admin.locator("form#new-account");
    await form.getByLabel("Username").fill("agent");
    await form.getByLabel("Role").selectOption("agent");
    await form.getByRole("button", { name: "Add account" }).click();
    await admin.getByText("Account agent created with a one-time password.").waitFor();
    agentOneTime = (await admin.locator("#shown-once").textContent()) ?? "";
    expect(agentOneTime.length >= 12, `one-time password ${JSON.stringify(agentOneTime)}`);
  });

  await step(agent, "agent sets its password and creates an API token", async () => {
    await signIn(agent, base, "agent", agentOneTime);
    await agent.waitForURL(/\/account$/);
    await changePassword(agent, agentOneTime, agentPasswords[0]);
    await agent.getByLabel("Token name").fill("nightly script");
    await agent.getByRole("button", { name: "Create token" }).click();
    await agent.getByText("Token created.").waitFor();
    apiToken = (await agent.locator("#shown-once").textContent()) ?? "";
    const res = await me(apiToken);
    expect(res.status === 200, `the token answers ${res.status}`);
  });

  await step(admin, "the accounts page shows each account's last sign-in", async () => {
    await admin.goto(`${base}/admin/accounts`);
    const headers = await admin.getByRole("columnheader").allTextContents();
    const at = headers.indexOf("Last signed in");
    expect(at > 0, `headers ${headers}`);
    const row = await accountRow(admin, "agent");
    expect(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d /.test(row[at]), `agent's last sign-in, to the second in the viewer's zone: ${row[at]}`);
  });

  await step(admin, "a reset needs the tick box", async () => {
    const form = admin.locator("form#reset-password");
    await form.getByLabel("Account").selectOption({ label: "agent" });
    await form.getByRole("button", { name: "Reset password" }).click();
    const text = await alertText(admin);
    expect(text.includes("Tick the box to confirm the reset of agent's password."), `says ${text}`);
    expect(await admin.locator("#shown-once").count() === 0, "no password without the tick");
  });

  await step(admin, "administrator resets the agent's password", async () => {
    const form = admin.locator("form#reset-password");
    await form.getByLabel("Account").selectOption({ label: "agent" });
    await form.getByLabel("Yes, replace its password and sign it out everywhere").check();
    await form.getByRole("button", { name: "Reset password" }).click();
    await admin.getByText("agent's password was reset and its sessions ended.").waitFor();
    resetOneTime = (await admin.locator("#shown-once").textContent()) ?? "";
    expect(resetOneTime.length >= 12 && resetOneTime !== agentOneTime, `one-time password ${JSON.stringify(resetOneTime)}`);
    const row = await accountRow(admin, "agent");
    expect(row[3] === "must set a password", `state ${row[3]}`);
  });

  await step(agent, "the agent's session ended; its old password no longer works", async () => {
    await agent.goto(`${base}/connections`);
    expect(new URL(agent.url()).pathname === "/login", `at ${agent.url()}`);
    await signIn(agent, base, "agent", agentPasswords[0]);
    const text = await alertText(agent);
    expect(text.startsWith("Wrong username or password."), `says ${text}`);
  });

  await step(agent, "the agent signs in with the one-time password and chooses a new one", async () => {
    await signIn(agent, base, "agent", resetOneTime);
    await agent.waitForURL(/\/account$/);
    expect((await alertText(agent)).includes("You signed in with a one-time password"), "asked to choose a password");
    // Keep the token this time: disabling the account, next, must stop it on its own.
    await agent.getByLabel("Your 1 API token(s)").selectOption({ label: "Keep them" });
    await changePassword(agent, resetOneTime, agentPasswords[1]);
    const res = await me(apiToken);
    expect(res.status === 200, `the kept token answers ${res.status}`);
  });

  await step(admin, "administrator cannot pick itself to reset or disable", async () => {
    await admin.goto(`${base}/admin/accounts`);
    for (const form of ["form#reset-password", "form#disable-account"]) {
      const options = await admin.locator(form).getByLabel("Account").locator("option").allTextContents();
      expect(options.includes("agent") && !options.includes("admin"), `${form} offers ${options}`);
    }
  });

  await step(admin, "administrator disables the agent", async () => {
    const form = admin.locator("form#disable-account");
    await form.getByLabel("Account").selectOption({ label: "agent" });
    await form.getByLabel("Yes, disable it and sign it out").check();
    await form.getByRole("button", { name: "Disable account" }).click();
    const flash = await statusText(admin);
    expect(flash.includes("agent is disabled: it is signed out, cannot sign in and its API tokens are refused."), `says ${flash}`);
    const row = await accountRow(admin, "agent");
    expect(row[3] === "disabled", `state ${row[3]}`);
    const res = await me(apiToken);
    expect(res.status === 401, `the disabled account's token answers ${res.status}`);
  });

  await step(agent, "the disabled agent is signed out and told so at sign-in", async () => {
    await agent.goto(`${base}/connections`);
    expect(new URL(agent.url()).pathname === "/login", `at ${agent.url()}`);
    // The same answer whether the password is right or not.
    for (const password of [agentPasswords[1], "not the password"]) {
      await signIn(agent, base, "agent", password);
      expect(new URL(agent.url()).pathname === "/login", `at ${agent.url()}`);
      const text = await alertText(agent);
      expect(text === "This account is disabled. Ask an administrator to enable it again.", `says ${text}`);
    }
  });

  await step(admin, "administrator enables the agent again", async () => {
    const form = admin.locator("form#enable-account");
    await form.getByLabel("Disabled account").selectOption({ label: "agent" });
    await form.getByRole("button", { name: "Enable account" }).click();
    const flash = await statusText(admin);
    expect(flash.includes("agent is enabled: it can sign in again."), `says ${flash}`);
    expect(await admin.locator("form#enable-account").count() === 0, "no disabled account is left to enable");
  });

  await step(agent, "the agent signs in again", async () => {
    await signIn(agent, base, "agent", agentPasswords[1]);
    await agent.waitForURL(/\/connections$/);
    await agent.getByRole("heading", { name: "Connections" }).waitFor();
    const res = await me(apiToken);
    expect(res.status === 200, `the token answers ${res.status} once the account is enabled`);
  });
} catch (e) {
  failSetup(e);
} finally {
  await finish(browser);
}
