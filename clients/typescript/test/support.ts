// Test support: a real `omnicast serve` on a free loopback port, tokens, publishing, a TCP proxy
// that can cut or freeze connections, and bounded waits.

import { spawn, type ChildProcess } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { createServer, connect, type Server, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

import type { WebSocketConstructor } from "../src/index.js";

/** The binary under test: `OMNICAST_BIN` (set by `cargo test`), else the workspace's debug build. */
export const BIN = process.env.OMNICAST_BIN ?? fileURLToPath(new URL("../../../../target/debug/omnicast", import.meta.url));

/** Node 20 has a WebSocket only with `--experimental-websocket`; the test script passes it. */
export const NodeWebSocket = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket as WebSocketConstructor;

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString("base64url");
}

export interface Server_ {
  /** `127.0.0.1:port`. */
  addr: string;
  port: number;
  wsUrl: string;
  httpUrl: string;
  secret: string;
  /** The publish API key the server was started with. */
  apiKey: string;
  /** An HS256 token for `sub` with `role`, valid for `ttlSecs`, with `extra` claims. */
  token(sub: string, role: string, ttlSecs?: number, extra?: Record<string, unknown>): string;
  /** `POST /api/revocations` with `body`; the answer's status. */
  revoke(body: object): Promise<number>;
  /** Publishes events (one or a batch); returns their ids. */
  publish(events: object | object[], headers?: Record<string, string>): Promise<string[]>;
  stop(): Promise<void>;
}

/** Starts `omnicast serve` on a free port with a fresh secret and API key, plus `args`. */
export async function startServer(args: string[] = []): Promise<Server_> {
  const secret = randomBytes(24).toString("hex");
  const apiKey = randomBytes(24).toString("hex");
  const child: ChildProcess = spawn(BIN, ["serve", "--bind", "127.0.0.1:0", ...args], {
    env: { ...process.env, OMNICAST_JWT_SECRET: secret, OMNICAST_API_KEY: apiKey, RUST_LOG: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const addr = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${BIN} did not start within 10 s`)), 10_000);
    child.once("error", (err) => reject(new Error(`cannot run ${BIN} (build it with \`cargo build -p omnicast-cli\`): ${err.message}`)));
    child.once("exit", (code) => reject(new Error(`${BIN} exited with ${code}`)));
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      const match = /^omnicast listening on ws:\/\/([^/]+)\/ws/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
  });
  const port = Number(addr.split(":")[1]);
  const httpUrl = `http://${addr}`;
  return {
    addr,
    port,
    wsUrl: `ws://${addr}/ws`,
    httpUrl,
    secret,
    apiKey,
    token(sub, role, ttlSecs = 3600, extra = {}) {
      const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
      const claims = b64url(JSON.stringify({ sub, role, exp: Math.floor(Date.now() / 1000) + ttlSecs, ...extra }));
      const signature = createHmac("sha256", secret).update(`${header}.${claims}`).digest("base64url");
      return `${header}.${claims}.${signature}`;
    },
    async publish(events, headers = {}) {
      const response = await fetch(`${httpUrl}/api/events`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json", ...headers },
        body: JSON.stringify(events),
      });
      const body = (await response.json()) as { id?: string; ids?: string[] };
      if (response.status !== 202) throw new Error(`publish: ${response.status} ${JSON.stringify(body)}`);
      return body.ids ?? [body.id!];
    },
    async revoke(body) {
      const response = await fetch(`${httpUrl}/api/revocations`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      await response.text();
      return response.status;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** A TCP proxy in front of a server: `down()` refuses and cuts every connection, `up()` takes them
 * again on the same port, `freeze()` keeps the open connections open but forwards nothing more on them. */
export interface Proxy {
  port: number;
  url(path?: string): string;
  /** Connections accepted so far. */
  readonly accepted: number;
  cut(): void;
  freeze(): void;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<Proxy> {
  const sockets = new Set<Socket>();
  const frozen = new Set<Socket>();
  let accepted = 0;
  const handle = (client: Socket) => {
    accepted += 1;
    const upstream = connect(targetPort, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    const forward = (from: Socket, to: Socket) => from.on("data", (chunk) => {
      if (!frozen.has(from)) to.write(chunk);
    });
    forward(client, upstream);
    forward(upstream, client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      for (const s of [client, upstream]) {
        sockets.delete(s);
        frozen.delete(s);
      }
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  };
  let server: Server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const cut = () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  return {
    port,
    url: (path = "/ws") => `ws://127.0.0.1:${port}${path}`,
    get accepted() {
      return accepted;
    },
    cut,
    freeze() {
      for (const socket of sockets) frozen.add(socket);
    },
    async down() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        cut();
      });
    },
    async up() {
      server = createServer(handle);
      await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    },
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Waits until `condition()` holds, checking every 10 ms, for at most `ms`. */
export async function waitFor(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A payment of `customerId`, in `namespace: payments`. */
export function payment(customerId: string, n: number): object {
  return {
    type: "payment:received",
    data: { paymentId: `PAY-${customerId}-${n}`, orderId: `ORD-${n}`, customerId, amount: 100 + n, method: "card", status: "success" },
  };
}

/** An order event (staff and up only). */
export function order(n: number): object {
  return {
    type: "order:created",
    data: { orderId: `ORD-${n}`, customerId: "CUST-X", customerName: "X", total: n, status: "pending", channel: "online" },
  };
}

/** A public event every role may receive. */
export function priceChange(n: number): object {
  return {
    type: "product:price_changed",
    data: { productId: `PROD-${n}`, productName: "P", sku: "SKU", oldPrice: 10, newPrice: 10 + n },
  };
}
