// The client against a real `omnicast serve`, as an application sees it.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { CATALOG_VERSION, CloseCode, createClient, type AnyEnvelope, type CatalogMismatch, type ClientError, type ClientOptions, type OmnicastClient, type Recovery, type Status } from "../src/index.js";
import { NodeWebSocket, order, payment, priceChange, sleep, startProxy, startServer, waitFor, type Server_ } from "./support.js";

let server: Server_;
const clients: OmnicastClient[] = [];

before(async () => {
  server = await startServer(["--jwt-leeway-secs", "0"]);
});
after(async () => {
  for (const client of clients) client.disconnect();
  await server.stop();
});

/** A client of `server` (or `url`), disconnected after the test file. */
function client(options: Partial<ClientOptions> & { sub?: string; role?: string } = {}): OmnicastClient {
  const { sub = "u1", role = "admin", ...rest } = options;
  const c = createClient({
    url: server.wsUrl,
    token: rest.getToken ? undefined : server.token(sub, role),
    WebSocket: NodeWebSocket,
    ...rest,
  });
  clients.push(c);
  return c;
}

async function connected(c: OmnicastClient): Promise<OmnicastClient> {
  c.connect();
  await waitFor(() => c.status === "connected", "connected");
  return c;
}

/** Every event `c` receives, in order. */
function collect(c: OmnicastClient): AnyEnvelope[] {
  const seen: AnyEnvelope[] = [];
  c.on("*", (_, event) => {
    seen.push(event);
  });
  return seen;
}

describe("delivery as a client sees it", () => {
  test("a customer's client receives its own payments, never another customer's", async () => {
    const admin = await connected(client({ sub: "boss", role: "admin", namespaces: ["payments"] }));
    const alice = await connected(client({ sub: "CUST-A", role: "customer", namespaces: ["payments"] }));
    const bob = await connected(client({ sub: "CUST-B", role: "customer", namespaces: ["payments"] }));
    const [seenAdmin, seenAlice, seenBob] = [collect(admin), collect(alice), collect(bob)];
    await server.publish([payment("CUST-A", 1), payment("CUST-B", 2), payment("CUST-A", 3)]);
    // The last payment of each customer comes after every other: once it is there, nothing else is coming.
    await server.publish(payment("CUST-B", 4));
    await waitFor(() => seenAdmin.length === 4 && seenAlice.length === 2 && seenBob.length === 2, "every delivery");
    const ids = (seen: AnyEnvelope[]) => seen.map((e) => (e.data as { paymentId: string }).paymentId);
    assert.deepEqual(ids(seenAlice), ["PAY-CUST-A-1", "PAY-CUST-A-3"]);
    assert.deepEqual(ids(seenBob), ["PAY-CUST-B-2", "PAY-CUST-B-4"]);
    assert.equal(seenAdmin.length, 4);
  });

  test("a customer does not receive staff events, even subscribed to their namespace", async () => {
    const carol = await connected(client({ sub: "CUST-C", role: "customer", namespaces: ["orders", "products"] }));
    const seen = collect(carol);
    await server.publish([order(1), priceChange(1)]);
    await waitFor(() => seen.length === 1, "the public event");
    await sleep(50);
    assert.deepEqual(
      seen.map((e) => e.type),
      ["product:price_changed"],
    );
  });
});

describe("listeners", () => {
  test("on, once, off, '*' and every cleanup leave no listener behind", async () => {
    const c = client({ namespaces: ["products"] });
    const calls: string[] = [];
    const h = () => calls.push("on");
    const cleanup = c.on("product:price_changed", h);
    c.once("product:price_changed", () => calls.push("once"));
    const star = c.on("*", (_, event) => calls.push(`*${event.type}`));
    await connected(c);
    await server.publish(priceChange(1));
    await waitFor(() => calls.length === 3, "three calls");
    assert.deepEqual(calls, ["on", "once", "*product:price_changed"]);
    assert.equal(c.listenerCount("product:price_changed"), 1, "once removed itself");
    cleanup();
    cleanup(); // twice is harmless
    c.off("*", () => {}); // an unknown handler is ignored
    assert.equal(c.listenerCount("*"), 1);
    star();
    assert.equal(c.listenerCount(), 0);
    const again = c.on("product:price_changed", h);
    c.off("product:price_changed", h);
    assert.equal(c.listenerCount(), 0);
    again();
  });

  test("a handler that throws is reported and never breaks the stream", async () => {
    const c = client({ namespaces: ["products"] });
    const errors: ClientError[] = [];
    c.onError((e) => errors.push(e));
    const good: number[] = [];
    c.on("product:price_changed", () => {
      throw new Error("boom");
    });
    c.on("product:price_changed", (data) => good.push(data.newPrice));
    await connected(c);
    await server.publish([priceChange(1), priceChange(2)]);
    await waitFor(() => good.length === 2, "both events");
    assert.deepEqual(good, [11, 12]);
    assert.equal(errors.filter((e) => e.kind === "handler").length, 2);
    assert.match(errors[0]!.message, /boom/);
  });

  test("handleMessage feeds the same path as the socket, and duplicates are dropped by id", () => {
    const c = client();
    const seen: string[] = [];
    c.on("order:created", (data) => seen.push(data.orderId));
    const types = new Set<string>();
    c.on("*", (_, event) => types.add(event.type));
    // The reference's test: an envelope without an id.
    const testEvent = { type: "order:created", namespace: "orders", data: { orderId: "TEST-001" }, timestamp: Date.now() };
    c.handleMessage({ data: JSON.stringify(testEvent) });
    const withId = { ...testEvent, data: { orderId: "TEST-002" }, id: "orders.e1.7" };
    c.handleMessage({ data: JSON.stringify(withId) });
    c.handleMessage({ data: JSON.stringify(withId) });
    // Ids are opaque: an exact repeat is known, however it is dressed.
    c.handleMessage({ data: JSON.stringify({ ...withId, data: { orderId: "REPEAT" } }) });
    c.handleMessage({ data: "not json" });
    assert.deepEqual(seen, ["TEST-001", "TEST-002"]);
    assert.deepEqual([...types], ["order:created"]);
    assert.equal(c.positions.orders, "orders.e1.7");
    // Positions are kept by the stream the id names, whatever the envelope says: an event
    // recorded in `system` neither moves `orders` on nor makes the next orders event a duplicate.
    c.handleMessage({ data: JSON.stringify({ ...withId, data: { orderId: "TEST-003" }, id: "system.e1.9" }) });
    c.handleMessage({ data: JSON.stringify({ ...withId, data: { orderId: "TEST-004" }, id: "orders.e1.8" }) });
    assert.deepEqual(seen, ["TEST-001", "TEST-002", "TEST-003", "TEST-004"]);
    assert.deepEqual(c.positions, { orders: "orders.e1.8", system: "system.e1.9" });
  });

  test("the server runs this client's catalog: same version, no mismatch", async () => {
    const c = client();
    const mismatches: CatalogMismatch[] = [];
    c.onCatalogMismatch((m) => mismatches.push(m));
    await connected(c);
    assert.equal(c.session?.catalogVersion, CATALOG_VERSION);
    assert.match(CATALOG_VERSION, /^[0-9a-f]{16}$/);
    assert.equal(c.catalogMismatch, undefined);
    assert.deepEqual(mismatches, []);
  });

  test("a server of another catalog is reported, and events of unknown types still reach '*'", () => {
    const c = client();
    const mismatches: CatalogMismatch[] = [];
    c.onCatalogMismatch((m) => mismatches.push(m));
    const any: string[] = [];
    c.on("*", (_, event) => any.push(event.type));
    const ready = { type: "ready", sessionId: "s", userId: "u1", role: "admin", catalogVersion: "0123456789abcdef", namespaces: ["orders"], positions: {} };
    c.handleMessage({ data: JSON.stringify(ready) });
    assert.deepEqual(mismatches, [{ server: "0123456789abcdef", client: CATALOG_VERSION }]);
    // A type this client was not generated with: delivered to '*', its position kept.
    const unknown = { type: "order:teleported", namespace: "orders", data: { to: "moon" }, timestamp: 1, id: "orders.e1.3" };
    c.handleMessage({ data: JSON.stringify(unknown) });
    assert.deepEqual(any, ["order:teleported"]);
    assert.equal(c.positions.orders, "orders.e1.3");
  });

  test("next() resolves with the next event, and rejects when none comes", async () => {
    const c = await connected(client({ namespaces: ["products"] }));
    const next = c.next("product:price_changed");
    await server.publish(priceChange(5));
    assert.equal((await next).data.newPrice, 15);
    await assert.rejects(c.next("order:created", { timeout: 50 }), /no order:created event within 50 ms/);
    assert.equal(c.listenerCount(), 0);
  });
});

describe("subscriptions", () => {
  test("holders are counted: one release does not undo another's subscription", async () => {
    const sent: string[] = [];
    const c = client({ namespaces: ["products"], heartbeat: false, debug: (...args) => args[0] === "send" && sent.push(String(args[1])) });
    const seen = collect(c);
    await connected(c);
    const a = c.subscribe(["orders"]);
    const b = c.subscribe(["orders"]);
    await waitFor(() => sent.length === 1, "one subscribe");
    assert.deepEqual(JSON.parse(sent[0]!), { type: "subscribe", namespaces: ["orders"] });
    a();
    await sleep(20);
    assert.equal(sent.length, 1, "a release while another holds sends nothing");
    await server.publish(order(1));
    await waitFor(() => seen.length === 1, "the order");
    b();
    await waitFor(() => sent.length === 2, "the unsubscribe");
    assert.deepEqual(JSON.parse(sent[1]!), { type: "unsubscribe", namespaces: ["orders"] });
    // A release and a hold in the same tick send nothing.
    const d = c.subscribe(["inventory"]);
    d();
    const e = c.subscribe(["inventory"]);
    await sleep(20);
    assert.equal(sent.length, 3);
    assert.deepEqual(JSON.parse(sent[2]!), { type: "subscribe", namespaces: ["inventory"] });
    e();
    await waitFor(() => sent.length === 4, "the last unsubscribe");
    await server.publish([order(2), priceChange(2)]);
    await waitFor(() => seen.length === 2, "the price change");
    assert.deepEqual(seen.map((x) => x.type), ["order:created", "product:price_changed"]);
    assert.deepEqual(c.namespaces, ["products"]);
  });

  test("a client with nothing to subscribe to connects at its first subscribe", async () => {
    const c = client({ namespaces: [] });
    c.connect();
    await sleep(50);
    assert.equal(c.status, "connecting");
    const release = c.subscribe(["system"]);
    await waitFor(() => c.status === "connected", "connected");
    assert.deepEqual(c.session?.namespaces, ["system"]);
    release();
  });

  test("the server's default subscription is kept across reconnects", async () => {
    const proxy = await startProxy(server.port);
    const c = await connected(client({ url: proxy.url(), sub: "CUST-D", role: "customer" }));
    const first = c.session!.namespaces;
    assert.ok(first.includes("payments") && !first.includes("customers"), `${first}`);
    proxy.cut();
    await waitFor(() => c.status === "reconnecting", "reconnecting");
    await waitFor(() => c.status === "connected", "reconnected");
    assert.deepEqual(c.session!.namespaces, first);
    c.disconnect();
    await proxy.close();
  });
});

describe("reconnect and resume", () => {
  test("after the connection is cut, it reconnects and resumes with no gap and no duplicate", async () => {
    const proxy = await startProxy(server.port);
    const statuses: Status[] = [];
    const recoveries: Recovery[] = [];
    const c = client({ url: proxy.url(), namespaces: ["orders"], reconnect: { minDelay: 50, maxDelay: 200 } });
    c.onStatus((s) => statuses.push(s));
    c.onRecovery((r) => recoveries.push(r));
    const seen = collect(c);
    await connected(c);
    const before = await server.publish([order(1), order(2), order(3)]);
    await waitFor(() => seen.length === 3, "the first three");
    await proxy.down();
    await waitFor(() => c.status === "reconnecting", "reconnecting");
    const missed = await server.publish([order(4), order(5), order(6)]);
    await sleep(150); // attempts fail while the proxy is down
    await proxy.up();
    await waitFor(() => c.status === "connected", "reconnected", 10_000);
    const live = await server.publish(order(7));
    await waitFor(() => seen.length === 7, "all seven");
    await sleep(50);
    assert.deepEqual(seen.map((e) => e.id), [...before, ...missed, ...live]);
    assert.deepEqual(recoveries, [{ orders: true }]);
    assert.deepEqual(statuses.slice(0, 3), ["connecting", "connected", "reconnecting"]);
    assert.equal(statuses.at(-1), "connected");
    c.disconnect();
    await proxy.close();
  });

  test("events published with options.namespace are positioned by their id, across a reconnect", async () => {
    const proxy = await startProxy(server.port);
    // Closed whatever the outcome: a proxy left open keeps the test runner alive.
    try {
      const recoveries: Recovery[] = [];
      const c = client({ url: proxy.url(), namespaces: ["orders", "system"], reconnect: { minDelay: 50, maxDelay: 200 } });
      c.onRecovery((r) => recoveries.push(r));
      const seen = collect(c);
      await connected(c);
      const inSystem = (n: number) => ({ ...order(n), options: { namespace: "system" } });
      const before = await server.publish([order(1), inSystem(2), order(3)]);
      await waitFor(() => seen.length === 3, "the first three");
      // The envelope names the stream the event was recorded in, as its id does.
      assert.deepEqual(seen.map((e) => [e.namespace, e.id.split(".")[0]]), [["orders", "orders"], ["system", "system"], ["orders", "orders"]]);
      await proxy.down();
      await waitFor(() => c.status === "reconnecting", "reconnecting");
      const missed = await server.publish([inSystem(4), order(5)]);
      await proxy.up();
      await waitFor(() => c.status === "connected", "reconnected", 10_000);
      const live = await server.publish([inSystem(6), order(7)]);
      await waitFor(() => seen.length === 7, "all seven");
      await sleep(50);
      // Each once, in order within its namespace (a replay goes namespace by namespace).
      const inOrder = (ids: string[], ns: string) => ids.filter((id) => id.startsWith(`${ns}.`));
      const ids = seen.map((e) => e.id);
      for (const ns of ["orders", "system"]) {
        assert.deepEqual(inOrder(ids, ns), inOrder([...before, ...missed, ...live], ns));
      }
      assert.equal(ids.length, 7);
      assert.deepEqual(recoveries, [{ orders: true, system: true }]);
      c.disconnect();
    } finally {
      await proxy.close();
    }
  });

  test("recovered: false when more was missed than the server replays", async () => {
    const short = await startServer(["--max-recovery", "3"]);
    const proxy = await startProxy(short.port);
    const recoveries: Recovery[] = [];
    const c = createClient({ url: proxy.url(), token: short.token("u", "admin"), namespaces: ["orders"], WebSocket: NodeWebSocket, reconnect: { minDelay: 20, maxDelay: 50 } });
    c.onRecovery((r) => recoveries.push(r));
    const seen = collect(c);
    await connected(c);
    await short.publish(order(1));
    await waitFor(() => seen.length === 1, "the first");
    await proxy.down();
    await short.publish([2, 3, 4, 5, 6].map(order));
    await proxy.up();
    await waitFor(() => recoveries.length === 1, "the recovery report", 10_000);
    assert.deepEqual(recoveries, [{ orders: false }]);
    // Nothing replayed; live events go on.
    const [live] = await short.publish(order(7));
    await waitFor(() => seen.length === 2, "the live event");
    assert.equal(seen[1]!.id, live);
    c.disconnect();
    await proxy.close();
    await short.stop();
  });

  test("a connection that goes silent is dropped by the heartbeat and resumed", async () => {
    const proxy = await startProxy(server.port);
    const c = client({ url: proxy.url(), namespaces: ["orders"], heartbeat: { interval: 100, timeout: 200 }, reconnect: { minDelay: 20, maxDelay: 50 } });
    const seen = collect(c);
    await connected(c);
    proxy.freeze();
    await waitFor(() => c.status === "reconnecting", "the heartbeat noticing", 3000);
    const [missed] = await server.publish(order(1));
    await waitFor(() => c.status === "connected", "reconnected", 5000);
    await waitFor(() => seen.length === 1, "the event missed while frozen");
    assert.equal(seen[0]!.id, missed);
    assert.ok(proxy.accepted >= 2);
    c.disconnect();
    await proxy.close();
  });

  test("coming back online skips the rest of the backoff", async () => {
    // A browser's `online` event, on a global EventTarget like a window's.
    const target = new EventTarget();
    const g = globalThis as unknown as Record<string, unknown>;
    Object.assign(g, { addEventListener: target.addEventListener.bind(target), removeEventListener: target.removeEventListener.bind(target) });
    try {
      const proxy = await startProxy(server.port);
      const c = await connected(client({ url: proxy.url(), namespaces: ["orders"], reconnect: { minDelay: 60_000, maxDelay: 60_000 } }));
      await proxy.down();
      await waitFor(() => c.status === "reconnecting", "reconnecting");
      await proxy.up();
      await sleep(100);
      assert.equal(c.status, "reconnecting", "still waiting out a minute of backoff");
      target.dispatchEvent(new Event("online"));
      await waitFor(() => c.status === "connected", "connected at once", 2000);
      c.disconnect();
      await proxy.close();
    } finally {
      delete g.addEventListener;
      delete g.removeEventListener;
    }
  });

  test("disconnect() is final: no reconnect follows", async () => {
    const proxy = await startProxy(server.port);
    const c = await connected(client({ url: proxy.url(), namespaces: ["orders"] }));
    c.disconnect();
    assert.equal(c.status, "disconnected");
    await sleep(700);
    assert.equal(proxy.accepted, 1);
    assert.equal(c.status, "disconnected");
    await proxy.close();
  });

  test("an injected WebSocket constructor is the one used", async () => {
    let made = 0;
    class Counting extends (NodeWebSocket as unknown as new (url: string) => object) {
      constructor(url: string) {
        super(url);
        made += 1;
      }
    }
    const c = await connected(client({ WebSocket: Counting as unknown as ClientOptions["WebSocket"], namespaces: ["system"] }));
    assert.equal(made, 1);
    c.disconnect();
  });
});

describe("tokens", () => {
  test("getToken refreshes the open connection before its token expires: no gap, no duplicate, no reconnect", async () => {
    let calls = 0;
    const c = client({
      namespaces: ["payments"],
      getToken: () => {
        calls += 1;
        return server.token("renewing", "admin", calls === 1 ? 2 : 3600);
      },
    });
    await connected(c);
    const { sessionId, expiresAt: firstEnd } = c.session!;
    assert.ok(firstEnd !== undefined && firstEnd < Date.now() + 3000, `a short token: ${firstEnd}`);
    const amounts: number[] = [];
    c.on("payment:received", (e) => amounts.push(e.amount));
    // Published all across the first token's end.
    for (let n = 0; n < 30; n++) {
      await server.publish(payment("someone", n));
      await sleep(100);
    }
    await waitFor(() => amounts.length >= 30, "every payment");
    assert.ok(Date.now() > firstEnd!, "ran past the first token's end");
    assert.deepEqual(amounts, Array.from({ length: 30 }, (_, n) => 100 + n), "each once, in order");
    assert.equal(c.session!.sessionId, sessionId, "the same connection");
    assert.ok(c.session!.expiresAt! > firstEnd! + 60_000, "refreshed");
    assert.equal(calls, 2);
    c.disconnect();
  });

  test("a re-authorization request is answered with a fresh token from getToken, before the deadline", async () => {
    // What the application's token endpoint says: a role, in a token issued `lag` seconds ago.
    let role = "staff";
    let lag = 5;
    const c = client({
      namespaces: ["system", "inventory"],
      getToken: () => server.token("promoted", role, 3600, { iat: Math.floor(Date.now() / 1000) - lag }),
    });
    await connected(c);
    assert.equal(c.session!.role, "staff");
    [role, lag] = ["customer", 0];
    const response = await fetch(`${server.httpUrl}/api/reauthorizations`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ userId: "promoted", deadlineSecs: 1 }),
    });
    const answer = (await response.json()) as { asked: number };
    assert.equal(response.status, 200);
    assert.equal(answer.asked, 1);
    await waitFor(() => c.session?.role === "customer", "the customer role, in place");
    assert.ok(!c.namespaces.includes("inventory"), "the namespace the customer may not see is dropped");
    const sessionId = c.session!.sessionId;
    await sleep(1500); // past the deadline
    assert.equal(c.status, "connected");
    assert.equal(c.session!.sessionId, sessionId, "no reconnect");
    c.disconnect();
  });

  test("a revoked token (4003) is replaced through getToken; without getToken the client fails", async () => {
    let calls = 0;
    const c = client({
      namespaces: ["system"],
      getToken: () => {
        calls += 1;
        return server.token("revoked-user", "admin", 3600, { jti: `revocable-${calls}` });
      },
      reconnect: { minDelay: 20, maxDelay: 50 },
    });
    const closes: ClientError[] = [];
    c.onError((e) => closes.push(e));
    await connected(c);
    assert.equal(await server.revoke({ tokenId: "revocable-1" }), 200);
    await waitFor(() => closes.some((e) => e.kind === "closed" && e.code === CloseCode.REVOKED), "the 4003 close", 5000);
    await waitFor(() => c.status === "connected", "reconnected with a new token", 5000);
    assert.equal(calls, 2);

    const fixed = client({ namespaces: ["system"], token: server.token("fixed-user", "admin", 3600, { jti: "fixed-1" }) });
    const errors: ClientError[] = [];
    fixed.onError((e) => errors.push(e));
    await connected(fixed);
    assert.equal(await server.revoke({ tokenId: "fixed-1" }), 200);
    await waitFor(() => fixed.status === "failed", "failed");
    assert.ok(errors.some((e) => e.kind === "refused" && e.code === "token_revoked"), JSON.stringify(errors));
  });

  test("a refused token ends in `failed`, without looping", async () => {
    let calls = 0;
    const errors: ClientError[] = [];
    const c = client({
      getToken: () => {
        calls += 1;
        return "not-a-jwt";
      },
      reconnect: { minDelay: 10, maxDelay: 20 },
    });
    c.onError((e) => errors.push(e));
    c.connect();
    await waitFor(() => c.status === "failed", "failed");
    await sleep(200);
    assert.equal(calls, 1);
    assert.equal(c.status, "failed");
    assert.deepEqual(
      errors.map((e) => [e.kind, e.code]),
      [["refused", "invalid_token"]],
    );
  });

  test("a token of an unknown role fails with the server's reason", async () => {
    const c = client({ sub: "x", role: "wizard" });
    const errors: ClientError[] = [];
    c.onError((e) => errors.push(e));
    c.connect();
    await waitFor(() => c.status === "failed", "failed");
    assert.equal(errors[0]!.code, "unknown_role");
  });
});
