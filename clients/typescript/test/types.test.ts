// Type tests: `tsc` compiles this file (npm test does, before running anything). Every
// `@ts-expect-error` line must be an error, or tsc fails with "Unused '@ts-expect-error'"; the
// rest, the reference's client snippets among them, must compile as they are. Nothing here runs.

import { useEffect } from "react";

import {
  createClient,
  EXAMPLES,
  type AnyEnvelope,
  type CustomerOnlineStatusPayload,
  type Envelope,
  type EventMap,
  type InventoryAlertPayload,
  type Namespace,
  type OrderCreatedPayload,
  type OrderStatusChangedPayload,
} from "../src/index.js";
import { useEvent, useWebSocket } from "../src/react.js";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | undefined {
  return undefined;
}

export function theReferenceSnippets(): void {
  // Basic Event Listener
  function MyComponent() {
    const ws = useWebSocket({ namespaces: ["orders"] });
    useEffect(() => {
      const cleanup = ws.on("order:created", (data) => {
        console.log("New order:", data);
      });
      return cleanup;
    }, [ws]);
  }

  // Multiple Event Listeners
  function Multiple() {
    const ws = useWebSocket({ namespaces: ["orders", "inventory"] });
    const handleOrderCreated = (data: OrderCreatedPayload) => console.log(data.total);
    const handleStatusChange = (data: OrderStatusChangedPayload) => console.log(data.newStatus);
    const handleLowStock = (data: InventoryAlertPayload) => console.log(data.currentStock);
    useEffect(() => {
      const cleanup1 = ws.on("order:created", handleOrderCreated);
      const cleanup2 = ws.on("order:status_changed", handleStatusChange);
      const cleanup3 = ws.on("inventory:low_stock", handleLowStock);
      return () => {
        cleanup1();
        cleanup2();
        cleanup3();
      };
    }, [ws]);
  }

  // Typed Event Listeners
  function Typed() {
    const ws = useWebSocket({ namespaces: ["orders"] });
    ws.on<OrderCreatedPayload>("order:created", (data) => {
      console.log(data.orderId, data.total);
    });
  }

  // Log All Events (Development), Track Event Metrics
  function Metrics() {
    const ws = useWebSocket({ debug: true });
    let eventCount = 0;
    const eventTypes = new Set();
    ws.on("*", (data, event) => {
      eventCount++;
      eventTypes.add(event.type);
      console.log({ totalEvents: eventCount, uniqueTypes: eventTypes.size, latestEvent: event.type, data });
    });
  }

  // Test Event Reception
  function Reception() {
    const ws = useWebSocket();
    const testEvent = { type: "order:created", namespace: "orders", data: { orderId: "TEST-001" }, timestamp: Date.now() };
    ws.handleMessage({ data: JSON.stringify(testEvent) });
  }
  void [MyComponent, Multiple, Typed, Metrics, Reception];
}

export function inference(): void {
  const client = createClient({ url: "ws://localhost:8080/ws", namespaces: ["orders", "payments"] });
  client.on("customer:online", (data, event) => {
    expectType<Equal<typeof data, CustomerOnlineStatusPayload>>();
    expectType<Equal<typeof event, Envelope<"customer:online">>>();
    // The stream it was recorded in: its own namespace, or the one `options.namespace` addressed.
    expectType<Equal<typeof event.namespace, Namespace>>();
  });
  // Events that share a payload share its type.
  expectType<Equal<EventMap["customer:offline"], EventMap["customer:online"]>>();
  client.on("*", (_, event) => {
    expectType<Equal<typeof event, AnyEnvelope>>();
    if (event.type === "payment:received") expectType<Equal<typeof event.data.amount, number>>();
  });
  useEvent("inventory:low_stock", (data) => {
    expectType<Equal<typeof data, InventoryAlertPayload>>();
  });
  void client.next("order:created").then((event) => expectType<Equal<typeof event.data, OrderCreatedPayload>>());
  expectType<Equal<(typeof EXAMPLES)["order:created"]["data"], OrderCreatedPayload>>();
}

export function mistakes(): void {
  const client = createClient({ url: "ws://localhost:8080/ws" });
  // @ts-expect-error: a handler annotated with another event's payload
  client.on("order:created", (data: InventoryAlertPayload) => data);
  // @ts-expect-error: the explicit form with another event's payload
  client.on<InventoryAlertPayload>("order:created", (data) => data);
  // @ts-expect-error: an unknown event type
  client.on("order:shipped", () => {});
  // @ts-expect-error: a field the payload lacks
  client.on("order:created", (data) => data.sku);
  // @ts-expect-error: an unknown namespace
  createClient({ url: "ws://localhost:8080/ws", namespaces: ["order"] });
  // @ts-expect-error: an unknown namespace in the hook
  useWebSocket({ namespaces: ["order"] });
  // @ts-expect-error: an unknown namespace to subscribe
  client.subscribe(["inventroy"]);
  // @ts-expect-error: useEvent with an unknown event type
  useEvent("payment:lost", () => {});
  // @ts-expect-error: an enum value that does not exist
  const status: OrderCreatedPayload["status"] = "lost";
  void status;
}
