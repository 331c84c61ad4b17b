// The admin UI's security rules in headless Chromium (the system's, never a downloaded one), as
// an administrator and an agent see them: an agent with "can configure connections" and "read
// and modify" on an Entra connection is offered no CSP connection and may not move the
// connection's endpoints; failed sign-ins lock an account until an administrator unlocks it;
// `next` never leads off the site; a password change revokes the account's API tokens; no
// secret ever comes back in a page.
// A screenshot of each step goes to target/browser-output/security-NN-*.png. Usage:
//   DESKBRIDGE_BIN=target/debug/deskbridge node crates/web/browser/security-flow.mjs
import { expect, failSetup, finish, launch, screenshotPrefix, start, step } from "./lib.mjs";

screenshotPrefix("security-");

// Every HTML page any context was sent, to look for secrets in at the end.
const pages = [];
function recordPages(context) {
  context.on("response", (res) => {
    if ((res.headers()["content-type"] ?? "").startsWith("text/html")) {
      pages.push(res.text().then((html) => ({ url: res.url(), html }), () => null));
    }
  });
}

async function signIn(page, base, username, password, path = "/login") {
  await page.goto(`${base}${path}`);
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

let browser;
try {
  const emu = await start(["emulator", "--listen", "127.0.0.1:0", "--tenants", "1", "--users-per-tenant", "5", "--auto-approve"]);
  const app = emu.apps.find((a) => a.kind === "multi_tenant_secret");
  const tenant = emu.tenants[0];
  const server = await start(["serve", "--listen", "127.0.0.1:0"]);
  const base = server.url;
  const origin = new URL(base).origin;
  const adminOneTime = server.first_admin.one_time_password;
  const adminPassword = "browser admin password";
  const agentPasswords = ["agent password number one", "agent password number two"];
  let agentOneTime = "";
  let apiToken = "";
  let connectionUrl = "";
  const cspLabel = "Microsoft CSP (Partner Center with GDAP)";

  browser = await launch();
  const newContext = async () => {
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    context.setDefaultTimeout(60_000);
    recordPages(context);
    return context;
  };
  const admin = await (await newContext()).newPage();
  const agentContext = await newContext();
  const agent = await agentContext.newPage();

  // 1. The administrator sets up an agent and a connection it may modify.
  await step(admin, "administrator signs in and sets a password", async () => {
    await signIn(admin, base, "admin", adminOneTime, "/");
    await admin.waitForURL(/\/account$/);
    await changePassword(admin, adminOneTime, adminPassword);
  });

  await step(admin, "administrator adds an agent that can configure connections", async () => {
    await admin.getByRole("link", { name: "Accounts" }).click();
    const form = admin.locator("form#new-account");
    await form.getByLabel("Username").fill("agent");
    await form.getByLabel("Role").selectOption("agent");
    await form.getByLabel("Can configure Entra connections").check();
    await form.getByRole("button", { name: "Add account" }).click();
    await admin.getByText("Account agent created with a one-time password.").waitFor();
    agentOneTime = (await admin.locator("#shown-once").textContent()) ?? "";
    expect(agentOneTime.length >= 12, `one-time password ${JSON.stringify(agentOneTime)}`);
    const row = admin.getByRole("row").filter({ has: admin.getByRole("cell", { name: "agent", exact: true }) });
    const cells = await row.getByRole("cell").allTextContents();
    expect(cells[1] === "agent" && cells[2] === "yes" && cells[3] === "must set a password", `agent row ${cells}`);
  });

  await step(admin, "administrator adds an Entra connection", async () => {
    await admin.goto(`${base}/connections`);
    // An administrator is offered CSP connections (the agent, below, is not).
    await admin.getByRole("link", { name: `Add a ${cspLabel} connection` }).waitFor();
    await admin.getByRole("link", { name: "Add a Microsoft Entra ID connection" }).click();
    await admin.getByLabel("Connection name").fill("Contoso");
    await admin.getByLabel("Tenant id").fill(tenant.id);
    await admin.getByLabel("Client id").fill(app.client_id);
    await admin.getByLabel("Client secret value").fill(app.client_secret);
    await admin.getByLabel("Identity platform host").fill(emu.authority_host);
    await admin.getByLabel("Graph URL").fill(emu.graph_url);
    await admin.getByLabel("Authentication").selectOption("delegated");
    await admin.getByRole("button", { name: "Add connection" }).click();
    await admin.getByText("Connection added").waitFor();
    connectionUrl = admin.url().split("?")[0];
  });

  await step(admin, "administrator grants the agent read and modify", async () => {
    const form = admin.locator("form#access");
    await form.getByLabel("Agent", { exact: true }).selectOption({ label: "agent" });
    await form.getByLabel("Access", { exact: true }).selectOption({ label: "Read and modify" });
    await form.getByRole("button", { name: "Set access" }).click();
    await admin.getByText("Access saved.").waitFor();
    const cells = await admin.locator("section", { has: admin.getByRole("heading", { name: "Access", exact: true }) })
      .getByRole("cell").allTextContents();
    expect(cells.join("|") === "agent|modify", `access table ${cells}`);
  });

  // 2. The agent: no CSP connections, no endpoint changes.
  await step(agent, "agent signs in with its one-time password and sets its own", async () => {
    await signIn(agent, base, "agent", agentOneTime);
    await agent.waitForURL(/\/account$/);
    expect((await alertText(agent)).includes("You signed in with a one-time password"), "asked to choose a password");
    await changePassword(agent, agentOneTime, agentPasswords[0]);
  });

  await step(agent, "agent is offered no CSP connection and its form is refused", async () => {
    await agent.goto(`${base}/connections`);
    await agent.getByRole("link", { name: "Contoso" }).waitFor();
    const row = await agent.getByRole("row").filter({ hasText: "Contoso" }).getByRole("cell").allTextContents();
    expect(row.includes("read and modify"), `connection row ${row}`);
    // Can configure connections: Entra ones, not CSP ones.
    await agent.getByRole("link", { name: "Add a Microsoft Entra ID connection" }).waitFor();
    const csp = await agent.getByRole("link", { name: /CSP/ }).count();
    expect(csp === 0, `${csp} CSP links offered to an agent`);
    const res = await agent.goto(`${base}/connections/new?kind=csp`);
    expect(res.status() === 403, `the CSP form answered ${res.status()}`);
    await agent.getByRole("heading", { name: "Not allowed" }).waitFor();
    const text = await alertText(agent);
    expect(text.includes(`an administrator must add ${cspLabel} connections`), `the 403 page says ${text}`);
    expect(await agent.getByLabel("Tenant id").count() === 0, "no form on the 403 page");
  });

  for (const [label, moved] of [["Graph URL", "http://127.0.0.1:9/v1.0"], ["Identity platform host", "http://127.0.0.1:9"]]) {
    let before = "";
    await step(agent, `agent's change of the ${label} is refused`, async () => {
      await agent.goto(connectionUrl);
      const form = agent.locator("form#details");
      before = await form.getByLabel(label, { exact: true }).inputValue();
      expect(before !== "" && before !== moved, `${label} shows ${before}`);
      await form.getByLabel(label, { exact: true }).fill(moved);
      await form.getByRole("button", { name: "Save details" }).click();
      await agent.getByRole("alert").waitFor();
      const text = await alertText(agent);
      expect(text.startsWith(`${label}: only an administrator may change a connection's endpoints`), `refusal says ${text}`);
    });
    await step(agent, `the ${label} is unchanged`, async () => {
      expect(before !== "", "the value before is known");
      await agent.goto(connectionUrl);
      const after = await agent.locator("form#details").getByLabel(label, { exact: true }).inputValue();
      expect(after === before, `${label} is now ${after}, was ${before}`);
      const shown = await agent.getByRole("row").filter({ has: agent.getByRole("cell", { name: label, exact: true }) })
        .getByRole("cell").allTextContents();
      expect(shown[1] === before, `the details table shows ${shown}`);
    });
  }

  // 3. Sign-in limits: the fifth failure in a row locks the account (crates/web/src/auth.rs).
  const lockedContext = await newContext();
  const locked = await lockedContext.newPage();
  await step(locked, "five wrong passwords lock the agent's account", async () => {
    for (let attempt = 1; attempt <= 5; attempt += 1) {
      await signIn(locked, base, "agent", `wrong password ${attempt}`);
      const text = await alertText(locked);
      expect(text.startsWith("Wrong username or password."), `attempt ${attempt}: ${text}`);
      const says = text.includes("Too many failed sign-ins for this account");
      expect(says === (attempt === 5), `attempt ${attempt} ${says ? "locks" : "does not lock"}: ${text}`);
    }
    expect((await alertText(locked)).includes("try again in 1 minute, or ask an administrator to unlock the account"), "says how to get in");
  });

  await step(locked, "the right password is refused while locked", async () => {
    await signIn(locked, base, "agent", agentPasswords[0]);
    expect(new URL(locked.url()).pathname === "/login", `at ${locked.url()}`);
    const text = await alertText(locked);
    expect(text.startsWith("Too many failed sign-ins for this account"), `says ${text}`);
  });

  await step(admin, "administrator sees the lock and unlocks the agent", async () => {
    await admin.goto(`${base}/admin/accounts`);
    const row = await admin.getByRole("row").filter({ has: admin.getByRole("cell", { name: "agent", exact: true }) })
      .getByRole("cell").allTextContents();
    expect(row[4].startsWith("locked until") && row[4].includes("(5 failed in a row)"), `sign-in cell ${row[4]}`);
    await admin.getByRole("button", { name: "Unlock agent" }).click();
    await admin.getByText("agent is unlocked: it can sign in again now.").waitFor();
    expect(await admin.getByRole("button", { name: "Unlock agent" }).count() === 0, "the unlock button is gone");
  });

  await step(locked, "the agent signs in again", async () => {
    await signIn(locked, base, "agent", agentPasswords[0]);
    await locked.waitForURL(/\/connections$/);
    await locked.getByRole("link", { name: "Contoso" }).waitFor();
  });

  // 4. `next` never leads to another site.
  for (const next of ["https://evil.example/", "//evil.example", "/\\evil"]) {
    const context = await newContext();
    // Were the browser sent off the site, it would land here (and not on the network).
    await context.route((url) => url.origin !== origin, (route) => route.fulfill({ status: 200, contentType: "text/plain", body: "off site" }));
    const page = await context.newPage();
    await step(page, `next=${next} stays on this site`, async () => {
      await signIn(page, base, "agent", agentPasswords[0], `/login?next=${encodeURIComponent(next)}`);
      await page.waitForURL((url) => url.pathname !== "/login" || url.origin !== origin);
      const url = new URL(page.url());
      expect(url.origin === origin && url.pathname === "/connections", `landed on ${page.url()}`);
      await page.getByRole("heading", { name: "Connections" }).waitFor();
    });
    await context.close();
  }

  // 5. A password change revokes the account's API tokens unless told to keep them.
  const me = (token) => fetch(`${base}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
  await step(agent, "agent creates an API token", async () => {
    await agent.goto(`${base}/account`);
    await agent.getByLabel("Token name").fill("nightly script");
    await agent.getByRole("button", { name: "Create token" }).click();
    await agent.getByText("Token created.").waitFor();
    apiToken = (await agent.locator("#shown-once").textContent()) ?? "";
    expect(apiToken.length >= 20, "a token is shown once");
    await agent.getByRole("cell", { name: "nightly script" }).waitFor();
    const res = await me(apiToken);
    expect(res.status === 200, `the token answers ${res.status}`);
  });

  await step(agent, "changing the password offers to revoke the token, and does", async () => {
    await agent.goto(`${base}/account`);
    const choice = agent.getByLabel("Your 1 API token(s)");
    expect(await choice.inputValue() === "revoke", "revoking is the default");
    const options = await choice.locator("option").allTextContents();
    expect(options.join("|") === "Revoke them (recommended)|Keep them", `options ${options}`);
    await changePassword(agent, agentPasswords[0], agentPasswords[1]);
    const flash = (await agent.getByRole("status").textContent()) ?? "";
    expect(flash.includes("1 API token(s) were revoked"), `says ${flash}`);
    expect(flash.includes("other session(s) were signed out"), `says ${flash}`);
    expect(await agent.getByRole("cell", { name: "nightly script" }).count() === 0, "the token is no longer listed");
    expect(await agent.getByLabel(/API token\(s\)/).count() === 0, "no tokens left to choose about");
    const res = await me(apiToken);
    expect(res.status === 401, `the revoked token answers ${res.status}`);
    // The lock context's session was one of the others.
    await locked.goto(`${base}/connections`);
    expect(new URL(locked.url()).pathname === "/login", `the other session is at ${locked.url()}`);
  });

  // 6. Secrets never come back.
  await step(agent, "secrets never appear in a page", async () => {
    const seen = (await Promise.all(pages)).filter(Boolean);
    expect(seen.length >= 20, `${seen.length} pages seen`);
    for (const secret of [app.client_secret, adminOneTime, adminPassword, ...agentPasswords]) {
      const bad = seen.filter((p) => p.html.includes(secret)).map((p) => p.url);
      expect(bad.length === 0, `a secret appeared in ${bad}`);
    }
    // Shown once, on the page that made it, and never again.
    for (const [what, secret] of [["the agent's one-time password", agentOneTime], ["the API token", apiToken]]) {
      const shown = seen.filter((p) => p.html.includes(secret));
      expect(shown.length === 1 && shown[0].html.includes('id="shown-once"'), `${what} appeared in ${shown.length} pages`);
    }
  });
} catch (e) {
  failSetup(e);
} finally {
  await finish(browser);
}
