// The reference's `@/lib/websocket/events` and `@/lib/websocket/helpers`, as an application would
// write them: one publisher for the process, its emitters and helpers exported.

import { createPublisher } from "../../src/publisher.js";

export const publisher = createPublisher({
  url: process.env.OMNICAST_URL ?? "http://127.0.0.1:8080",
  apiKey: process.env.OMNICAST_API_KEY ?? "",
});

export const { wsEvents, emitOrderEvent, emitInventoryEvent, emitProductEvent, emitPaymentEvent } = publisher;
