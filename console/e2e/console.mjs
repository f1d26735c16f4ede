// The console in a real browser (Debian's chromium, driven by
// playwright-core), against a running system. Driven by
// ingress/tests/api/console.rs, which owns the system: this script asks it
// for what only the system can do with a line on stdout (`need-order`,
// `watching`) and reads the answer on stdin.
//
// Environment: OF_E2E_BASE (the ingress), OF_E2E_CHROMIUM, OF_E2E_SHOTS
// (where screenshots go), OF_E2E_CUSTOMER, OF_E2E_ADMIN, OF_E2E_PASSWORD,
// OF_E2E_OTHER_ORDER (another user's order).

import { readFileSync, mkdirSync } from "node:fs";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("OF_E2E_BASE");
const shots = env("OF_E2E_SHOTS");
mkdirSync(shots, { recursive: true });
const axeSource = readFileSync(new URL("../node_modules/axe-core/axe.min.js", import.meta.url), "utf8");

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const ask = async (what) => {
  console.log(what);
  const { value, done } = await lines.next();
  if (done) throw new Error(`no answer to ${what}`);
  return value.trim();
};

const browser = await chromium.launch({
  executablePath: env("OF_E2E_CHROMIUM"),
  args: ["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
});
const violations = [];
const cspErrors = [];

async function newPage(viewport = { width: 1280, height: 900 }) {
  const page = await browser.newPage({ viewport });
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) cspErrors.push(m.text());
  });
  page.on("pageerror", (e) => cspErrors.push(`page error: ${e.message}`));
  return page;
}

/** axe-core on the page as it is: serious and critical violations fail the run. */
async function accessible(page, name) {
  // evaluate() runs over the DevTools protocol, not as a page script: the
  // CSP (no inline scripts) stays in force for the page itself.
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  for (const v of result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")) {
    violations.push(`${name}: ${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  }
}

async function signIn(page, email) {
  await page.goto(`${base}/console/`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(env("OF_E2E_PASSWORD"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { level: 1 }).filter({ hasText: /orders/i }).waitFor();
}

const step = (text) => console.error(`e2e: ${text}`);

try {
  // Signing in, with a wrong password first: a clear error.
  const page = await newPage();
  await page.goto(`${base}/console/`);
  await accessible(page, "sign in");
  await page.screenshot({ path: `${shots}/sign-in.png`, fullPage: true });
  await page.getByLabel("Email").fill(env("OF_E2E_CUSTOMER"));
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").waitFor();
  step(`wrong password: ${await page.getByRole("alert").innerText()}`);

  await signIn(page, env("OF_E2E_CUSTOMER"));
  await accessible(page, "my orders");
  await page.screenshot({ path: `${shots}/my-orders.png`, fullPage: true });

  // An order placed through the API turns CONFIRMED on its page, live.
  const order = await ask("need-order");
  await page.goto(`${base}/console/#/orders/${order}`);
  await page.getByText("PENDING", { exact: true }).first().waitFor();
  await page.getByText("Live: changes show as they happen.").waitFor();
  await page.evaluate(() => (window.__notReloaded = true));
  await ask("watching");
  await page.locator("h1 .status", { hasText: "CONFIRMED" }).waitFor({ timeout: 60_000 });
  if (!(await page.evaluate(() => window.__notReloaded === true))) throw new Error("the page reloaded");
  step("the order turned CONFIRMED without a reload");
  await accessible(page, "order (customer)");
  await page.screenshot({ path: `${shots}/order-customer.png`, fullPage: true });

  // Another user's order: nothing of it.
  await page.goto(`${base}/console/#/orders/${env("OF_E2E_OTHER_ORDER")}`);
  await page.getByRole("alert").filter({ hasText: "belongs to another user" }).waitFor();
  const text = await page.locator("main").innerText();
  if (text.includes(env("OF_E2E_OTHER_ORDER").slice(0, 8)) && text.includes("Total")) throw new Error("another user's order is shown");
  await accessible(page, "another user's order");
  await page.screenshot({ path: `${shots}/not-yours.png`, fullPage: true });
  // The catalog, with its stock.
  await page.getByRole("link", { name: "Products" }).click();
  await page.getByRole("cell", { name: "sku-1500", exact: true }).waitFor();
  await accessible(page, "products");
  await page.screenshot({ path: `${shots}/products.png`, fullPage: true });
  // Their own profile; no admin pages in their navigation.
  await page.getByRole("link", { name: "My profile" }).click();
  await page.getByTestId("user-state").filter({ hasText: "active" }).waitFor();
  if (await page.getByRole("link", { name: "Users" }).count()) throw new Error("a user is offered the users page");
  await accessible(page, "my profile");
  await page.screenshot({ path: `${shots}/my-profile.png`, fullPage: true });
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: /sign in/i }).waitFor();

  // An admin refunds part of it, and sees the refund on the timeline.
  await signIn(page, env("OF_E2E_ADMIN"));
  // An access token that no longer counts is renewed with the refresh token.
  await page.evaluate(() => {
    const session = JSON.parse(sessionStorage.getItem("orderflow.session"));
    session.token = "a-token-that-no-longer-counts";
    sessionStorage.setItem("orderflow.session", JSON.stringify(session));
  });
  await page.reload();
  await page.locator("tbody tr").first().waitFor();
  step("a dead access token was renewed");
  await accessible(page, "orders (admin)");
  await page.screenshot({ path: `${shots}/orders-admin.png`, fullPage: true });
  await page.goto(`${base}/console/#/orders/${order}`);
  await page.getByText("CAPTURED", { exact: true }).waitFor({ timeout: 60_000 });
  await page.getByLabel(/Refund amount/).fill("1.00");
  await page.getByRole("button", { name: "Refund", exact: true }).click();
  await page.getByText("Refund: done").waitFor({ timeout: 30_000 });
  await page.getByTestId("payment-status").filter({ hasText: "PARTIALLY_REFUNDED" }).waitFor();
  await page.locator(".timeline li", { hasText: "Payment refunded" }).waitFor({ timeout: 30_000 });
  step("refunded in part; the refund is on the timeline");
  // An illegal transition is refused, by name.
  await page.getByRole("button", { name: "Mark shipped" }).click();
  await page.getByText("Ship: done").waitFor({ timeout: 30_000 });
  await accessible(page, "order (admin)");
  await page.screenshot({ path: `${shots}/order-admin.png`, fullPage: true });

  // Users: search, open, deactivate.
  await page.getByRole("link", { name: "Users" }).click();
  await page.getByLabel("Email or name contains").fill("console.other");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("link", { name: "console.other@example.com" }).click();
  await page.getByTestId("user-state").filter({ hasText: "active" }).waitFor();
  await accessible(page, "users");
  await page.screenshot({ path: `${shots}/users.png`, fullPage: true });
  await page.getByRole("button", { name: "Deactivate" }).click();
  await page.getByText("Deactivate: done.").waitFor({ timeout: 30_000 });
  await page.getByTestId("user-state").filter({ hasText: "deactivated" }).waitFor();
  await accessible(page, "user");
  await page.screenshot({ path: `${shots}/user.png`, fullPage: true });

  // Audit: verify the chains, search by type.
  await page.getByRole("link", { name: "Audit log" }).click();
  await page.getByRole("button", { name: "Verify the hash chains" }).click();
  await page.getByText(/^Intact: /).waitFor({ timeout: 30_000 });
  await page.getByLabel("Message type").fill("PaymentRefunded");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("cell", { name: "PaymentRefunded" }).first().waitFor();
  await accessible(page, "audit");
  await page.screenshot({ path: `${shots}/audit.png`, fullPage: true });

  // The bus: every probed process ready, the groups and dead letters listed.
  await page.getByRole("link", { name: "Bus" }).click();
  await page.getByRole("cell", { name: "order-service", exact: true }).waitFor({ timeout: 30_000 });
  const notReady = await page.getByText("NOT READY").count();
  if (notReady) throw new Error(`${notReady} processes not ready on the bus page`);
  await page.getByRole("cell", { name: /payment-service/ }).first().waitFor();
  await page.getByText(/orders\.commands\.dlq: /).first().waitFor();
  await accessible(page, "bus");
  await page.screenshot({ path: `${shots}/bus.png`, fullPage: true });

  // On a phone's width.
  const phone = await newPage({ width: 390, height: 844 });
  await phone.goto(`${base}/console/`);
  await phone.evaluate((s) => sessionStorage.setItem("orderflow.session", s), await page.evaluate(() => sessionStorage.getItem("orderflow.session")));
  await phone.goto(`${base}/console/#/orders/${order}`);
  await phone.reload();
  await phone.getByRole("heading", { level: 1 }).waitFor();
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  if (overflow) throw new Error("the order page is wider than a phone");
  await accessible(phone, "order (phone)");
  await phone.screenshot({ path: `${shots}/order-phone.png`, fullPage: true });

  if (cspErrors.length) throw new Error(`the browser reported:\n${cspErrors.join("\n")}`);
  if (violations.length) throw new Error(`serious accessibility violations:\n${violations.join("\n")}`);
  console.log("done");
} finally {
  await browser.close();
}
process.exit(0);
