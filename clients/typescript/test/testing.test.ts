// `@omnicast/client/testing`: the reference's test as written, and the hub's deliveries held to a
// real server's over generated cases (the same connections, the same events, the same options).

import assert from "node:assert/strict";
import { after, before, describe, mock, test } from "node:test";

import { AUDIENCE, EXAMPLES, NAMESPACES, ROLES, type EventType, type Namespace, type Role } from "../src/catalog.js";
import { createClient, type AnyEnvelope, type OmnicastClient } from "../src/index.js";
import { createPublisher, type BroadcastOptions } from "../src/publisher.js";
import { createTestHub } from "../src/testing.js";
import { NodeWebSocket, startServer, waitFor, type Server_ } from "./support.js";

// What jest and vitest give the reference's test, from node:test's own mocks.
const jest = { fn: () => mock.fn() };
function expect(f: ReturnType<typeof mock.fn>) {
  return {
    toHaveBeenCalled: () => assert.ok(f.mock.callCount() > 0, "expected the handler to have been called"),
    not: { toHaveBeenCalled: () => assert.equal(f.mock.callCount(), 0, "expected the handler not to have been called") },
  };
}

describe("the reference's test, as written", () => {
  const hub = createTestHub();
  const ws = hub.client({ userId: "staff-1", role: "staff" });
  const { wsEvents } = hub.publisher;

  test('order created event', () => {
    const mockHandler = jest.fn();
    ws.on('order:created', mockHandler);

    wsEvents.orderCreated({
      orderId: 'TEST-001',
      customerId: 'CUST-001',
      customerName: 'Test User',
      total: 1000,
      status: 'pending',
      channel: 'online'
    });

    expect(mockHandler).toHaveBeenCalled();
  });

  test("the rules apply: a customer sees its own order's status change and no staff event", () => {
    const customer = hub.client({ userId: "CUST-001", role: "customer" });
    const other = hub.client({ userId: "CUST-002", role: "customer" });
    const [created, changed, otherChanged] = [jest.fn(), jest.fn(), jest.fn()];
    customer.on("order:created", created);
    customer.on("order:status_changed", changed);
    other.on("order:status_changed", otherChanged);
    wsEvents.orderCreated({ ...EXAMPLES["order:created"].data, customerId: "CUST-001" });
    wsEvents.orderStatusChanged({ ...EXAMPLES["order:status_changed"].data, customerId: "CUST-001" });
    expect(created).not.toHaveBeenCalled();
    expect(changed).toHaveBeenCalled();
    expect(otherChanged).not.toHaveBeenCalled();
  });

  test("helpers and computed fields work as against a server; an invalid payload is reported, not delivered", async () => {
    const seen: unknown[] = [];
    ws.on("inventory:updated", (data) => seen.push(data));
    await hub.publisher.emitInventoryEvent("updated", { id: "P1", name: "Lamp", sku: "L", oldStock: 5, newStock: 2 });
    assert.deepEqual(seen, [{ productId: "P1", productName: "Lamp", sku: "L", oldStock: 5, newStock: 2, difference: -3 }]);
    const result = await hub.publisher.emit("inventory:updated", { productId: "P1" } as never);
    assert.equal(result.error?.code, "invalid_payload");
    assert.equal(hub.failures.length, 1);
    assert.equal(seen.length, 1);
  });
});

/** A small deterministic generator (mulberry32), so that a failing case can be run again. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const USERS = ["u0", "u1", "u2", "u3"];
/** Events the server also emits by itself (presence): left out, so that only the case's own count. */
const PRESENCE = new Set(["customer:online", "customer:offline"]);

interface Case {
  conns: { userId: string; role: Role; namespaces: Namespace[] }[];
  events: { type: EventType; data: Record<string, unknown>; options: BroadcastOptions & { excludeConnections?: number[] } }[];
}

function generate(seed: number): Case {
  const r = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(r() * items.length)]!;
  const subset = <T>(items: readonly T[]): T[] => items.filter(() => r() < 0.5);
  const conns = Array.from({ length: 1 + Math.floor(r() * 6) }, () => ({
    userId: pick(USERS),
    role: pick(ROLES),
    // Every connection hears the case's end on `system`.
    namespaces: [...new Set<Namespace>([...subset(NAMESPACES), "system"])],
  }));
  const types = (Object.keys(EXAMPLES) as EventType[]).filter((t) => !PRESENCE.has(t));
  const events = Array.from({ length: 1 + Math.floor(r() * 8) }, () => {
    const type = pick(types);
    const data: Record<string, unknown> = { ...EXAMPLES[type].data };
    const { owner, targetRoles } = AUDIENCE[type];
    if (owner !== undefined) data[owner] = pick(USERS);
    if (targetRoles !== undefined) {
      if (r() < 0.5) delete data[targetRoles];
      else data[targetRoles] = subset(ROLES);
    }
    const options: Case["events"][number]["options"] = {};
    if (r() < 0.3) options.roles = subset(ROLES);
    if (r() < 0.2) options.userIds = subset(USERS);
    if (r() < 0.2) options.excludeUserIds = subset(USERS);
    if (r() < 0.2) options.excludeConnections = conns.map((_, i) => i).filter(() => r() < 0.5);
    if (r() < 0.15) options.namespace = pick(NAMESPACES);
    return { type, data, options };
  });
  return { conns, events };
}

/** The options as the publish API takes them, with the case's connections named by session. */
function optionsFor(e: Case["events"][number], sessions: string[]): BroadcastOptions {
  const { excludeConnections, ...options } = e.options;
  return excludeConnections ? { ...options, excludeSessionIds: excludeConnections.map((i) => sessions[i]!) } : options;
}

/** What each connection received of the case's events: type and payload (keys sorted), in order. */
function received(seen: AnyEnvelope[]): string[] {
  const sorted = (data: object) => JSON.stringify(Object.fromEntries(Object.entries(data).sort(([a], [b]) => (a < b ? -1 : 1))));
  return seen.filter((e) => !PRESENCE.has(e.type) && e.type !== "system:maintenance").map((e) => `${e.type} ${sorted(e.data)}`);
}

describe("the hub against a real server", () => {
  let server: Server_;
  before(async () => {
    server = await startServer(["--user-connect-burst", "1000", "--user-connects-per-sec", "1000"]);
  });
  after(async () => server.stop());

  test("generated cases: the same deliveries, connection by connection", async () => {
    const publisher = createPublisher({ url: server.httpUrl, apiKey: server.apiKey });
    for (let seed = 1; seed <= 40; seed++) {
      const c = generate(seed);
      // Through the hub.
      const hub = createTestHub();
      const hubClients = c.conns.map((conn) => hub.client(conn));
      const hubSeen = hubClients.map((client) => {
        const seen: AnyEnvelope[] = [];
        client.on("*", (_, e) => seen.push(e));
        return seen;
      });
      const hubSessions = hubClients.map((client) => hub.sessionId(client)!);
      for (const e of c.events) await hub.publisher.emit(e.type, e.data as never, optionsFor(e, hubSessions));

      // Through the server.
      const clients: OmnicastClient[] = c.conns.map((conn) =>
        createClient({ url: server.wsUrl, token: server.token(conn.userId, conn.role), WebSocket: NodeWebSocket, namespaces: conn.namespaces }),
      );
      const seen = clients.map((client) => {
        const events: AnyEnvelope[] = [];
        client.on("*", (_, e) => events.push(e));
        client.connect();
        return events;
      });
      try {
        await waitFor(() => clients.every((client) => client.status === "connected"), `case ${seed}: connected`);
        const sessions = clients.map((client) => client.session!.sessionId);
        for (const e of c.events) {
          const result = await publisher.emit(e.type, e.data as never, optionsFor(e, sessions));
          assert.ok(result.id, `case ${seed}: ${JSON.stringify(result.error)}`);
        }
        const marker = `end of case ${seed}`;
        await publisher.wsEvents.systemMaintenance({ message: marker });
        await waitFor(
          () => seen.every((events) => events.some((e) => e.type === "system:maintenance" && (e.data as { message: string }).message === marker)),
          `case ${seed}: the end marker`,
        );
      } finally {
        for (const client of clients) client.disconnect();
      }

      for (const [i, conn] of c.conns.entries()) {
        assert.deepEqual(received(hubSeen[i]!), received(seen[i]!), `case ${seed}, connection ${i} (${conn.role} ${conn.userId} on ${conn.namespaces.join(",")})`);
      }
    }
  });
});

