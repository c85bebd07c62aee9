// React bindings: one shared client for the whole tree (`<OmnicastProvider>`), `useWebSocket`
// as the reference uses it, `useEvent`, `useStatus`, and `useSnapshot` (load, then follow).
//
// StrictMode mounts every effect twice in development. Nothing here sends a frame for that:
// the provider holds the connection with `retain()` and each hook its namespaces with
// `subscribe()`, and both let go one tick late, so the release and the hold of a double mount
// cancel out.

import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from "react";

import type { AnyEnvelope, EventType, Namespace } from "./catalog.js";
import { EVENT_NAMESPACES } from "./catalog.js";
import type { Handler, Listen, OmnicastClient, Status } from "./types.js";

const ClientContext = createContext<OmnicastClient | null>(null);

/** Shares `client` with every hook below; holds its connection open while mounted. */
export function OmnicastProvider(props: { client: OmnicastClient; children?: ReactNode }): ReactNode {
  const { client } = props;
  useEffect(() => client.retain(), [client]);
  return createElement(ClientContext.Provider, { value: client }, props.children);
}

/** The client of the nearest `<OmnicastProvider>`. */
export function useClient(): OmnicastClient {
  const client = useContext(ClientContext);
  if (!client) {
    throw new Error("omnicast: put an <OmnicastProvider client={createClient(...)}> above this component");
  }
  return client;
}

/** Options of {@link useWebSocket}. */
export interface UseWebSocketOptions {
  /** Namespaces this component needs; held while it is mounted. */
  namespaces?: readonly Namespace[];
  /** Log every event this component's client receives while it is mounted. */
  debug?: boolean;
}

/** What `useWebSocket` returns: the shared client's listening API, plus what a component
 * needs. Stable for the component's life, so `[ws]` dependencies do not re-run. Listeners
 * added through it that are still there at unmount are removed then. */
export interface WebSocketHandle extends Listen {
  readonly client: OmnicastClient;
  readonly status: Status;
  subscribe(namespaces: readonly Namespace[]): () => void;
  unsubscribe(namespaces: readonly Namespace[]): void;
  handleMessage(message: { data: unknown }): void;
}

/** The reference's hook: `const ws = useWebSocket({ namespaces: ['orders'] })`, then
 * `ws.on('order:created', (data) => ...)` in an effect, returning its cleanup. */
export function useWebSocket(options: UseWebSocketOptions = {}): WebSocketHandle {
  const client = useClient();
  const key = [...new Set(options.namespaces ?? [])].sort().join(",");
  useEffect(() => (key ? client.subscribe(key.split(",") as Namespace[]) : undefined), [client, key]);
  const debug = options.debug === true;
  useEffect(() => {
    if (!debug) return undefined;
    return client.on("*", (data, event) => console.debug("[omnicast]", event.type, data));
  }, [client, debug]);
  const handle = useMemo(() => createHandle(client), [client]);
  useEffect(() => handle.release, [handle]);
  return handle.api;
}

function createHandle(client: OmnicastClient): { api: WebSocketHandle; release: () => void } {
  const cleanups = new Set<() => void>();
  const track = (cleanup: () => void): (() => void) => {
    const once = () => {
      cleanups.delete(once);
      cleanup();
    };
    cleanups.add(once);
    return once;
  };
  const listen = client as unknown as {
    on(type: string, handler: unknown): () => void;
    once(type: string, handler: unknown): () => void;
    off(type: string, handler: unknown): void;
    next(type: string, options?: { timeout?: number }): Promise<AnyEnvelope>;
  };
  const api = {
    client,
    get status() {
      return client.status;
    },
    on: (type: string, handler: unknown) => track(listen.on(type, handler)),
    once: (type: string, handler: unknown) => track(listen.once(type, handler)),
    off: (type: string, handler: unknown) => listen.off(type, handler),
    next: (type: string, options?: { timeout?: number }) => listen.next(type, options),
    subscribe: (namespaces: readonly Namespace[]) => track(client.subscribe(namespaces)),
    unsubscribe: (namespaces: readonly Namespace[]) => client.unsubscribe(namespaces),
    handleMessage: (message: { data: unknown }) => client.handleMessage(message),
  } as unknown as WebSocketHandle;
  const release = () => {
    for (const cleanup of [...cleanups]) cleanup();
  };
  return { api, release };
}

const useIsomorphicLayoutEffect = typeof document === "undefined" ? useEffect : useLayoutEffect;

/** Calls `handler` for each event of `type` while mounted, always the latest `handler` (no
 * resubscription when it changes), and holds the event's namespace. */
export function useEvent<K extends EventType>(type: K, handler: Handler<K>): void {
  const client = useClient();
  const latest = useRef(handler);
  useIsomorphicLayoutEffect(() => {
    latest.current = handler;
  });
  const namespace = EVENT_NAMESPACES[type] as Namespace;
  useEffect(() => client.subscribe([namespace]), [client, namespace]);
  useEffect(() => {
    const on = client.on as (type: K, handler: Handler<K>) => () => void;
    return on.call(client, type, (data, event) => latest.current(data, event));
  }, [client, type]);
}

/** The shared connection's status, re-rendering when it changes. */
export function useStatus(): Status {
  const client = useClient();
  return useSyncExternalStore(
    (onChange) => client.onStatus(onChange),
    () => client.status,
    () => client.status,
  );
}

/** What `useSnapshot`'s `load` returns: the state, and the positions the backend read (from
 * `GET /api/positions`) *before* it read that state. */
export interface Snapshot<S> {
  positions: { [N in Namespace]?: string };
  state: S;
}

/** Options of {@link useSnapshot}. */
export interface UseSnapshotOptions<S> {
  /** The namespaces the state follows. Held by this hook alone: it resumes them from the
   * snapshot's positions, which a namespace already subscribed cannot do. */
  namespaces: readonly Namespace[];
  /** The state after one event of those namespaces. */
  apply: (state: S, event: AnyEnvelope) => S;
}

/** Where a snapshot is: loading, followed (`ready`), or failed to load. */
export type SnapshotState<S> =
  | { status: "loading"; state: undefined; error?: undefined }
  | { status: "ready"; state: S; error?: undefined }
  | { status: "error"; state: undefined; error: unknown };

/** Load, then follow: `load()` once, then every event of `namespaces` after the snapshot's
 * positions through `apply`, once each, in order; loaded again when the server cannot replay
 * what the snapshot lacks (`recovered: false`, after a long disconnection too). */
export function useSnapshot<S>(load: () => Promise<Snapshot<S>>, options: UseSnapshotOptions<S>): SnapshotState<S> {
  const client = useClient();
  const [snapshot, setSnapshot] = useState<SnapshotState<S>>({ status: "loading", state: undefined });
  const latest = useRef({ load, apply: options.apply });
  useIsomorphicLayoutEffect(() => {
    latest.current = { load, apply: options.apply };
  });
  const key = [...new Set(options.namespaces)].sort().join(",");
  useEffect(() => {
    const namespaces = key.split(",").filter(Boolean) as Namespace[];
    let generation = 0;
    let stop: (() => void) | undefined;
    const start = async () => {
      const mine = ++generation;
      if (stop) {
        // Following again: let go of the namespaces first (the client sends the unsubscribe a
        // tick later), so that the new snapshot's positions can be resumed from.
        stop();
        stop = undefined;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      setSnapshot({ status: "loading", state: undefined });
      let loaded: Snapshot<S>;
      try {
        loaded = await latest.current.load();
      } catch (error) {
        if (mine === generation) setSnapshot({ status: "error", state: undefined, error });
        return;
      }
      if (mine !== generation) return;
      client.resumeFrom(loaded.positions);
      setSnapshot({ status: "ready", state: loaded.state });
      const off = client.on("*", (_, event) => {
        if (!namespaces.includes(event.namespace as Namespace)) return;
        setSnapshot((now) => (now.status === "ready" ? { status: "ready", state: latest.current.apply(now.state, event) } : now));
      });
      const release = client.subscribe(namespaces);
      stop = () => {
        off();
        release();
      };
    };
    const offRecovery = client.onRecovery((recovered) => {
      if (namespaces.some((ns) => recovered[ns] === false)) void start();
    });
    void start();
    return () => {
      generation += 1;
      offRecovery();
      stop?.();
    };
  }, [client, key]);
  return snapshot;
}
