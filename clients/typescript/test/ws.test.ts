// Node 20 without `--experimental-websocket` has no WebSocket: an application injects one, such
// as the `ws` package's. This file runs without the flag (see the `test` script).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import WebSocket from "ws";

import { createClient, type ClientOptions, type Recovery } from "../src/index.js";
import { order, startProxy, startServer, waitFor, type Server_ } from "./support.js";

let server: Server_;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server.stop();
});

test("without a global WebSocket, the client says what to do", async () => {
  assert.equal((globalThis as { WebSocket?: unknown }).WebSocket, undefined, "run without --experimental-websocket");
  const c = createClient({ url: server.wsUrl, token: server.token("u", "admin") });
  const errors: string[] = [];
  c.onError((e) => errors.push(String(e.code)));
  c.connect();
  await waitFor(() => c.status === "failed", "failed");
  assert.deepEqual(errors, ["no_websocket"]);
});

test("with `ws` injected it connects, receives, and resumes after a cut", async () => {
  const proxy = await startProxy(server.port);
  const recoveries: Recovery[] = [];
  const c = createClient({
    url: proxy.url(),
    token: server.token("u", "admin"),
    namespaces: ["orders"],
    WebSocket: WebSocket as unknown as ClientOptions["WebSocket"],
    reconnect: { minDelay: 20, maxDelay: 50 },
  });
  c.onRecovery((r) => recoveries.push(r));
  const ids: string[] = [];
  c.on("order:created", (_, event) => ids.push(event.id));
  c.connect();
  await waitFor(() => c.status === "connected", "connected");
  const [first] = await server.publish(order(1));
  await waitFor(() => ids.length === 1, "the first event");
  await proxy.down();
  const [missed] = await server.publish(order(2));
  await proxy.up();
  await waitFor(() => ids.length === 2, "the missed event", 10_000);
  assert.deepEqual(ids, [first, missed]);
  assert.deepEqual(recoveries, [{ orders: true }]);
  c.disconnect();
  await proxy.close();
});

test("with `ws` injected, a refused token fails", async () => {
  const c = createClient({ url: server.wsUrl, token: "nope", WebSocket: WebSocket as unknown as ClientOptions["WebSocket"] });
  const errors: string[] = [];
  c.onError((e) => errors.push(String(e.code)));
  c.connect();
  await waitFor(() => c.status === "failed", "failed");
  assert.deepEqual(errors, ["invalid_token"]);
});
