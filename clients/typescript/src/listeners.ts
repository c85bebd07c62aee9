// Event listeners by type ("*" for every event): registration, once, `next`, and a dispatch
// that reports a throwing handler instead of letting it break the stream.

import type { AnyEnvelope, EventType } from "./catalog.js";

/** Any listener, as stored; `Listen`'s typed overloads narrow what callers may pass. */
export type AnyHandler = (data: never, event: never) => void;

type Entry = { handler: AnyHandler; once: boolean };

export class Listeners {
  readonly #byType = new Map<string, Set<Entry>>();
  readonly #threw: (key: string, event: AnyEnvelope, cause: unknown) => void;

  /** `threw` is told about every handler that throws; the others still run. */
  constructor(threw: (key: string, event: AnyEnvelope, cause: unknown) => void) {
    this.#threw = threw;
  }

  /** Registers `handler` for `type`; returns the cleanup that removes it. */
  add(type: string, handler: AnyHandler, once: boolean): () => void {
    const entry: Entry = { handler, once };
    let entries = this.#byType.get(type);
    if (!entries) this.#byType.set(type, (entries = new Set()));
    entries.add(entry);
    return () => this.#remove(type, entry);
  }

  /** Removes the first registration of `handler` for `type`. */
  off(type: string, handler: AnyHandler): void {
    const entries = this.#byType.get(type);
    if (!entries) return;
    for (const entry of entries) {
      if (entry.handler === handler) {
        this.#remove(type, entry);
        return;
      }
    }
  }

  /** The next event of `type`; rejects after `timeout` ms. */
  next(type: string, timeout: number): Promise<AnyEnvelope> {
    return new Promise<AnyEnvelope>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no ${type} event within ${timeout} ms`));
      }, timeout);
      const cleanup = this.add(
        type,
        ((_: unknown, event: AnyEnvelope) => {
          clearTimeout(timer);
          resolve(event);
        }) as AnyHandler,
        true,
      );
    });
  }

  /** How many listeners are registered (for one type, or all). */
  count(type?: EventType | "*"): number {
    if (type !== undefined) return this.#byType.get(type)?.size ?? 0;
    let n = 0;
    for (const entries of this.#byType.values()) n += entries.size;
    return n;
  }

  /** Calls the listeners of `key` with `event`; a `once` listener is removed before it runs. */
  dispatch(key: string, event: AnyEnvelope): void {
    const entries = this.#byType.get(key);
    if (!entries) return;
    for (const entry of [...entries]) {
      if (entry.once) this.#remove(key, entry);
      try {
        (entry.handler as (data: unknown, event: AnyEnvelope) => void)(event.data, event);
      } catch (cause) {
        this.#threw(key, event, cause);
      }
    }
  }

  #remove(type: string, entry: Entry): void {
    const entries = this.#byType.get(type);
    if (!entries) return;
    entries.delete(entry);
    if (entries.size === 0) this.#byType.delete(type);
  }
}

/** Plain callbacks (status, recovery, errors ...): each is called in turn, and one that throws
 * is handed to `threw` while the others still run. */
export class Observers<A extends unknown[]> {
  readonly #all = new Set<(...args: A) => void>();

  /** Adds `listener`; returns the cleanup that removes it. */
  add(listener: (...args: A) => void): () => void {
    this.#all.add(listener);
    return () => {
      this.#all.delete(listener);
    };
  }

  /** How many there are. */
  get size(): number {
    return this.#all.size;
  }

  /** Calls every listener with `args`. */
  notify(threw: (cause: unknown) => void, ...args: A): void {
    for (const listener of [...this.#all]) {
      try {
        listener(...args);
      } catch (cause) {
        threw(cause);
      }
    }
  }
}
