// The React hooks under <StrictMode>, in jsdom, against a real server: one socket for many
// components, no frames from the development double mount, the latest handler called, and no
// listener left after unmount.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { JSDOM } from "jsdom";

import { createClient, type ClientOptions, type OmnicastClient } from "../src/index.js";
import { NodeWebSocket, order, payment, sleep, startServer, waitFor, type Server_ } from "./support.js";

// react-dom looks for a DOM when it loads: provide one first, then import it.
const dom = new JSDOM("<!doctype html><div id=root></div>", { url: "http://localhost/" });
Object.assign(globalThis, { window: dom.window, document: dom.window.document, navigator: dom.window.navigator, IS_REACT_ACT_ENVIRONMENT: true });
const React = await import("react");
const { createRoot } = await import("react-dom/client");
const { OmnicastProvider, useEvent, useSnapshot, useStatus, useWebSocket } = await import("../src/react.js");
const { act, createElement: h, StrictMode, useEffect, useState } = React;

let server: Server_;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server.stop();
});

/** A client whose sockets and sent frames are counted. */
function countingClient(): { client: OmnicastClient; sockets: () => number; sent: unknown[] } {
  let sockets = 0;
  class Counting extends (NodeWebSocket as unknown as new (url: string) => object) {
    constructor(url: string) {
      super(url);
      sockets += 1;
    }
  }
  const sent: unknown[] = [];
  const client = createClient({
    url: server.wsUrl,
    token: server.token("react", "admin"),
    namespaces: [],
    heartbeat: false,
    WebSocket: Counting as unknown as ClientOptions["WebSocket"],
    debug: (what, frame) => {
      if (what === "send") sent.push(JSON.parse(String(frame)));
    },
  });
  return { client, sockets: () => sockets, sent };
}

test("many components share one socket; StrictMode's double mount sends nothing and leaves nothing", async () => {
  const { client, sockets, sent } = countingClient();
  const calls = { a: 0, b: 0, c: 0 };
  function Listener({ name }: { name: keyof typeof calls }) {
    const ws = useWebSocket({ namespaces: ["orders"] });
    useEffect(() => {
      const cleanup = ws.on("order:created", () => {
        calls[name] += 1;
      });
      return cleanup;
    }, [ws]);
    return null;
  }
  const latest: string[] = [];
  let setLabel: (label: string) => void = () => {};
  function Latest() {
    const [label, set] = useState("first");
    setLabel = set;
    useEvent("order:created", (data) => latest.push(`${label}:${data.orderId}`));
    return null;
  }
  function Status() {
    return h("p", { id: "status" }, useStatus());
  }
  const container = document.getElementById("root")!;
  const root = createRoot(container);
  const app = h(StrictMode, null, h(OmnicastProvider, { client }, h(Listener, { name: "a" }), h(Listener, { name: "b" }), h(Listener, { name: "c" }), h(Latest), h(Status)));
  await act(async () => root.render(app));
  await act(() => waitFor(() => client.status === "connected", "connected"));
  assert.equal(sockets(), 1, "one socket for every component, through the double mount");
  assert.deepEqual(sent, [], "the double mount sent no subscribe or unsubscribe");
  assert.deepEqual(client.session?.namespaces, ["orders"]);
  assert.equal(container.querySelector("#status")?.textContent, "connected");
  assert.equal(client.listenerCount("order:created"), 4, "one listener per component, none left by the double mount");

  await server.publish(order(1));
  await waitFor(() => latest.length === 1, "the first event");
  await act(async () => setLabel("second"));
  await server.publish(order(2));
  await waitFor(() => latest.length === 2, "the second event");
  assert.deepEqual(calls, { a: 2, b: 2, c: 2 });
  assert.deepEqual(latest, ["first:ORD-1", "second:ORD-2"], "useEvent calls the latest handler");
  assert.deepEqual(sent, [], "a new handler does not resubscribe");

  await act(async () => root.unmount());
  assert.equal(client.listenerCount(), 0, "no listener left after unmount");
  await waitFor(() => client.status === "disconnected", "the connection closed after the last holder left");
  assert.equal(sockets(), 1);
});

test("a component mounting later adds its namespace once, and its unmount removes it", async () => {
  const { client, sent } = countingClient();
  function Orders() {
    useWebSocket({ namespaces: ["orders"] });
    return null;
  }
  function Inventory() {
    const ws = useWebSocket({ namespaces: ["inventory", "orders"] });
    // Left registered on purpose: the hook removes it at unmount.
    ws.on("inventory:low_stock", () => {});
    return null;
  }
  let show: (on: boolean) => void = () => {};
  function App() {
    const [on, set] = useState(false);
    show = set;
    return h(OmnicastProvider, { client }, h(Orders), on ? h(Inventory) : null);
  }
  const root = createRoot(document.getElementById("root")!);
  await act(async () => root.render(h(StrictMode, null, h(App))));
  await act(() => waitFor(() => client.status === "connected", "connected"));
  await act(async () => show(true));
  await waitFor(() => sent.length === 1, "one subscribe");
  assert.deepEqual(sent, [{ type: "subscribe", namespaces: ["inventory"] }]);
  await act(async () => show(false));
  await waitFor(() => sent.length === 2, "one unsubscribe");
  assert.deepEqual(sent[1], { type: "unsubscribe", namespaces: ["inventory"] });
  assert.equal(client.listenerCount(), 0);
  await act(async () => root.unmount());
});

test("useSnapshot: loaded, then followed, the state has every event once, in order, under a full-speed publisher", async () => {
  const client = createClient({ url: server.wsUrl, token: server.token("snap", "admin"), namespaces: [], heartbeat: false, WebSocket: NodeWebSocket });
  const published: { id: string; amount: number }[] = [];
  let running = true;
  const publishing = (async () => {
    for (let n = 0; running; n++) {
      const [id] = await server.publish(payment("c", n));
      published.push({ id: id!, amount: 100 + n });
    }
  })();
  await waitFor(() => published.length >= 3, "events before the snapshot");
  // The backend: the positions, then the data as of those positions.
  const load = async () => {
    const response = await fetch(`${server.httpUrl}/api/positions?namespaces=payments`, { headers: { authorization: `Bearer ${server.apiKey}` } });
    const { positions } = (await response.json()) as { positions: { payments: string } };
    await waitFor(() => published.some((e) => e.id === positions.payments), "the position's event answered");
    const at = published.findIndex((e) => e.id === positions.payments);
    const before = published.length;
    await waitFor(() => published.length >= before + 3, "events between the snapshot and the subscribe");
    return { positions, state: published.slice(0, at + 1).map((e) => e.amount) };
  };
  let latest: ReturnType<typeof useSnapshot<number[]>> = { status: "loading", state: undefined };
  function Payments() {
    latest = useSnapshot(load, { namespaces: ["payments"], apply: (amounts, event) => [...amounts, (event.data as { amount: number }).amount] });
    return null;
  }
  const root = createRoot(document.getElementById("root")!);
  await act(async () => root.render(h(StrictMode, null, h(OmnicastProvider, { client }, h(Payments)))));
  // React renders what the hook set at the end of each `act`: look between them.
  const rendered = async (condition: () => boolean, what: string) => {
    for (let i = 0; i < 500 && !condition(); i++) await act(() => sleep(10));
    assert.ok(condition(), `rendered: ${what}`);
  };
  await rendered(() => latest.status === "ready", "loaded");
  const loaded = published.length;
  await rendered(() => published.length >= loaded + 3, "events after the subscribe");
  running = false;
  await publishing;
  const all = published.map((e) => e.amount);
  await rendered(() => (latest.state?.length ?? 0) >= all.length, "every payment");
  await act(() => sleep(100));
  assert.deepEqual(latest.state, all, "every payment once, in order");
  await act(async () => root.unmount());
  client.disconnect();
});
