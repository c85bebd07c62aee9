// The publisher: the reference's server side (`wsEvents.orderCreated(...)`, `emitOrderEvent(...)`)
// over an omnicast node's `POST /api/events`. Fire and forget, as the reference calls it: a call
// checks the payload against the catalog and fills in its computed fields at once, and never
// throws; the events of one tick go out in one request, in order, retried under one
// `Idempotency-Key` with backoff; what finally fails goes to `onError`. The promise a call returns
// resolves (never rejects) to the event's id or the error. No runtime dependencies: `fetch` and
// `crypto.randomUUID` (Node 20+, edge runtimes, browsers).

import type { EventType, Namespace, Role } from "./catalog.js";
import { EMITTERS, FIELDS, HELPERS, type HelperActions, type Input, NAMESPACES, ROLES } from "./catalog.js";
import { check, complete } from "./payloads.js";

/** Who receives an event, narrowed by its emitter (the reference's broadcast options). */
export interface BroadcastOptions {
  /** Only these roles (within those the event allows). */
  roles?: Role[];
  /** Only these users. */
  userIds?: string[];
  /** Publish into this namespace's stream instead of the event's own. */
  namespace?: Namespace;
  /** Not these users. */
  excludeUserIds?: string[];
  /** Not these connections (their `sessionId`). */
  excludeSessionIds?: string[];
}

/** An event as a call made it. */
export interface PendingEvent {
  type: EventType;
  data: Record<string, unknown>;
  options?: BroadcastOptions;
}

/** Why an event was not published. */
export interface PublishError {
  /** `invalid_payload` (never sent), `closed` (after `close()`), `unreachable` (no answer after
   * every attempt: perhaps stored, perhaps not), or the server's error code (`invalid_data`,
   * `unauthorized`, `outcome_unknown` ...). */
  code: string;
  message: string;
  /** The server's HTTP status, when it answered. */
  status?: number;
}

/** What a call resolves to: the event's id, or why it was not published. */
export type Published = { id: string; error?: undefined } | { id?: undefined; error: PublishError };

/** An event that finally failed, for `onError`. */
export interface PublishFailure {
  event: PendingEvent;
  error: PublishError;
}

export interface PublisherOptions {
  /** The node's base URL (`http://127.0.0.1:8080`). */
  url: string;
  /** A publish API key. */
  apiKey: string;
  /** Every event that finally fails, with why (default: `console.error`). */
  onError?: (failure: PublishFailure) => void;
  /** Attempts per request, and the backoff between them in ms (full jitter): 8, 100 to 5000. */
  retry?: { attempts?: number; minDelay?: number; maxDelay?: number };
  /** The most events per request (100). */
  maxBatch?: number;
  /** How long one attempt may take, in ms, before it is given up and tried again under the same
   * key (10 000): an answer that never comes must not hold every later event. */
  timeout?: number;
  /** `fetch`, for runtimes or tests that bring their own. */
  fetch?: typeof fetch;
}

/** One typed emitter per event, named as the reference names them. */
export type WsEvents = {
  [E in keyof typeof EMITTERS]: (data: Input<(typeof EMITTERS)[E]>, options?: BroadcastOptions) => Promise<Published>;
};

type RequiredKeys<T> = { [K in keyof T]-?: undefined extends T[K] ? never : K }[keyof T];

/** A payload as an entity: the helper's properties (`id`) stand for its fields (`orderId`). */
export type Entity<P, M extends { readonly [property: string]: string }> = Omit<P, M[keyof M]> & {
  [A in keyof M as M[A] extends RequiredKeys<P> ? A : never]: P[M[A] & keyof P];
} & {
  [A in keyof M as M[A] extends Exclude<keyof P, RequiredKeys<P>> ? A : never]?: P[M[A] & keyof P];
};

/** What helper `H` takes for `action`. */
export type EntityOf<H extends keyof HelperActions, A extends keyof HelperActions[H]> = Entity<
  Input<HelperActions[H][A] & EventType>,
  (typeof HELPERS)[H]["entity"]
>;

/** The namespaces' helpers, typed by action (`emitInventoryEvent('updated', product)`). */
export type Helpers = {
  [H in keyof HelperActions]: <A extends keyof HelperActions[H] & string>(
    action: A,
    entity: EntityOf<H, A>,
    options?: BroadcastOptions,
  ) => Promise<Published>;
};

export type Publisher = Helpers & {
  wsEvents: WsEvents;
  /** Publishes any event by its type. */
  emit<K extends EventType>(type: K, data: Input<K>, options?: BroadcastOptions): Promise<Published>;
  /** Resolves once every event called so far is published or has failed. */
  flush(): Promise<void>;
  /** Takes no more events, and resolves once every event called before is published or has failed. */
  close(): Promise<void>;
};

/** An event checked and completed, as the publish API takes it. */
export interface EventBody {
  type: EventType;
  data: Record<string, unknown>;
  options?: BroadcastOptions;
}

/** Where checked events go: a node's publish API, or (`@omnicast/client/testing`) a hub in
 * memory. `send` resolves to the id or the error; it never rejects. */
export interface Transport {
  send(body: EventBody, event: PendingEvent): Promise<Published>;
  /** Resolves once everything sent so far is settled. */
  flush(): Promise<void>;
}

interface Queued {
  event: PendingEvent;
  body: EventBody;
  resolve: (published: Published) => void;
}

const DEFAULT_RETRY = { attempts: 8, minDelay: 100, maxDelay: 5000 };
const DEFAULT_TIMEOUT = 10_000;

export function createPublisher(options: PublisherOptions): Publisher {
  const report =
    options.onError ?? ((failure: PublishFailure) => console.error("[omnicast] not published:", failure.event.type, failure.error.message));
  return publisherOver(http(options), report);
}

/** The node's publish API: the events of one tick in one request, one request at a time (so
 * events keep their call order), each tried until answered for good under one key. */
function http(options: PublisherOptions): Transport {
  const retry = { ...DEFAULT_RETRY, ...options.retry };
  const maxBatch = Math.max(1, options.maxBatch ?? 100);
  const endpoint = `${options.url.replace(/\/+$/, "")}/api/events`;
  const queue: Queued[] = [];
  let sending: Promise<void> | undefined;
  let scheduled = false;

  /** Sends what this tick queued once the tick is over, unless a request is on its way (the
   * queue then goes out when it is back). */
  const schedule = () => {
    if (scheduled || sending) return;
    scheduled = true;
    setTimeout(() => {
      scheduled = false;
      sending ??= drain().finally(() => {
        sending = undefined;
        if (queue.length > 0) schedule();
      });
    }, 0);
  };

  const drain = async () => {
    while (queue.length > 0) {
      const batch = queue.splice(0, maxBatch);
      const outcome = await post(batch);
      batch.forEach((queued, i) => queued.resolve("ids" in outcome ? { id: outcome.ids[i]! } : { error: outcome.error }));
    }
  };

  /** One request, tried until it is answered for good, under one idempotency key. */
  const post = async (batch: Queued[]): Promise<{ ids: string[] } | { error: PublishError }> => {
    const doFetch = options.fetch ?? fetch;
    const key = crypto.randomUUID();
    const body = JSON.stringify(batch.map((q) => q.body));
    let last: PublishError = { code: "unreachable", message: "not sent" };
    for (let attempt = 1; attempt <= retry.attempts; attempt++) {
      let wait: number | undefined;
      try {
        const response = await doFetch(endpoint, {
          method: "POST",
          headers: { authorization: `Bearer ${options.apiKey}`, "content-type": "application/json", "idempotency-key": key },
          body,
          signal: AbortSignal.timeout(options.timeout ?? DEFAULT_TIMEOUT),
        });
        const text = await response.text();
        const answer = parse(text) as { ids?: string[]; error?: string; message?: string };
        if (response.status === 202 && Array.isArray(answer.ids) && answer.ids.length === batch.length) {
          return { ids: answer.ids };
        }
        last = { code: answer.error ?? `http_${response.status}`, message: answer.message ?? text.slice(0, 200), status: response.status };
        // Worth another try: the server or its broker is busy or away, or the outcome is unknown
        // (the same key makes the retry safe). Anything else is the request's own fault.
        if (![429, 500, 502, 503, 504].includes(response.status)) return { error: last };
        const retryAfter = Number(response.headers.get("retry-after"));
        if (retryAfter > 0) wait = retryAfter * 1000;
      } catch (cause) {
        // The request may have reached the node before the answer was lost: the outcome is
        // unknown, not "nothing stored" (a retry under the same key stays safe).
        last = { code: "unreachable", message: `no answer from ${endpoint} (${String(cause)}): the events may or may not be stored` };
      }
      if (attempt < retry.attempts) await sleep(Math.min(retry.maxDelay, wait ?? backoff(retry, attempt)));
    }
    return { error: last };
  };

  return {
    send: (body, event) =>
      new Promise<Published>((resolve) => {
        queue.push({ event, body, resolve });
        schedule();
      }),
    async flush() {
      while (queue.length > 0 || sending || scheduled) {
        if (!sending && !scheduled) schedule();
        await (sending ?? sleep(1));
      }
    },
  };
}

/** A publisher whose checked events go to `transport`; what fails goes to `report`. */
export function publisherOver(transport: Transport, report: (failure: PublishFailure) => void): Publisher {
  let closed = false;

  const fail = (event: PendingEvent, error: PublishError): Published => {
    try {
      report({ event, error });
    } catch (cause) {
      console.error("[omnicast] onError threw", cause);
    }
    return { error };
  };

  const emit = (type: EventType, data: unknown, broadcast?: BroadcastOptions): Promise<Published> => {
    const event: PendingEvent = { type, data: data as Record<string, unknown>, ...(broadcast ? { options: broadcast } : {}) };
    if (closed) return Promise.resolve(fail(event, { code: "closed", message: "the publisher is closed" }));
    const problem = check(type, data) ?? checkOptions(broadcast);
    if (problem) return Promise.resolve(fail(event, { code: "invalid_payload", message: `${type}: ${problem}` }));
    const completed = complete(type, data as Record<string, unknown>);
    if (typeof completed === "string") return Promise.resolve(fail(event, { code: "invalid_payload", message: `${type}: ${completed}` }));
    const body: EventBody = { type, data: completed, ...(broadcast ? { options: broadcast } : {}) };
    return transport.send(body, event).then((published) => (published.error ? fail(event, published.error) : published));
  };

  const wsEvents = Object.fromEntries(
    Object.entries(EMITTERS).map(([name, type]) => [name, (data: unknown, broadcast?: BroadcastOptions) => emit(type, data, broadcast)]),
  ) as WsEvents;

  const helpers = Object.fromEntries(
    Object.entries(HELPERS).map(([name, helper]) => {
      const actions: Record<string, EventType> = helper.actions;
      const entity: Record<string, string> = helper.entity;
      const call = (action: string, value: Record<string, unknown>, broadcast?: BroadcastOptions) => {
        const type = Object.hasOwn(actions, action) ? actions[action] : undefined;
        if (type === undefined) {
          const event = { type: action, data: value, ...(broadcast ? { options: broadcast } : {}) } as unknown as PendingEvent;
          return Promise.resolve(fail(event, { code: "invalid_payload", message: `\`${action}\` is not an action of ${name} (${Object.keys(actions).join(", ")})` }));
        }
        return emit(type, fromEntity(type, value ?? {}, entity), broadcast);
      };
      return [name, call];
    }),
  ) as unknown as Helpers;

  return {
    ...helpers,
    wsEvents,
    emit: (type, data, broadcast) => emit(type, data, broadcast),
    flush: () => transport.flush(),
    async close() {
      closed = true;
      await transport.flush();
    },
  };
}

/** An entity as the payload of `type`: its properties renamed to the fields they stand for
 * (those the event has). */
function fromEntity(type: EventType, value: Record<string, unknown>, entity: Record<string, string>): Record<string, unknown> {
  const fields = new Set(FIELDS[type].map((f) => f.name));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const field = entity[key];
    out[field !== undefined && fields.has(field) ? field : key] = v;
  }
  return out;
}

function checkOptions(options: BroadcastOptions | undefined): string | undefined {
  if (options === undefined) return undefined;
  if (typeof options !== "object" || options === null) return "options must be an object";
  const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === "string");
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    switch (key) {
      case "roles":
        if (!strings(value) || !(value as string[]).every((r) => (ROLES as readonly string[]).includes(r)))
          return `options.roles must list roles of the catalog (${ROLES.join(", ")})`;
        break;
      case "userIds":
      case "excludeUserIds":
      case "excludeSessionIds":
        if (!strings(value)) return `options.${key} must be a list of strings`;
        break;
      case "namespace":
        if (!(NAMESPACES as readonly unknown[]).includes(value)) return `options.namespace must be a namespace of the catalog (${NAMESPACES.join(", ")})`;
        break;
      default:
        return `unknown option \`${key}\` (roles, userIds, namespace, excludeUserIds, excludeSessionIds)`;
    }
  }
  return undefined;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return {};
  }
}

/** `min(max, min + random(0, min * 2^attempt))`. */
function backoff(retry: { minDelay: number; maxDelay: number }, attempt: number): number {
  return Math.min(retry.maxDelay, retry.minDelay + Math.random() * retry.minDelay * 2 ** Math.min(attempt, 30));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
