// The page of the browser test: what a front end writes with `@omnicast/client/react`.
// It reads the server's URL and its token from the query string.

import { createElement as h, StrictMode, useState } from "react";
import { createRoot } from "react-dom/client";

import { createClient } from "../../src/index.js";
import { OmnicastProvider, useEvent, useStatus, useWebSocket } from "../../src/react.js";

const params = new URLSearchParams(location.search);
const client = createClient({
  url: params.get("ws")!,
  token: params.get("token")!,
  namespaces: [],
  reconnect: { minDelay: 100, maxDelay: 500 },
});

function Feed() {
  useWebSocket({ namespaces: ["payments", "orders"] });
  const [items, setItems] = useState<string[]>([]);
  useEvent("payment:received", (data) => setItems((list) => [...list, data.paymentId]));
  useEvent("order:created", (data) => setItems((list) => [...list, `order ${data.orderId}`]));
  return h("ul", { id: "feed" }, items.map((item) => h("li", { key: item }, item)));
}

function Status() {
  return h("p", { id: "status" }, useStatus());
}

createRoot(document.getElementById("root")!).render(
  h(StrictMode, null, h(OmnicastProvider, { client }, h(Status), h(Feed))),
);
