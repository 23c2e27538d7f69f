/**
 * Transmit-limited broadcast queue (memberlist queue.go). Each membership update is sent on up
 * to `limit` outgoing packets, where limit = retransmitMult·ceil(log10(N+1)); the least
 * transmitted go first and, among equals, the newest. A newer update about the same member
 * invalidates the queued one, so the queue holds at most one entry per member. An update may ask
 * for a multiple of the limit (rare updates that must reach everyone: see REJOIN_TRANSMIT_MULT).
 */

export interface Broadcast {
  /** Invalidation key: the member the update is about. */
  readonly key: string;
  /** Encoded message, sent as one part of a compound packet. */
  readonly msg: Uint8Array;
  /** Called once when the broadcast is finished (transmit limit reached) or superseded. */
  readonly notify?: (() => void) | undefined;
  /** This update is sent on limit × mult packets (default 1). */
  readonly mult?: number | undefined;
}

interface Entry {
  b: Broadcast;
  id: number;
  transmits: number;
  live: boolean;
}

export class BroadcastQueue {
  // buckets[t] = entries sent t times; newest at the end of each bucket.
  #buckets: Entry[][] = [];
  readonly #byKey = new Map<string, Entry>();
  #id = 0;
  #limit: () => number;
  readonly #max: number;
  #dropped = 0;

  constructor(limit: () => number, maxQueued = Infinity) {
    this.#limit = limit;
    this.#max = maxQueued;
  }

  get length(): number {
    return this.#byKey.size;
  }

  /** Broadcasts dropped because the queue was over its maximum. */
  get dropped(): number {
    return this.#dropped;
  }

  queue(b: Broadcast): void {
    const old = this.#byKey.get(b.key);
    if (old) this.#finish(old);
    const e: Entry = { b, id: this.#id++, transmits: 0, live: true };
    this.#byKey.set(b.key, e);
    (this.#buckets[0] ??= []).push(e);
    if (this.#byKey.size > this.#max) this.#pruneOne();
  }

  /**
   * Pick broadcasts that fit in `limit` bytes given `overhead` per part, counting one transmit
   * each. Scans buckets from least transmitted; within a bucket newest first.
   */
  getBroadcasts(overhead: number, limit: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (this.#byKey.size === 0) return out;
    const maxTx = this.#limit();
    let room = limit;
    const moved: Entry[] = [];
    // Work from the end of each bucket (newest) popping what we take, so a call costs
    // O(taken + a few skips), not O(queue length).
    for (let t = 0; t < this.#buckets.length && room > overhead; t++) {
      const bucket = this.#buckets[t];
      if (!bucket || bucket.length === 0) continue;
      const skipped: Entry[] = [];
      while (bucket.length > 0 && room > overhead && skipped.length < 8) {
        const e = bucket.pop() as Entry;
        if (!e.live) continue;
        const need = overhead + e.b.msg.length;
        if (need > room) {
          skipped.push(e);
          continue;
        }
        room -= need;
        out.push(e.b.msg);
        e.transmits++;
        if (e.transmits >= maxTx * (e.b.mult ?? 1)) this.#finish(e);
        else moved.push(e);
      }
      for (let i = skipped.length - 1; i >= 0; i--) bucket.push(skipped[i] as Entry);
    }
    // Re-file transmitted entries under their new count, oldest first so the newest stays last.
    for (let i = moved.length - 1; i >= 0; i--) {
      const e = moved[i] as Entry;
      (this.#buckets[e.transmits] ??= []).push(e);
    }
    return out;
  }

  /** Drop everything (shutdown). */
  reset(): void {
    for (const e of this.#byKey.values()) this.#finish(e);
    this.#buckets = [];
  }

  #finish(e: Entry): void {
    if (!e.live) return;
    e.live = false;
    if (this.#byKey.get(e.b.key) === e) this.#byKey.delete(e.b.key);
    e.b.notify?.();
  }

  /** Over capacity: drop the most-transmitted, oldest entry (it has had the most exposure). */
  #pruneOne(): void {
    for (let t = this.#buckets.length - 1; t >= 0; t--) {
      const bucket = this.#buckets[t];
      if (!bucket) continue;
      while (bucket.length > 0) {
        const e = bucket.shift() as Entry;
        if (e.live) {
          this.#finish(e);
          this.#dropped++;
          return;
        }
      }
    }
  }
}
