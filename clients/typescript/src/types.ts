// The client's public types: its options, statuses, errors, and the listener and client
// interfaces. The implementation is `client.ts`.

import type { AnyEnvelope, Envelope, EventMap, EventType, Namespace, ReadyMessage } from "./catalog.js";

/** Where the connection is. `connected` means the server's `ready` arrived, not just an open socket. */
export type Status = "connecting" | "connected" | "reconnecting" | "disconnected" | "failed";

/** The part of the WebSocket API the client uses: the browser's, Node's (22+, or 20 with
 * `--experimental-websocket`), or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: never) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor, such as `globalThis.WebSocket` or `ws`'s default export. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Reconnection: the delay before attempt `n` (from 0) is `min(maxDelay, minDelay + random(0, minDelay * 2^n))`. */
export interface ReconnectOptions {
  /** ms; default 500. */
  minDelay?: number;
  /** ms; default 20000. */
  maxDelay?: number;
  /** Give up (status `failed`) after this many attempts in a row; default: never. */
  maxAttempts?: number;
}

/** Liveness: a `ping` every `interval` ms; no message at all within `timeout` ms of it drops the
 * connection and reconnects. The same `timeout` bounds the wait for `ready`. */
export interface HeartbeatOptions {
  /** ms; default 20000 (the server closes a connection idle for 75 s). */
  interval?: number;
  /** ms; default 10000. */
  timeout?: number;
}

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** The server's WebSocket endpoint, `ws://host:port/ws`. */
  url: string;
  /** A fixed token. Prefer `getToken` for tokens that expire. */
  token?: string;
  /** Called before every connection attempt, so an expired token is never reused. */
  getToken?: () => string | Promise<string>;
  /** The namespaces this client always holds. Default: every namespace the token's role may
   * receive events of (the server's default). `[]`: only what `subscribe` adds. */
  namespaces?: readonly Namespace[];
  /** `false`: never reconnect. Default: reconnect with backoff. */
  reconnect?: false | ReconnectOptions;
  /** `false`: no client pings. */
  heartbeat?: false | HeartbeatOptions;
  /** Resume each namespace from the last event seen when reconnecting. Default true. */
  resume?: boolean;
  /** Log every frame and transition: `true` for `console.debug`, or a function. */
  debug?: boolean | ((...args: unknown[]) => void);
  /** The WebSocket constructor. Default: `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** Used to learn why a handshake was refused (401 ...). Default: `globalThis.fetch`. */
  fetch?: (url: string) => Promise<{ status: number; headers: { get(name: string): string | null }; text(): Promise<string> }>;
}

/** What went wrong, reported to `onError` listeners; the stream goes on unless `status` says otherwise. */
export interface ClientError {
  /** `handler`: a listener threw. `server`: an `error` message. `refused`: the handshake was
   * refused (`code` is the server's `error`). `message`: an unreadable frame. `closed`: the
   * server closed the connection (`code` is the close code). */
  kind: "handler" | "server" | "refused" | "message" | "closed";
  code?: string | number;
  message: string;
  cause?: unknown;
}

/** After a (re)connection or a subscribe that resumed: for each namespace named in `since`,
 * whether every missed event follows (`true`) or the application must reload its state (`false`). */
export type Recovery = { [N in Namespace]?: boolean };

/** The event types whose payload is exactly `P` (for the explicit `on<Payload>(type, ...)` form). */
export type TypesWithPayload<P> = {
  [K in EventType]: [EventMap[K]] extends [P] ? ([P] extends [EventMap[K]] ? K : never) : never;
}[EventType];

/** A listener of one event type. */
export type Handler<K extends EventType> = (data: EventMap[K], event: Envelope<K>) => void;
/** A listener of every event. */
export type AnyHandlerOf = (data: AnyEnvelope["data"], event: AnyEnvelope) => void;

/** Listener registration, shared by the client and React's handles. */
export interface Listen {
  /** Calls `handler` for each event of `type`; returns the cleanup that removes it. */
  on<K extends EventType>(type: K, handler: Handler<K>): () => void;
  /** The reference's explicit form: `on<OrderCreatedPayload>('order:created', (data) => ...)`. */
  on<P extends EventMap[EventType]>(type: TypesWithPayload<P>, handler: (data: P, event: AnyEnvelope) => void): () => void;
  /** Every event: `on('*', (data, event) => ...)`. */
  on(type: "*", handler: AnyHandlerOf): () => void;
  /** As `on`, for the next event only. */
  once<K extends EventType>(type: K, handler: Handler<K>): () => void;
  once(type: "*", handler: AnyHandlerOf): () => void;
  /** Removes a handler given to `on` or `once`. */
  off<K extends EventType>(type: K | "*", handler: Handler<K> | AnyHandlerOf): void;
  /** The next event of `type` (for tests); rejects after `timeout` ms (default 5000). */
  next<K extends EventType>(type: K, options?: { timeout?: number }): Promise<Envelope<K>>;
  next(type: "*", options?: { timeout?: number }): Promise<AnyEnvelope>;
}

/** One connection to an omnicast server, made by {@link createClient}. */
export interface OmnicastClient extends Listen {
  /** Where the connection is. */
  readonly status: Status;
  /** The `ready` message of the current connection (user, role, namespaces), if connected. */
  readonly session: ReadyMessage | undefined;
  /** The namespaces this client wants: those of the options and of every `subscribe` holder. */
  readonly namespaces: Namespace[];
  /** The last event id seen in each namespace: what a reconnect resumes from. */
  readonly positions: { [N in Namespace]?: string };
  /** Opens the connection (and keeps it open, reconnecting) until `disconnect()`. */
  connect(): void;
  /** Closes the connection normally; no reconnect follows. */
  disconnect(): void;
  /** Holds the connection open: the first holder connects; when the last lets go the client
   * disconnects one tick later unless someone holds it again meanwhile (React's StrictMode mounts
   * twice; this keeps it to one socket). Returns the release. */
  retain(): () => void;
  /** Holds `namespaces`; returns the release. Holders are counted, so two parts of an application
   * sharing a namespace never undo each other. Changes reach the server one tick later, so a
   * release and a hold in the same tick send nothing. Replayed on every reconnect. */
  subscribe(namespaces: readonly Namespace[]): () => void;
  /** Lets go of `namespaces`: one `subscribe` hold of each, or else the options' own. */
  unsubscribe(namespaces: readonly Namespace[]): void;
  /** Load, then follow: resume these namespaces from `positions` (`GET /api/positions`' answer,
   * read before the snapshot the application loaded) when they are next subscribed: the connect,
   * or a `subscribe`. Every event after them then arrives once, in order; where `onRecovery`
   * says `false`, load the snapshot again. A namespace the connection already has is left as it
   * is (reported as an error). */
  resumeFrom(positions: { [N in Namespace]?: string }): void;
  /** Feeds a message in as if the socket had received it (tests: `handleMessage({ data })`). */
  handleMessage(message: { data: unknown }): void;
  /** How many event listeners are registered (for one type, or all). */
  listenerCount(type?: EventType | "*"): number;
  /** Calls `listener` on every status change; returns the cleanup. */
  onStatus(listener: (status: Status, detail?: ClientError) => void): () => void;
  /** Calls `listener` with what a (re)connection or subscribe recovered; where a namespace is
   * `false`, reload that state from its source. Returns the cleanup. */
  onRecovery(listener: (recovery: Recovery) => void): () => void;
  /** Calls `listener` with every problem: a throwing handler, a server `error`, a refusal, a
   * close. Without any listener they go to `console.error` (closes only to `debug`). */
  onError(listener: (error: ClientError) => void): () => void;
  /** Calls `listener` when a server's `ready` names another catalog than the one this client was
   * generated from (after a deploy of one side only). The client keeps working: events of types
   * it knows arrive as before, others reach `'*'` listeners. Without any listener it is written
   * to `console.warn` once per connection. Returns the cleanup. */
  onCatalogMismatch(listener: (mismatch: CatalogMismatch) => void): () => void;
  /** The current connection's catalog mismatch, if its server runs another catalog. */
  readonly catalogMismatch: CatalogMismatch | undefined;
}

/** A server's catalog version against this client's (`CATALOG_VERSION`). */
export interface CatalogMismatch {
  server: string;
  client: string;
}
