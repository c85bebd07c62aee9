// What a client subscribes: the options' namespaces (or the server's default, once `ready` names
// them), every `subscribe` holder's, counted, less what a refresh dropped; and what the server has,
// or has been asked for, on the current connection.

import type { Namespace } from "./catalog.js";

export class Subscriptions {
  /** The namespaces held by the options (`undefined`: the server's default, until `ready` names them). */
  #base: Set<Namespace> | undefined;
  /** Namespaces held by `subscribe`, with how many holders each. */
  readonly #refs = new Map<Namespace, number>();
  /** What the server has, or has been asked for, on this connection. */
  #requested = new Set<Namespace>();
  /** Namespaces the server dropped on a refresh (the new role sees nothing there): not asked for
   * again on this connection. */
  readonly #dropped = new Set<Namespace>();

  constructor(namespaces: readonly Namespace[] | undefined) {
    this.#base = namespaces ? new Set(namespaces) : undefined;
  }

  /** Whether the namespaces are known: given in the options, or named by a `ready`. */
  get known(): boolean {
    return this.#base !== undefined;
  }

  /** The namespaces wanted now. */
  desired(): Set<Namespace> {
    const out = new Set<Namespace>(this.#base ?? []);
    for (const [ns, n] of this.#refs) if (n > 0) out.add(ns);
    for (const ns of this.#dropped) out.delete(ns);
    return out;
  }

  /** Holds `namespaces` once more each; returns the release (which lets go once). */
  hold(namespaces: readonly Namespace[]): () => void {
    const held = [...new Set(namespaces)];
    for (const ns of held) this.#refs.set(ns, (this.#refs.get(ns) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const ns of held) this.#letGo(ns, false);
    };
  }

  /** Lets go of `namespaces`: one hold of each, or the options' own. */
  letGo(namespaces: readonly Namespace[]): void {
    for (const ns of new Set(namespaces)) this.#letGo(ns, true);
  }

  #letGo(ns: Namespace, base: boolean): void {
    const n = this.#refs.get(ns) ?? 0;
    if (n > 1) this.#refs.set(ns, n - 1);
    else if (n === 1) this.#refs.delete(ns);
    else if (base) this.#base?.delete(ns);
  }

  /** A new connection: what its URL asks for is what the server has. */
  opening(): void {
    this.#requested = new Set(this.#base ? this.desired() : []);
  }

  /** `ready`: the server's namespaces (the default becomes the base when none was given). */
  ready(namespaces: readonly Namespace[]): void {
    this.#base ??= new Set(namespaces);
    this.#requested = new Set(namespaces);
    this.#dropped.clear();
  }

  /** `refreshed`: the server's namespaces now, and those it dropped. */
  refreshed(namespaces: readonly Namespace[], dropped: readonly Namespace[]): void {
    this.#requested = new Set(namespaces);
    for (const ns of dropped) this.#dropped.add(ns);
  }

  /** Whether the server has `ns`, or was asked for it, on this connection. */
  requested(ns: Namespace): boolean {
    return this.#requested.has(ns);
  }

  /** What turns the server's subscription into the wanted one, taken as asked for. */
  changes(): { add: Namespace[]; remove: Namespace[] } {
    const desired = this.desired();
    const add = [...desired].filter((ns) => !this.#requested.has(ns));
    const remove = [...this.#requested].filter((ns) => !desired.has(ns));
    this.#requested = desired;
    return { add, remove };
  }
}
