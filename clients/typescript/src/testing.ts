// `@omnicast/client/testing`: a hub in memory, for tests without a network, as the reference writes
// them:
//
//   const hub = createTestHub();
//   const ws = hub.client({ userId: "u1", role: "admin" });
//   const { wsEvents } = hub.publisher;
//   ws.on("order:created", handler);
//   wsEvents.orderCreated({ ... });
//   expect(handler).toHaveBeenCalled();   // delivered before the call returned
//
// Its clients are real clients (`createClient`), fed through `handleMessage`, the path a socket's
// messages take; its publisher is the real publisher (the same checks, computed fields and
// options), delivering at once instead of over HTTP. Who receives what follows the server's four
// delivery rules over the catalog's `AUDIENCE` (generated from events.yaml, as the server's
// permission table is): a differential test holds the two to the same deliveries.

import type { EventType, Namespace, Role } from "./catalog.js";
import { AUDIENCE, EVENT_NAMESPACES, NAMESPACES, OWN_EVENTS_ONLY } from "./catalog.js";
import { createClient } from "./client.js";
import { type BroadcastOptions, type EventBody, type PublishFailure, type Publisher, publisherOver } from "./publisher.js";
import type { OmnicastClient } from "./types.js";

/** Who a test client is. */
export interface TestIdentity {
  userId: string;
  role: Role;
  /** What it subscribes (the role's default when left out: every namespace it may see something in). */
  namespaces?: Namespace[];
}

export interface TestHub {
  /** A client of `identity`, subscribed as it says; it receives what the server would send it. */
  client(identity: TestIdentity): OmnicastClient;
  /** The publisher: `wsEvents`, the helpers and `emit`, delivering before each call returns. */
  readonly publisher: Publisher;
  /** Every event published, as the publish API took it, with its id. */
  readonly published: readonly (EventBody & { id: string })[];
  /** Failures the publisher reported (invalid payloads ...); also passed to `onError`. */
  readonly failures: readonly PublishFailure[];
  /** A client's session id: what `excludeSessionIds` names. */
  sessionId(client: OmnicastClient): string | undefined;
  /** Removes every client. */
  reset(): void;
}

interface Connection {
  identity: TestIdentity;
  sessionId: string;
  client: OmnicastClient;
}

/** The namespaces in which `role` may receive at least one event type of the namespace. */
export function defaultNamespaces(role: Role): Namespace[] {
  return NAMESPACES.filter((ns) =>
    (Object.keys(AUDIENCE) as EventType[]).some((type) => EVENT_NAMESPACES[type] === ns && AUDIENCE[type].roles.includes(role)),
  );
}

/** The four delivery rules (ARCHITECTURE.md): may a connection of `identity`, subscribed to
 * `namespaces`, with session `sessionId`, receive `event`? */
export function admits(event: EventBody, identity: { userId: string; role: Role }, namespaces: readonly Namespace[], sessionId: string): boolean {
  const audience = AUDIENCE[event.type];
  const options: BroadcastOptions = event.options ?? {};
  // 1. subscribed to the namespace addressed
  if (!namespaces.includes(options.namespace ?? EVENT_NAMESPACES[event.type])) return false;
  // 2. the role may see the event, as the payload's target roles and the emitter's roles narrow it
  if (!audience.roles.includes(identity.role)) return false;
  const targets = audience.targetRoles === undefined ? undefined : (event.data[audience.targetRoles] as Role[] | undefined | null);
  if (targets != null && !targets.includes(identity.role)) return false;
  if (options.roles && !options.roles.includes(identity.role)) return false;
  // 3. a role limited to its own events sees only those it owns
  if (OWN_EVENTS_ONLY.includes(identity.role) && audience.owner !== undefined && event.data[audience.owner] !== identity.userId) {
    return false;
  }
  // 4. the emitter's users and exclusions
  if (options.userIds && !options.userIds.includes(identity.userId)) return false;
  if (options.excludeUserIds?.includes(identity.userId)) return false;
  if (options.excludeSessionIds?.includes(sessionId)) return false;
  return true;
}

export function createTestHub(options: { onError?: (failure: PublishFailure) => void } = {}): TestHub {
  const connections: Connection[] = [];
  const published: (EventBody & { id: string })[] = [];
  const failures: PublishFailure[] = [];
  let sessions = 0;

  const deliver = (body: EventBody): string => {
    const namespace = body.options?.namespace ?? EVENT_NAMESPACES[body.type];
    const id = `${namespace}.testing.${published.length + 1}`;
    published.push({ ...body, id });
    const envelope = JSON.stringify({ type: body.type, namespace, data: body.data, timestamp: Date.now(), id });
    for (const c of connections) {
      if (admits(body, c.identity, c.client.namespaces, c.sessionId)) c.client.handleMessage({ data: envelope });
    }
    return id;
  };

  const publisher = publisherOver(
    { send: (body) => Promise.resolve({ id: deliver(body) }), flush: () => Promise.resolve() },
    (failure) => {
      failures.push(failure);
      options.onError?.(failure);
    },
  );

  return {
    client(identity) {
      sessions += 1;
      const namespaces = identity.namespaces ?? defaultNamespaces(identity.role);
      const client = createClient({ url: "ws://omnicast.testing/ws", token: "testing", namespaces, reconnect: false, heartbeat: false });
      connections.push({ identity: { ...identity, namespaces }, sessionId: `ses_testing_${sessions}`, client });
      return client;
    },
    publisher,
    published,
    failures,
    sessionId: (client) => connections.find((c) => c.client === client)?.sessionId,
    reset() {
      connections.length = 0;
    },
  };
}
