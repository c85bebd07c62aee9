// Where a client is in each namespace's stream, as the server's ids say. Ids are opaque (the
// offset in them is sealed): a client cannot compare two, and need not. The server sends a
// namespace's events in order, so a namespace's position is the id of its last event received,
// or the position the server gave when it was joined. An id seen among the last few of its
// namespace is an exact repeat.

import type { Namespace } from "./catalog.js";

/** How many recent ids per namespace are remembered to recognize a repeat. */
const RECENT = 64;

/** The namespace an event id names (its stream): ids are `<namespace>.<epoch>.<sealed position>`,
 * opaque past the namespace. */
function namespaceOf(id: string): Namespace {
  const dot = id.indexOf(".");
  return (dot < 0 ? id : id.slice(0, dot)) as Namespace;
}

export class Positions {
  /** The position to resume each namespace from. */
  readonly #last = new Map<Namespace, string>();
  /** The latest ids received, per namespace. */
  readonly #recent = new Map<Namespace, string[]>();

  /** An event with `id` arrived: its namespace moves on to it. False for an exact repeat.
   * Positions are keyed by the id's stream, which is what a resume names. */
  received(id: string): boolean {
    const ns = namespaceOf(id);
    const recent = this.#recent.get(ns) ?? [];
    if (recent.includes(id)) return false;
    if (recent.length === RECENT) recent.shift();
    recent.push(id);
    this.#recent.set(ns, recent);
    this.#last.set(ns, id);
    return true;
  }

  /** `ns` was joined at `id` (the server's position for it). */
  joined(ns: Namespace, id: string): void {
    this.#last.set(ns, id);
  }

  get(ns: Namespace): string | undefined {
    return this.#last.get(ns);
  }

  /** Every namespace's position. */
  all(): string[] {
    return [...this.#last.values()];
  }

  /** As an object, namespace → id. */
  toObject(): { [N in Namespace]?: string } {
    return Object.fromEntries(this.#last);
  }

  /** Forgets `ns` (unsubscribed, or dropped by a refresh). */
  delete(ns: Namespace): void {
    this.#last.delete(ns);
    this.#recent.delete(ns);
  }

  /** Forgets everything (positions the server no longer reads). */
  clear(): void {
    this.#last.clear();
    this.#recent.clear();
  }
}
