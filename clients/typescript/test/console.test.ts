// The operator's console (`GET /console`), end to end in Debian's Chromium through
// playwright-core: a page without credentials shows nothing; an operator signs in, events
// published through the API appear, the namespace filter works, an event's detail says who
// receives it, and explain answers with the rule. A screenshot is kept in build/console.png.
// Also: runtime/assets/console.js is what `npm run console` builds from console/console.ts.

import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { chromium, type Browser } from "playwright-core";

import { NodeWebSocket, order, payment, startServer, waitFor, type Server_ } from "./support.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

let server: Server_;
let browser: Browser;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: \`apt-get install -y chromium\`, or set CHROMIUM`);
  server = await startServer();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("runtime/assets/console.js is built from console/console.ts", async () => {
  const build = (await import(new URL("../../console/build.mjs", import.meta.url).href)) as {
    bundle(): Promise<string>;
    OUTPUT: string;
  };
  assert.ok(
    (await build.bundle()) === readFileSync(build.OUTPUT, "utf8"),
    "runtime/assets/console.js is stale: run `npm run console --prefix clients/typescript`",
  );
});

test("an operator sees the stream, filters it, learns who receives an event and why not", async () => {
  const tab = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  tab.on("pageerror", (err) => errors.push(err.message));
  await tab.goto(`${server.httpUrl}/console`);
  // Without credentials: the sign-in form, and nothing else.
  assert.equal(await tab.locator("#login").isVisible(), true);
  assert.equal(await tab.locator("#app").isVisible(), false);
  assert.equal(await tab.locator("#events li").count(), 0);

  await tab.fill("#token", server.token("ops", "admin"));
  await tab.fill("#key", server.apiKey);
  await tab.click("#login button[type=submit]");
  await tab.waitForFunction(() => document.getElementById("status")?.textContent === "connected", null, { timeout: 10_000 });

  // Another customer on payments: CUST-A's payment is kept from it (a `not_owner` in the figures).
  const customer = new NodeWebSocket(`${server.wsUrl}?token=${server.token("CUST-B", "customer")}&namespaces=payments`);
  let customerReady = false;
  customer.onmessage = () => (customerReady = true);
  await waitFor(() => customerReady, "the customer's ready");

  const ids = await server.publish([payment("CUST-A", 1), order(2), payment("CUST-B", 3)]);
  await tab.waitForFunction(
    (ids) => ids.every((id) => document.querySelector(`#events li[data-id="${id}"]`)),
    ids,
    { timeout: 10_000 },
  );

  await tab.selectOption("#filter-namespace", "payments");
  assert.equal(await tab.locator("#events li").count(), 2);
  await tab.fill("#filter-text", "CUST-B");
  assert.deepEqual(await tab.locator("#events li .id").allTextContents(), [ids[2]]);
  await tab.fill("#filter-text", "");

  // An event's detail: its envelope, and who receives it now (the console itself, an admin).
  await tab.click(`#events li[data-id="${ids[0]}"]`);
  await tab.waitForFunction(() => document.getElementById("recipients")?.textContent?.startsWith("Live connections"), null, { timeout: 10_000 });
  assert.match((await tab.locator("#recipients").textContent()) ?? "", /receive it now: 1 · admin 1/);
  assert.match((await tab.locator("#envelope").textContent()) ?? "", /"PAY-CUST-A-1"/);

  // Explain: another customer would not get CUST-A's payment.
  await tab.fill("#explain-form [name=user]", "CUST-B");
  await tab.selectOption("#explain-role", "customer");
  await tab.click("#explain-form button");
  await tab.waitForFunction(() => (document.getElementById("explain-answer")?.textContent ?? "").length > 0, null, { timeout: 10_000 });
  assert.match((await tab.locator("#explain-answer").textContent()) ?? "", /^not delivered \(not_owner\): `customer` sees only its own events/);

  // The node's figures, from /metrics.
  await tab.waitForFunction(() => (document.getElementById("connections")?.textContent ?? "").includes("admin"), null, { timeout: 10_000 });
  await tab.waitForFunction(() => (document.getElementById("reasons")?.textContent ?? "").includes("not_owner"), null, { timeout: 10_000 });
  customer.close();

  mkdirSync(here("../../build"), { recursive: true });
  await tab.screenshot({ path: here("../../build/console.png"), fullPage: true });
  // The console carries no catalog: it shows the node's.
  assert.match((await tab.locator("#catalog").textContent()) ?? "", /^catalog [0-9a-f]{16}$/);
  assert.deepEqual(errors, []);
  await tab.close();
});
