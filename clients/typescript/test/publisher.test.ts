// The publisher against a real `omnicast serve`: the reference's server-side snippets as written,
// computed fields the server verifies, and the fire-and-forget path (a server that is down then
// up, an invalid payload, `close()`), with clients receiving what the rules allow.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { createClient, type AnyEnvelope, type OmnicastClient } from "../src/index.js";
import { createPublisher, type PublishFailure, type PublisherOptions } from "../src/publisher.js";
import { percentChange } from "../src/payloads.js";
import { NodeWebSocket, sleep, startProxy, startServer, waitFor, type Server_ } from "./support.js";

let server: Server_;
const clients: OmnicastClient[] = [];

before(async () => {
  server = await startServer();
  // The reference's modules read where to publish from the environment.
  process.env.OMNICAST_URL = server.httpUrl;
  process.env.OMNICAST_API_KEY = server.apiKey;
});
after(async () => {
  for (const client of clients) client.disconnect();
  await server.stop();
});

/** A connected client of `sub` with `role`, and every event it receives. */
async function listen(sub: string, role: string, namespaces: string[]): Promise<AnyEnvelope[]> {
  const c = createClient({
    url: server.wsUrl,
    token: server.token(sub, role),
    WebSocket: NodeWebSocket,
    namespaces: namespaces as never,
  });
  clients.push(c);
  const seen: AnyEnvelope[] = [];
  c.on("*", (_, event) => {
    seen.push(event);
  });
  c.connect();
  await waitFor(() => c.status === "connected", "connected");
  return seen;
}

/** A publisher of `server` whose requests are counted, and the failures it reports. */
function publisher(options: Partial<PublisherOptions> = {}) {
  const failures: PublishFailure[] = [];
  const requests: unknown[][] = [];
  const p = createPublisher({
    url: server.httpUrl,
    apiKey: server.apiKey,
    onError: (f) => failures.push(f),
    fetch: async (input, init) => {
      requests.push(JSON.parse(String(init?.body)) as unknown[]);
      return fetch(input, init);
    },
    ...options,
  });
  return { p, failures, requests };
}

const types = (seen: AnyEnvelope[]) => seen.map((e) => e.type);

describe("the reference's server side", () => {
  test("its snippets, as written, publish what the rules deliver", async () => {
    const admin = await listen("boss", "admin", ["orders", "inventory", "system", "products"]);
    const staff = await listen("clerk", "staff", ["orders", "inventory", "system", "products"]);
    const customer = await listen("customer_123", "customer", ["orders", "system"]);
    const snippets = await import("./reference/snippets.js");
    const { publisher: shared } = await import("./reference/events.js");

    snippets.serverSide();
    snippets.usingHelpers(
      { id: "ORD-9", customerId: "customer_123", customerName: "C", total: 10, status: "pending", channel: "online" },
      { id: "PROD-1", name: "Lamp", sku: "L-1" },
    );
    const example = (type: string) => ({ ...(EXAMPLES as Record<string, { data: object }>)[type]!.data });
    snippets.broadcasting(
      example("order:created") as never,
      { ...example("order:status_changed"), customerId: "customer_123" } as never,
      example("system:notification") as never,
      example("product:updated") as never,
    );
    await shared.flush();

    // Everything went out in one request: once the last arrives, nothing else is coming.
    await waitFor(() => admin.length >= 8 && staff.length >= 5 && customer.length >= 1, "every delivery");
    await sleep(100);
    assert.deepEqual(types(admin), [
      "order:created",
      "inventory:low_stock",
      "system:notification",
      "order:created",
      "inventory:updated",
      "order:created",
      "system:notification",
      "product:updated",
    ]);
    // Staff: not the admin-only notification (targetRoles), not the order for admins and managers
    // (roles), not the notification for admins and managers (its targetRoles).
    assert.deepEqual(types(staff), ["order:created", "inventory:low_stock", "order:created", "inventory:updated", "product:updated"]);
    // The customer: its own status change, sent to it by user id; no staff event.
    assert.deepEqual(types(customer), ["order:status_changed"]);
    // The helper's entity became the payload, its `difference` computed.
    const updated = admin.find((e) => e.type === "inventory:updated")!;
    assert.deepEqual(updated.data, { productId: "PROD-1", productName: "Lamp", sku: "L-1", oldStock: 50, newStock: 49, difference: -1, reason: "sale" });
    const created = admin.filter((e) => e.type === "order:created").map((e) => (e.data as { orderId: string }).orderId);
    assert.ok(created.includes("ORD-9"), "emitOrderEvent's `id` is the order's id");
  });

  test("computed fields are filled in as the server computes them (it refuses any other value)", async () => {
    const { p, failures } = publisher();
    const pairs: [number, number][] = [[3000, 2500], [3, 4], [0, 10], [100, 150], [7, 7], [1, 3], [2, 1], [999.99, 1000.01]];
    for (let i = 0; i < 200; i++) pairs.push([Math.round(Math.random() * 1e6) / 100 + 0.01, Math.round(Math.random() * 1e6) / 100]);
    const results = await Promise.all(
      pairs.map(([oldPrice, newPrice], i) =>
        p.wsEvents.productPriceChanged({ productId: `P${i}`, productName: "x", sku: "s", oldPrice, newPrice }),
      ),
    );
    assert.deepEqual(failures, []);
    assert.ok(results.every((r) => typeof r.id === "string"));
    assert.equal(percentChange(3000, 2500), -16.67);
    assert.equal(percentChange(1, 1.005), 0.5);
  });
});

describe("fire and forget", () => {
  test("one tick's events go out in one request, and each call resolves to its id", async () => {
    const seen = await listen("tick", "admin", ["payments"]);
    const { p, requests } = publisher();
    const calls = Array.from({ length: 10 }, (_, n) =>
      p.emitPaymentEvent("received", { id: `PAY-${n}`, orderId: "O", customerId: "c", amount: n, method: "card", status: "success" }),
    );
    const results = await Promise.all(calls);
    assert.equal(requests.length, 1);
    assert.equal(requests[0]!.length, 10);
    await waitFor(() => seen.length === 10, "ten payments");
    assert.deepEqual(results.map((r) => r.id), seen.map((e) => e.id));
  });

  test("an invalid payload is reported and never sent", async () => {
    const { p, failures, requests } = publisher();
    const bad = await p.emit("order:created", { orderId: 1 } as never);
    const unknown = await p.wsEvents.orderCreated({ ...EXAMPLES["order:created"].data, createdAt: "now" } as never);
    const option = await p.wsEvents.orderCreated(EXAMPLES["order:created"].data, { roles: ["root" as never] });
    const overflow = await p.wsEvents.inventoryUpdated({ productId: "p", productName: "n", sku: "s", oldStock: -(2 ** 53) + 1, newStock: 2 ** 53 - 1 });
    const action = await p.emitOrderEvent("shipped" as never, { id: "O" } as never);
    await p.flush();
    for (const r of [bad, unknown, option, overflow, action]) assert.equal(r.error?.code, "invalid_payload", JSON.stringify(r));
    assert.match(bad.error!.message, /orderId/);
    assert.match(unknown.error!.message, /createdAt/);
    assert.match(action.error!.message, /not an action of emitOrderEvent/);
    assert.equal(failures.length, 5);
    assert.equal(requests.length, 0, "nothing was sent");
  });

  test("a server that is down, then up: nothing lost, nothing doubled", async () => {
    const seen = await listen("outage", "admin", ["payments"]);
    const proxy = await startProxy(server.port);
    await proxy.down();
    const { p, failures } = publisher({ url: `http://127.0.0.1:${proxy.port}`, retry: { attempts: 50, minDelay: 20, maxDelay: 100 } });
    const calls: Promise<unknown>[] = [];
    for (let n = 0; n < 20; n++) {
      calls.push(p.emitPaymentEvent("received", { id: `OUT-${n}`, orderId: "O", customerId: "c", amount: n, method: "card", status: "success" }));
      if (n % 5 === 4) await sleep(5); // several ticks, several requests
    }
    await sleep(300);
    await proxy.up();
    await p.close();
    assert.deepEqual(failures, []);
    await waitFor(() => seen.length >= 20, "every payment");
    await sleep(100);
    assert.deepEqual(
      seen.map((e) => (e.data as { amount: number }).amount),
      Array.from({ length: 20 }, (_, n) => n),
      "each once, in call order",
    );
    await proxy.close();
  });

  test("an answer that is lost is asked again under the same key: published once", async () => {
    const seen = await listen("lost", "admin", ["payments"]);
    const keys: string[] = [];
    const p = createPublisher({
      url: server.httpUrl,
      apiKey: server.apiKey,
      retry: { minDelay: 1, maxDelay: 5 },
      // The first request reaches the server, which stores the event; its answer is lost.
      fetch: async (input, init) => {
        keys.push(new Headers(init?.headers).get("idempotency-key")!);
        const response = await fetch(input, init);
        if (keys.length === 1) throw new TypeError("connection reset");
        return response;
      },
    });
    const result = await p.emitPaymentEvent("received", { id: "LOST-1", orderId: "O", customerId: "c", amount: 1, method: "card", status: "success" });
    assert.equal(keys.length, 2);
    assert.equal(keys[0], keys[1], "the same key");
    await waitFor(() => seen.length === 1, "the payment");
    await sleep(200);
    assert.equal(seen.length, 1, "delivered once");
    assert.equal(result.id, seen[0]!.id);
  });

  test("close() sends everything called before it, and takes nothing after", async () => {
    const seen = await listen("closing", "admin", ["payments"]);
    const { p, failures } = publisher();
    for (let n = 0; n < 250; n++) {
      void p.emitPaymentEvent("received", { id: `CL-${n}`, orderId: "O", customerId: "c", amount: n, method: "card", status: "success" });
    }
    await p.close();
    const late = await p.emitPaymentEvent("received", { id: "LATE", orderId: "O", customerId: "c", amount: 1, method: "card", status: "success" });
    assert.equal(late.error?.code, "closed");
    assert.equal(failures.length, 1);
    await waitFor(() => seen.length === 250, "all 250 payments");
  });

  test("what finally fails goes to onError with the event, and the call resolves to the error", async () => {
    const { p, failures } = publisher({ apiKey: "wrong-key-0123456789", retry: { attempts: 2, minDelay: 1, maxDelay: 1 } });
    const result = await p.wsEvents.systemMaintenance({ message: "m" } as never);
    assert.equal(result.error?.code, "unauthorized");
    assert.equal(result.error?.status, 401);
    assert.equal(failures[0]?.event.type, "system:maintenance");
  });
});

import { EXAMPLES } from "../src/catalog.js";

describe("load, then follow", () => {
  test("every event after the snapshot's positions arrives once, in order, under a full-speed publisher", async () => {
    const { p } = publisher();
    const published: { id: string; amount: number }[] = [];
    let running = true;
    const publishing = (async () => {
      for (let n = 0; running; n++) {
        const result = await p.emitPaymentEvent("received", { id: `SNAP-${n}`, orderId: "O", customerId: "c", amount: n, method: "card", status: "success" });
        published.push({ id: result.id!, amount: n });
      }
    })();
    await waitFor(() => published.length >= 3, "events before the snapshot");
    // The backend: the positions first, then its database (what was published until then).
    const response = await fetch(`${server.httpUrl}/api/positions?namespaces=payments`, { headers: { authorization: `Bearer ${server.apiKey}` } });
    assert.equal(response.status, 200);
    const { positions } = (await response.json()) as { positions: { payments: string } };
    const before = published.length;
    await waitFor(() => published.length >= before + 3, "events between the snapshot and the subscribe");
    const c = createClient({ url: server.wsUrl, token: server.token("snap", "admin"), WebSocket: NodeWebSocket, namespaces: ["payments"] });
    clients.push(c);
    c.resumeFrom(positions);
    const seen: number[] = [];
    const recoveries: unknown[] = [];
    c.on("payment:received", (data) => seen.push(data.amount));
    c.onRecovery((r) => recoveries.push(r));
    c.connect();
    await waitFor(() => c.status === "connected", "connected");
    const connected = published.length;
    await waitFor(() => published.length >= connected + 3, "events after the subscribe");
    running = false;
    await publishing;
    // The snapshot holds every event up to the position (an earlier test's, or one of these).
    const at = published.findIndex((e) => e.id === positions.payments);
    const expected = published.slice(at + 1).map((e) => e.amount);
    assert.ok(expected.length > 0 && at >= 0, `events on both sides of the snapshot (${at}, ${published.length})`);
    await waitFor(() => seen.length >= expected.length, "every event after the snapshot");
    await sleep(100);
    assert.deepEqual(seen, expected);
    assert.deepEqual(recoveries, [{ payments: true }]);
  });
});
