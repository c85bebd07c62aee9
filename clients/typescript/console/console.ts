// The operator's console (`GET /console` on any node): the live event stream with filters and
// pause, an event's envelope and who receives it, connections by role and namespace, why events
// did not reach subscribed connections, recovery and slow-consumer figures, and an explain form.
//
// Built on @omnicast/client; bundled into `runtime/assets/console.js` by `npm run console`
// (a test fails when that file is stale). It serves any catalog: the namespaces and roles come
// from the node's /metrics, not from a generated catalog (see build.mjs). Nothing is shown until
// the operator gives a token (for the stream: what its role may see) and a publish API key (for
// /metrics and explain).

import { createClient, type AnyEnvelope, type Namespace, type OmnicastClient } from "../src/index.js";

const MAX_EVENTS = 500;

const $ = <T extends HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing`);
  return element as T;
};

interface Session {
  client: OmnicastClient;
  key: string;
  events: AnyEnvelope[];
  paused: boolean;
  missed: number;
  timer: ReturnType<typeof setInterval>;
}

let session: Session | undefined;

function text(tag: string, content: string, className?: string): HTMLElement {
  const element = document.createElement(tag);
  element.textContent = content;
  if (className) element.className = className;
  return element;
}

async function api(path: string, key: string, body?: unknown): Promise<Response> {
  return fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function open(token: string, key: string): Promise<void> {
  const response = await api("/metrics", key);
  if (!response.ok) {
    $("login-error").textContent = `The node refused the API key (${response.status}).`;
    return;
  }
  const all = samples(await response.text());
  const labels = (name: string, label: string) => [...new Set(all.filter((s) => s.name === name).map((s) => s.labels[label] ?? ""))];
  const namespaces = labels("omnicast_subscriptions", "namespace");
  const option = (value: string) => Object.assign(document.createElement("option"), { value, textContent: value });
  $("filter-namespace").replaceChildren(option(""), ...namespaces.map(option));
  ($("filter-namespace").firstChild as HTMLOptionElement).textContent = "every namespace";
  $("explain-role").replaceChildren(...labels("omnicast_connections", "role").map(option));

  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const client = createClient({ url: `${scheme}://${location.host}/ws`, token, namespaces: namespaces as Namespace[] });
  const current: Session = { client, key, events: [], paused: false, missed: 0, timer: setInterval(() => void stats(), 2000) };
  session = current;
  client.onStatus((status, detail) => {
    $("status").textContent = detail ? `${status}: ${detail.message}` : status;
    if (status === "failed") close();
  });
  // The console is built without a catalog: every node's is "another" one. Show it instead.
  client.onCatalogMismatch(({ server }) => ($("catalog").textContent = `catalog ${server}`));
  client.on("*", (_, event) => {
    if (current.paused) {
      current.missed += 1;
      $("pause").textContent = `Resume (${current.missed} new)`;
    }
    current.events.unshift(event);
    current.events.length = Math.min(current.events.length, MAX_EVENTS);
    if (!current.paused) render();
  });
  client.connect();
  $("login").hidden = true;
  $("app").hidden = false;
  void stats();
}

function close(): void {
  if (!session) return;
  clearInterval(session.timer);
  session.client.disconnect();
  session = undefined;
  $("app").hidden = true;
  $("login").hidden = false;
}

function matches(event: AnyEnvelope): boolean {
  const namespace = $<HTMLSelectElement>("filter-namespace").value;
  const type = $<HTMLInputElement>("filter-type").value.trim();
  const search = $<HTMLInputElement>("filter-text").value.trim().toLowerCase();
  return (
    (!namespace || event.namespace === namespace) &&
    (!type || event.type.includes(type)) &&
    (!search || JSON.stringify(event.data).toLowerCase().includes(search))
  );
}

function render(): void {
  if (!session) return;
  const list = $("events");
  list.replaceChildren(
    ...session.events.filter(matches).map((event) => {
      const item = document.createElement("li");
      item.dataset.id = event.id;
      item.append(text("span", new Date(event.timestamp).toLocaleTimeString(), "time"), text("span", event.type, "type"), text("span", event.id, "id"));
      item.addEventListener("click", () => void detail(event));
      return item;
    }),
  );
}

async function detail(event: AnyEnvelope): Promise<void> {
  if (!session) return;
  $("envelope").textContent = JSON.stringify(event, null, 2);
  $<HTMLInputElement>("explain-id").value = event.id;
  const response = await api("/api/explain", session.key, { id: event.id });
  const answer = (await response.json()) as { recipients?: { total: number; byRole: Record<string, number> }; message?: string };
  const recipients = answer.recipients;
  $("recipients").textContent = recipients
    ? `Live connections that receive it now: ${recipients.total}${Object.entries(recipients.byRole).map(([r, n]) => ` · ${r} ${n}`).join("")}`
    : `Who receives it: ${answer.message ?? response.status}`;
}

/** `name{labels} value` samples of a Prometheus text exposition. */
function samples(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  return text
    .split("\n")
    .filter((line) => line && !line.startsWith("#"))
    .map((line) => {
      const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!match) return undefined;
      const labels: Record<string, string> = {};
      for (const pair of (match[2] ?? "").matchAll(/([a-z_]+)="([^"]*)"/g)) labels[pair[1]!] = pair[2]!;
      return { name: match[1]!, labels, value: Number(match[3]) };
    })
    .filter((s) => s !== undefined);
}

function table(id: string, rows: [string, number][]): void {
  $(id).replaceChildren(
    ...rows.map(([label, value]) => {
      const row = document.createElement("tr");
      row.append(text("td", label), text("td", String(value)));
      return row;
    }),
  );
}

async function stats(): Promise<void> {
  if (!session) return;
  const response = await api("/metrics", session.key);
  if (!response.ok) {
    $("health").textContent = `/metrics: ${response.status} (is the API key right?)`;
    return;
  }
  const all = samples(await response.text());
  const sum = (name: string, by: string): [string, number][] => {
    const totals = new Map<string, number>();
    for (const s of all) if (s.name === name) totals.set(s.labels[by] ?? "", (totals.get(s.labels[by] ?? "") ?? 0) + s.value);
    return [...totals.entries()];
  };
  table("connections", sum("omnicast_connections", "role"));
  table("subscriptions", sum("omnicast_subscriptions", "namespace"));
  table("reasons", sum("omnicast_not_delivered_total", "reason"));
  const total = (name: string, match: (labels: Record<string, string>) => boolean = () => true) =>
    all.filter((s) => s.name === name && match(s.labels)).reduce((n, s) => n + s.value, 0);
  $("health").textContent = [
    `deliveries ${total("omnicast_deliveries_total")}`,
    `recovered ${total("omnicast_recoveries_total", (l) => l.recovered === "true")}`,
    `not recovered ${total("omnicast_recoveries_total", (l) => l.recovered === "false")}`,
    `slow consumers closed ${total("omnicast_connections_closed_total", (l) => l.code === "4008")}`,
  ].join(" · ");
}

async function explain(form: HTMLFormElement): Promise<void> {
  if (!session) return;
  const field = (name: string) => (form.elements.namedItem(name) as HTMLInputElement).value.trim();
  const namespaces = field("namespaces");
  const subject: Record<string, unknown> = { userId: field("user"), role: field("role") };
  if (namespaces) subject.namespaces = namespaces.split(",").map((n) => n.trim());
  const response = await api("/api/explain", session.key, { id: field("id"), subject });
  const answer = (await response.json()) as { decision?: { delivered: boolean; rule: string | null; because: string }; message?: string };
  const decision = answer.decision;
  $("explain-answer").textContent = decision
    ? `${decision.delivered ? "delivered" : `not delivered (${decision.rule})`}: ${decision.because}`
    : `${response.status}: ${answer.message ?? ""}`;
}

function start(): void {
  for (const id of ["filter-namespace", "filter-type", "filter-text"]) $(id).addEventListener("input", render);
  $("pause").addEventListener("click", () => {
    if (!session) return;
    session.paused = !session.paused;
    session.missed = 0;
    $("pause").textContent = session.paused ? "Resume" : "Pause";
    if (!session.paused) render();
  });
  $("logout").addEventListener("click", close);
  $<HTMLFormElement>("login").addEventListener("submit", (e) => {
    e.preventDefault();
    void open($<HTMLInputElement>("token").value.trim(), $<HTMLInputElement>("key").value.trim());
  });
  $<HTMLFormElement>("explain-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void explain(e.target as HTMLFormElement);
  });
}

start();
