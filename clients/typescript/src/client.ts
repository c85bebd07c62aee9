// The omnicast client: one WebSocket, typed listeners, reference-counted subscriptions,
// reconnect with backoff and full jitter, token refresh, and resume with `since`.
//
// Everything arriving, from the socket or from `handleMessage`, goes through `receive`. The
// public types are in `types.ts`, the listener registry in `listeners.ts`.

import type {
  AnyEnvelope,
  ClientMessage,
  ControlMessage,
  Envelope,
  EventMap,
  EventType,
  Namespace,
  ReadyMessage,
  SubscribedMessage,
} from "./catalog.js";
import { CATALOG_VERSION, CloseCode } from "./catalog.js";
import { type AnyHandler, Listeners, Observers } from "./listeners.js";
import { askWhy, refreshDelay } from "./handshake.js";
import { Positions } from "./positions.js";
import { Subscriptions } from "./subscriptions.js";
import type {
  CatalogMismatch,
  ClientError,
  ClientOptions,
  HeartbeatOptions,
  OmnicastClient,
  ReconnectOptions,
  Recovery,
  Status,
  WebSocketConstructor,
  WebSocketLike,
} from "./types.js";

const DEFAULT_RECONNECT = { minDelay: 500, maxDelay: 20_000, maxAttempts: Infinity };
const DEFAULT_HEARTBEAT = { interval: 20_000, timeout: 10_000 };
/** WebSocket.OPEN. */
const OPEN = 1;

/** Creates a client; it connects on `connect()` (or the first `retain()`). */
export function createClient(options: ClientOptions): OmnicastClient {
  return new Client(options);
}

class Client implements OmnicastClient {
  readonly #options: ClientOptions;
  readonly #reconnect: Required<ReconnectOptions> | false;
  readonly #heartbeat: Required<HeartbeatOptions> | false;
  readonly #log: ((...args: unknown[]) => void) | undefined;

  readonly #listeners = new Listeners((key, event, cause) =>
    this.#report({ kind: "handler", code: event.type, message: `a handler of ${key} threw: ${String(cause)}`, cause }),
  );
  readonly #statusListeners = new Observers<[Status, ClientError | undefined]>();
  readonly #recoveryListeners = new Observers<[Recovery]>();
  readonly #mismatchListeners = new Observers<[CatalogMismatch]>();
  #mismatch: CatalogMismatch | undefined;
  readonly #errorListeners = new Observers<[ClientError]>();

  readonly #subscriptions: Subscriptions;
  /** Where each namespace resumes from, and the ids just received (an exact repeat is dropped). */
  readonly #positions = new Positions();

  #status: Status = "disconnected";
  #socket: WebSocketLike | undefined;
  #wanted = false;
  #attempt = 0;
  #retainers = 0;
  #session: ReadyMessage | undefined;
  #pingId = 0;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  /** The wait before the next attempt, while there is one. */
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #heartbeatTimer: ReturnType<typeof setTimeout> | undefined;
  #deadline: ReturnType<typeof setTimeout> | undefined;
  /** When to refresh the token on the open connection (with `getToken`). */
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /** Until when the connection's token holds (ms since the Unix epoch), from `ready` or `refreshed`. */
  #expiresAt: number | undefined;
  #syncScheduled = false;
  /** Connected is wanted but there is nothing to subscribe to yet. */
  #idle = false;
  /** An attempt is between its start and its socket (awaiting `getToken`). */
  #opening = false;
  #expiredInARow = 0;
  readonly #online = () => {
    // The browser is back online: skip the rest of the backoff.
    if (this.#wanted && this.#retryTimer !== undefined) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
      void this.#open();
    }
  };

  constructor(options: ClientOptions) {
    this.#options = options;
    this.#reconnect = options.reconnect === false ? false : { ...DEFAULT_RECONNECT, ...options.reconnect };
    this.#heartbeat = options.heartbeat === false ? false : { ...DEFAULT_HEARTBEAT, ...options.heartbeat };
    const debug = options.debug;
    this.#log = typeof debug === "function" ? debug : debug ? (...args) => console.debug("[omnicast]", ...args) : undefined;
    this.#subscriptions = new Subscriptions(options.namespaces);
  }

  /** Where the connection is. */
  get status(): Status {
    return this.#status;
  }

  /** The `ready` message of the current connection (user, role, namespaces), if connected. */
  get session(): ReadyMessage | undefined {
    return this.#status === "connected" ? this.#session : undefined;
  }

  /** The namespaces this client wants: those of the options and of every `subscribe` holder. */
  get namespaces(): Namespace[] {
    return [...this.#subscriptions.desired()];
  }

  /** The last event id seen in each namespace: what a reconnect resumes from. */
  get positions(): { [N in Namespace]?: string } {
    return this.#positions.toObject();
  }

  // ---- connection -------------------------------------------------------------------------

  /** Opens the connection (and keeps it open, reconnecting) until `disconnect()`. */
  connect(): void {
    if (this.#wanted) return;
    this.#wanted = true;
    (globalThis as { addEventListener?: (type: string, f: () => void) => void }).addEventListener?.("online", this.#online);
    this.#attempt = 0;
    this.#expiredInARow = 0;
    void this.#open();
  }

  /** Closes the connection normally; no reconnect follows. */
  disconnect(): void {
    this.#wanted = false;
    this.#idle = false;
    (globalThis as { removeEventListener?: (type: string, f: () => void) => void }).removeEventListener?.("online", this.#online);
    this.#clearTimers();
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) {
      this.#detach(socket);
      this.#log?.("close", CloseCode.NORMAL);
      socket.close(CloseCode.NORMAL, "bye");
    }
    this.#setStatus("disconnected");
  }

  /** Holds the connection open: the first holder connects, and when the last lets go the client
   * disconnects one tick later, unless someone holds it again meanwhile (React's StrictMode
   * mounts twice; this keeps it to one socket). Returns the release. */
  retain(): () => void {
    this.#retainers += 1;
    if (this.#retainers === 1) this.connect();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#retainers -= 1;
      this.#later(() => {
        if (this.#retainers === 0) this.disconnect();
      }, 0);
    };
  }

  async #open(): Promise<void> {
    if (!this.#wanted || this.#socket || this.#opening) return;
    this.#opening = true;
    try {
      await this.#openSocket();
    } finally {
      this.#opening = false;
    }
  }

  async #openSocket(): Promise<void> {
    this.#idle = this.#subscriptions.known && this.#subscriptions.desired().size === 0;
    if (this.#idle) {
      // Nothing to subscribe to yet: the first `subscribe` connects.
      this.#setStatus(this.#attempt === 0 ? "connecting" : "reconnecting");
      return;
    }
    this.#setStatus(this.#attempt === 0 ? "connecting" : "reconnecting");
    let token: string | undefined;
    try {
      token = this.#options.getToken ? await this.#options.getToken() : this.#options.token;
    } catch (cause) {
      this.#report({ kind: "refused", code: "get_token_failed", message: `getToken threw: ${String(cause)}`, cause });
      this.#retry();
      return;
    }
    if (!this.#wanted || this.#socket) return;
    const url = this.#url(token);
    const Ctor = this.#options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Ctor) {
      this.#fail({
        kind: "refused",
        code: "no_websocket",
        message: "no WebSocket constructor: pass `WebSocket` (Node 20 needs `--experimental-websocket` or the `ws` package)",
      });
      return;
    }
    this.#log?.("connect", url.replace(/token=[^&]*/, "token=…"));
    let socket: WebSocketLike;
    try {
      socket = new Ctor(url);
    } catch (cause) {
      this.#fail({ kind: "refused", code: "invalid_url", message: String(cause), cause });
      return;
    }
    this.#socket = socket;
    this.#subscriptions.opening();
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.#log?.("open");
      if (this.#heartbeat) this.#expect(this.#heartbeat.timeout, "no `ready` from the server");
    };
    socket.onmessage = (event) => {
      if (typeof event.data === "string") this.#receive(event.data);
    };
    const lost = (code: number, reason: string) => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      this.#session = undefined;
      this.#stopHeartbeat();
      this.#stopRefresh();
      this.#detach(socket);
      if (!opened) {
        void this.#diagnose(url);
      } else {
        this.#closed(code, reason);
      }
    };
    // Some implementations (Node 20's) report a refused handshake with `error` and no `close`.
    socket.onerror = () => {
      this.#log?.("socket error");
      if (!opened) lost(1006, "handshake failed");
    };
    socket.onclose = (event) => {
      this.#log?.("closed", event.code, event.reason);
      lost(event.code, event.reason);
    };
  }

  #url(token: string | undefined): string {
    const url = new URL(this.#options.url);
    if (token !== undefined) url.searchParams.set("token", token);
    const desired = this.#subscriptions.known ? this.#subscriptions.desired() : undefined;
    if (desired) url.searchParams.set("namespaces", [...desired].join(","));
    const since = this.#since(desired);
    if (since.length > 0) url.searchParams.set("since", since.join(","));
    return url.toString();
  }

  /** The positions to resume from, for `namespaces` (all known ones when undefined). */
  #since(namespaces: Iterable<Namespace> | undefined): string[] {
    if (this.#options.resume === false) return [];
    if (!namespaces) return this.#positions.all();
    const out: string[] = [];
    for (const ns of namespaces) {
      const id = this.#positions.get(ns);
      if (id) out.push(id);
    }
    return out;
  }

  /** The server closed an open connection. */
  #closed(code: number, reason: string): void {
    if (!this.#wanted) return;
    if (code === CloseCode.NORMAL) {
      // The server (or a proxy) ended it normally: nothing to come back for.
      this.#wanted = false;
      this.#setStatus("disconnected", { kind: "closed", code, message: reason || "closed normally" });
      return;
    }
    this.#report({ kind: "closed", code, message: reason || `closed with ${code}` });
    if (code === CloseCode.TOKEN_EXPIRED || code === CloseCode.REVOKED) {
      // Either way the token is done: only a new one (from getToken) can come back.
      const why = code === CloseCode.REVOKED ? "token_revoked" : "token_expired";
      if (!this.#options.getToken) {
        this.#fail({ kind: "refused", code: why, message: `${why.replace("_", " ")} and there is no getToken to renew it` });
        return;
      }
      this.#retry(0);
      return;
    }
    if (code === CloseCode.RESUME_REQUIRED) {
      this.#retry(0);
      return;
    }
    this.#retry();
  }

  /** The handshake failed before the socket opened. WebSocket APIs hide the HTTP answer, so ask
   * the same URL over HTTP: the server checks the token before the upgrade and says why. */
  async #diagnose(url: string): Promise<void> {
    const fetcher = this.#options.fetch ?? (globalThis as { fetch?: ClientOptions["fetch"] }).fetch;
    if (!this.#wanted) return;
    if (!fetcher) {
      this.#retry();
      return;
    }
    const answer = await askWhy(fetcher, url);
    if (!answer) {
      // Unreachable (or the answer cannot be read): try again later.
      this.#retry();
      return;
    }
    const { status, body, retryAfter } = answer;
    if (!this.#wanted) return;
    const refusal: ClientError = {
      kind: "refused",
      code: body.error ?? status,
      message: body.message ?? `the handshake was refused with ${status}`,
    };
    if (body.error === "token_expired" && this.#options.getToken && this.#expiredInARow === 0) {
      this.#expiredInARow += 1;
      this.#report(refusal);
      this.#retry(0);
    } else if (body.error === "invalid_since") {
      // Positions from another catalog: start over without them.
      this.#report(refusal);
      this.#positions.clear();
      this.#retry(0);
    } else if (status === 401 || status === 403 || (status === 400 && body.error !== undefined)) {
      this.#fail(refusal);
    } else {
      if (body.error) this.#report(refusal);
      this.#retry(retryAfter === undefined ? undefined : retryAfter * 1000);
    }
  }

  /** Schedules the next attempt: after `delay` ms, or the backoff's. */
  #retry(delay?: number): void {
    if (!this.#wanted) return;
    const reconnect = this.#reconnect;
    if (!reconnect) {
      this.#wanted = false;
      this.#setStatus("disconnected");
      return;
    }
    if (this.#attempt >= reconnect.maxAttempts) {
      this.#fail({ kind: "closed", message: `gave up after ${this.#attempt} attempts` });
      return;
    }
    const backoff = Math.min(
      reconnect.maxDelay,
      reconnect.minDelay + Math.random() * reconnect.minDelay * 2 ** Math.min(this.#attempt, 30),
    );
    const wait = Math.max(delay ?? backoff, 0);
    this.#attempt += 1;
    this.#setStatus("reconnecting");
    this.#log?.("reconnect in", Math.round(wait), "ms");
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#open();
    }, wait);
  }

  #fail(error: ClientError): void {
    this.#wanted = false;
    this.#clearTimers();
    this.#report(error);
    this.#setStatus("failed", error);
  }

  #detach(socket: WebSocketLike): void {
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
  }

  /** Drops a connection that went silent and reconnects; waiting for its close could take minutes. */
  #drop(why: string): void {
    const socket = this.#socket;
    if (!socket) return;
    this.#log?.("drop:", why);
    this.#socket = undefined;
    this.#session = undefined;
    this.#stopHeartbeat();
    this.#stopRefresh();
    this.#detach(socket);
    try {
      socket.close(4000, why.slice(0, 100));
    } catch {
      // Already closing.
    }
    this.#report({ kind: "closed", message: why });
    this.#retry();
  }

  // ---- heartbeat --------------------------------------------------------------------------

  #startHeartbeat(): void {
    const heartbeat = this.#heartbeat;
    if (!heartbeat) return;
    this.#stopHeartbeat();
    const beat = () => {
      this.#pingId += 1;
      this.#send({ type: "ping", id: this.#pingId });
      this.#expect(heartbeat.timeout, "no answer to a ping");
      this.#heartbeatTimer = setTimeout(beat, heartbeat.interval);
    };
    this.#heartbeatTimer = setTimeout(beat, heartbeat.interval);
  }

  #expect(timeout: number, why: string): void {
    if (this.#deadline === undefined) this.#deadline = setTimeout(() => this.#drop(why), timeout);
  }

  #stopHeartbeat(): void {
    clearTimeout(this.#heartbeatTimer);
    clearTimeout(this.#deadline);
    this.#heartbeatTimer = this.#deadline = undefined;
  }

  #later(f: () => void, ms: number): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      f();
    }, ms);
    this.#timers.add(timer);
  }

  #clearTimers(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#stopHeartbeat();
    this.#stopRefresh();
  }

  // ---- refresh ----------------------------------------------------------------------------

  /** Refreshes before the token's rights end (a fifth of what is left before, at most a minute),
   * if `getToken` can bring a new one; a refresh that did not move the end on is not repeated. */
  #scheduleRefresh(expiresAt: number | undefined): void {
    const before = this.#expiresAt;
    this.#expiresAt = expiresAt;
    this.#stopRefresh();
    if (expiresAt === undefined || !this.#options.getToken) return;
    if (before !== undefined && expiresAt <= before) return;
    this.#refreshTimer = setTimeout(() => void this.#refresh(), refreshDelay(expiresAt));
  }

  #stopRefresh(): void {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
  }

  /** Sends a fresh token on the open connection: the server answers `refreshed` (or an error,
   * and the connection keeps its rights until they end: then it reconnects with `getToken`). */
  async #refresh(): Promise<void> {
    this.#stopRefresh();
    const socket = this.#socket;
    if (!socket || !this.#options.getToken) return;
    let token: string;
    try {
      token = await this.#options.getToken();
    } catch (cause) {
      this.#report({ kind: "refused", code: "get_token_failed", message: `getToken threw: ${String(cause)}`, cause });
      return;
    }
    if (this.#socket !== socket) return;
    this.#log?.("refresh");
    this.#send({ type: "refresh", token });
  }

  // ---- subscriptions ----------------------------------------------------------------------

  /** Holds `namespaces`; returns the release. Holders are counted, so two parts of an application
   * sharing a namespace never undo each other. Changes reach the server one tick later, so a
   * release and a hold in the same tick send nothing. Replayed on every reconnect. */
  subscribe(namespaces: readonly Namespace[]): () => void {
    const release = this.#subscriptions.hold(namespaces);
    this.#scheduleSync();
    return () => {
      release();
      this.#scheduleSync();
    };
  }

  /** Lets go of `namespaces`: one `subscribe` hold of each, or the options' own. */
  unsubscribe(namespaces: readonly Namespace[]): void {
    this.#subscriptions.letGo(namespaces);
    this.#scheduleSync();
  }

  resumeFrom(positions: { [N in Namespace]?: string }): void {
    for (const [ns, id] of Object.entries(positions) as [Namespace, string | undefined][]) {
      if (id === undefined) continue;
      if (this.#socket && this.#subscriptions.requested(ns)) {
        this.#report({ kind: "message", message: `resumeFrom: \`${ns}\` is subscribed already; subscribe it after resumeFrom` });
        continue;
      }
      this.#positions.joined(ns, id);
    }
  }

  #scheduleSync(): void {
    if (this.#syncScheduled) return;
    this.#syncScheduled = true;
    setTimeout(() => {
      this.#syncScheduled = false;
      this.#sync();
    }, 0);
  }

  /** Sends what turns the server's subscription into the wanted one. */
  #sync(): void {
    if (this.#idle) {
      void this.#open();
      return;
    }
    if (this.#status !== "connected") return; // `ready` will reconcile.
    const { add, remove } = this.#subscriptions.changes();
    if (add.length > 0) {
      const since = this.#since(add);
      this.#send(since.length > 0 ? { type: "subscribe", namespaces: add, since } : { type: "subscribe", namespaces: add });
    }
    if (remove.length > 0) {
      this.#send({ type: "unsubscribe", namespaces: remove });
      for (const ns of remove) this.#positions.delete(ns);
    }
  }

  #send(message: ClientMessage): void {
    const socket = this.#socket;
    if (!socket || socket.readyState !== OPEN) return;
    const text = JSON.stringify(message);
    this.#log?.("send", text);
    socket.send(text);
  }

  // ---- receiving --------------------------------------------------------------------------

  /** Feeds a message in as if the socket had received it (for tests: `handleMessage({ data })`). */
  handleMessage(message: { data: unknown }): void {
    if (typeof message.data === "string") this.#receive(message.data);
  }

  #receive(text: string): void {
    this.#log?.("recv", text);
    if (this.#deadline !== undefined) {
      clearTimeout(this.#deadline);
      this.#deadline = undefined;
    }
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch (cause) {
      this.#report({ kind: "message", message: "a frame that is not JSON", cause });
      return;
    }
    if (typeof message !== "object" || message === null || typeof (message as { type?: unknown }).type !== "string") {
      this.#report({ kind: "message", message: "a frame without a `type`" });
      return;
    }
    const type = (message as { type: string }).type;
    if (type.includes(":")) this.#event(message as AnyEnvelope);
    else this.#control(message as ControlMessage);
  }

  #control(message: ControlMessage): void {
    switch (message.type) {
      case "ready":
        this.#session = message;
        this.#checkCatalog(message.catalogVersion);
        // Without `namespaces` in the options, the server's default becomes the base, so a
        // reconnect asks for the same and resumes only namespaces it subscribes.
        this.#subscriptions.ready(message.namespaces);
        this.#joined(message);
        this.#attempt = 0;
        this.#expiredInARow = 0;
        this.#expiresAt = undefined;
        this.#scheduleRefresh(message.expiresAt);
        this.#setStatus("connected");
        this.#startHeartbeat();
        this.#sync();
        break;
      case "refreshed":
        // From here on the server filters with these rights.
        if (this.#session) this.#session = { ...this.#session, role: message.role, namespaces: message.namespaces, expiresAt: message.expiresAt };
        this.#subscriptions.refreshed(message.namespaces, message.dropped ?? []);
        for (const ns of message.dropped ?? []) this.#positions.delete(ns);
        this.#scheduleRefresh(message.expiresAt);
        break;
      case "reauthorize":
        // The application changed this user's rights: a token from getToken now, before the deadline.
        void this.#refresh();
        break;
      case "subscribed":
        this.#joined(message);
        break;
      case "unsubscribed":
        break;
      case "pong":
        break;
      case "error":
        this.#report({ kind: "server", code: message.code, message: message.message });
        break;
    }
  }

  /** Compares the server's catalog with this client's; tells the listeners when they differ. */
  #checkCatalog(server: string): void {
    this.#mismatch = server === CATALOG_VERSION ? undefined : { server, client: CATALOG_VERSION };
    if (this.#mismatch === undefined) return;
    this.#log?.("catalog mismatch", server, CATALOG_VERSION);
    if (this.#mismatchListeners.size === 0) {
      console.warn(
        `[omnicast] the server runs catalog ${server}, this client was generated from ${CATALOG_VERSION}: events of types it does not know reach '*' listeners only`,
      );
      return;
    }
    this.#mismatchListeners.notify(this.#threw("a catalog mismatch listener"), this.#mismatch);
  }

  /** Namespaces joined (by `ready` or `subscribed`): move each on to where it was joined, except
   * those whose missed events follow (they move it on themselves); report recovery. */
  #joined(message: ReadyMessage | SubscribedMessage): void {
    const recovered = message.recovered ?? {};
    for (const [ns, id] of Object.entries(message.positions) as [Namespace, string][]) {
      if (recovered[ns] !== true) this.#positions.joined(ns, id);
    }
    if (Object.keys(recovered).length > 0) {
      this.#recoveryListeners.notify(this.#threw("a recovery listener"), recovered);
    }
  }

  #event(event: AnyEnvelope): void {
    if (typeof event.id === "string" && !this.#positions.received(event.id)) {
      this.#log?.("duplicate dropped", event.id);
      return;
    }
    this.#listeners.dispatch(event.type, event);
    this.#listeners.dispatch("*", event);
  }

  // ---- listeners --------------------------------------------------------------------------

  on(type: string, handler: AnyHandler): () => void {
    return this.#listeners.add(type, handler, false);
  }

  once(type: string, handler: AnyHandler): () => void {
    return this.#listeners.add(type, handler, true);
  }

  off(type: string, handler: AnyHandler): void {
    this.#listeners.off(type, handler);
  }

  next(type: string, options: { timeout?: number } = {}): Promise<never> {
    return this.#listeners.next(type, options.timeout ?? 5000) as Promise<never>;
  }

  /** How many event listeners are registered (for one type, or all). */
  listenerCount(type?: EventType | "*"): number {
    return this.#listeners.count(type);
  }

  /** Calls `listener` on every status change; returns the cleanup. */
  onStatus(listener: (status: Status, detail?: ClientError) => void): () => void {
    return this.#statusListeners.add(listener);
  }

  /** Calls `listener` when a server runs another catalog; returns the cleanup. */
  onCatalogMismatch(listener: (mismatch: CatalogMismatch) => void): () => void {
    return this.#mismatchListeners.add(listener);
  }

  /** The current connection's catalog mismatch, if any. */
  get catalogMismatch(): CatalogMismatch | undefined {
    return this.#status === "connected" ? this.#mismatch : undefined;
  }

  /** Calls `listener` with what a (re)connection or subscribe recovered; where a namespace is
   * `false`, reload that state from its source. Returns the cleanup. */
  onRecovery(listener: (recovery: Recovery) => void): () => void {
    return this.#recoveryListeners.add(listener);
  }

  /** Calls `listener` with every problem: a throwing handler, a server `error`, a refusal, a
   * close. Without any listener they go to `console.error` (closes only to `debug`). */
  onError(listener: (error: ClientError) => void): () => void {
    return this.#errorListeners.add(listener);
  }

  #report(error: ClientError): void {
    this.#log?.("error", error.kind, error.code ?? "", error.message);
    if (this.#errorListeners.size === 0) {
      if (error.kind !== "closed") console.error("[omnicast]", error.message, error.cause ?? "");
      return;
    }
    // An error listener that throws has nowhere left to report to.
    this.#errorListeners.notify(() => {}, error);
  }

  /** What a throwing listener of `what` is reported as. */
  #threw(what: string): (cause: unknown) => void {
    return (cause) => this.#report({ kind: "handler", message: `${what} threw`, cause });
  }

  #setStatus(status: Status, detail?: ClientError): void {
    if (this.#status === status) return;
    this.#status = status;
    this.#log?.("status", status);
    this.#statusListeners.notify(this.#threw("a status listener"), status, detail);
  }
}
