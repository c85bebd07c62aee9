// End to end in a real browser: Debian's Chromium, driven by playwright-core (no downloaded
// browser), loads a page using `useWebSocket` + `useEvent` from a loopback origin. The page shows
// the events its customer's token allows and no others, and keeps receiving after its connection
// is cut and restored.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";
import { chromium, type Browser } from "playwright-core";

import { order, payment, startProxy, startServer, waitFor, type Proxy, type Server_ } from "./support.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

let server: Server_;
let proxy: Proxy;
let page: Server;
let pageUrl: string;
let browser: Browser;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: \`apt-get install -y chromium\`, or set CHROMIUM`);
  server = await startServer();
  proxy = await startProxy(server.port);
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL("../../test/page/app.ts", import.meta.url))],
    bundle: true,
    write: false,
    format: "esm",
    define: { "process.env.NODE_ENV": '"development"' },
    logLevel: "silent",
  });
  const script = bundle.outputFiles[0]!.contents;
  page = createServer((request, response) => {
    if (request.url?.startsWith("/app.js")) {
      response.writeHead(200, { "content-type": "text/javascript" }).end(script);
    } else {
      response.writeHead(200, { "content-type": "text/html" }).end('<!doctype html><div id="root"></div><script type="module" src="/app.js"></script>');
    }
  });
  await new Promise<void>((resolve) => page.listen(0, "127.0.0.1", resolve));
  pageUrl = `http://127.0.0.1:${(page.address() as { port: number }).port}/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => page?.close(resolve));
  await proxy?.close();
  await server?.stop();
});

test("a customer's page shows its own payments only, and keeps receiving after a cut", async () => {
  const tab = await browser.newPage();
  const errors: string[] = [];
  tab.on("pageerror", (err) => errors.push(err.message));
  const query = new URLSearchParams({ ws: proxy.url(), token: server.token("CUST-A", "customer") });
  await tab.goto(`${pageUrl}?${query}`);
  const status = () => tab.locator("#status").textContent();
  const feed = () => tab.locator("#feed li").allTextContents();
  let current = "";
  const statusIs = async (want: string) => {
    await waitFor(() => current === want, `status ${want} (is ${current})`, 10_000).catch((err) => {
      throw new Error(`${err.message}; page errors: ${errors.join("; ")}`);
    });
  };
  const poll = setInterval(() => void status().then((s) => (current = s ?? ""), () => {}), 20);
  try {
    await statusIs("connected");
    await server.publish([payment("CUST-A", 1), payment("CUST-B", 2), order(3), payment("CUST-A", 4)]);
    await tab.waitForFunction(() => document.querySelectorAll("#feed li").length >= 2, null, { timeout: 10_000 });
    await server.publish(payment("CUST-A", 5)); // after every other: once shown, nothing else is coming
    await tab.waitForFunction(() => document.querySelectorAll("#feed li").length >= 3, null, { timeout: 10_000 });
    assert.deepEqual(await feed(), ["PAY-CUST-A-1", "PAY-CUST-A-4", "PAY-CUST-A-5"]);

    await proxy.down();
    await statusIs("reconnecting");
    await server.publish([payment("CUST-B", 6), payment("CUST-A", 7)]); // missed while cut
    await proxy.up();
    await statusIs("connected");
    await server.publish(payment("CUST-A", 8));
    await tab.waitForFunction(() => document.querySelectorAll("#feed li").length >= 5, null, { timeout: 10_000 });
    assert.deepEqual(await feed(), ["PAY-CUST-A-1", "PAY-CUST-A-4", "PAY-CUST-A-5", "PAY-CUST-A-7", "PAY-CUST-A-8"]);
    assert.deepEqual(errors, []);
  } finally {
    clearInterval(poll);
    await tab.close();
  }
});
