/**
 * Time source injected into Memberlist, so the same protocol code runs on the wall clock
 * (agent) or on a virtual clock (simulation and protocol-timing tests).
 */

export interface TimerHandle {
  /** Opaque; only passed back to clearTimer. */
  readonly _timer: unknown;
}

export interface Clock {
  /** Milliseconds; monotonic within one clock. */
  now(): number;
  /**
   * Milliseconds on a time base every member shares (the wall clock), for schedules that are
   * aligned across members; absent when now() is already shared (one virtual clock).
   */
  epoch?(): number;
  setTimer(ms: number, fn: () => void): TimerHandle;
  clearTimer(h: TimerHandle): void;
}

/** Wall clock backed by Node timers. */
export function realClock(): Clock {
  return {
    now: () => performance.now(),
    epoch: () => performance.timeOrigin + performance.now(),
    setTimer: (ms, fn) => ({ _timer: setTimeout(fn, Math.max(0, ms)) }),
    clearTimer: (h) => clearTimeout(h._timer as ReturnType<typeof setTimeout>),
  };
}

interface VTimer {
  at: number;
  seq: number;
  fn: (() => void) | null; // null = cancelled (lazy deletion keeps clear O(1))
}

/**
 * Deterministic virtual clock: a binary min-heap of timers ordered by (time, insertion).
 * advance() runs due timers synchronously; nothing happens between calls.
 */
export class VirtualClock implements Clock {
  #now = 0;
  #seq = 0;
  #heap: VTimer[] = [];
  #live = 0;

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Timers not yet fired nor cancelled. */
  get pending(): number {
    return this.#live;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const t: VTimer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn };
    this.#push(t);
    this.#live++;
    return { _timer: t };
  }

  clearTimer(h: TimerHandle): void {
    const t = h._timer as VTimer;
    if (t.fn !== null) {
      t.fn = null;
      this.#live--;
    }
  }

  /** Run every timer due up to now+ms (including ones they schedule), then set now to that. */
  advance(ms: number): number {
    return this.runUntil(this.#now + ms);
  }

  runUntil(until: number): number {
    let fired = 0;
    for (;;) {
      const top = this.#heap[0];
      if (top === undefined || top.at > until) break;
      this.#pop();
      if (top.fn === null) continue;
      const fn = top.fn;
      top.fn = null;
      this.#live--;
      if (top.at > this.#now) this.#now = top.at;
      fn();
      fired++;
    }
    if (until > this.#now) this.#now = until;
    return fired;
  }

  #less(a: VTimer, b: VTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #push(t: VTimer): void {
    const h = this.#heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = h[p] as VTimer;
      if (!this.#less(t, pt)) break;
      h[i] = pt;
      i = p;
    }
    h[i] = t;
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop();
    if (last === undefined || h.length === 0) return;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && this.#less(h[r] as VTimer, h[l] as VTimer)) c = r;
      if (!this.#less(h[c] as VTimer, last)) break;
      h[i] = h[c] as VTimer;
      i = c;
    }
    h[i] = last;
  }
}
