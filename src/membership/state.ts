/**
 * The member table: one NodeState per known member, the SWIM state machine's precedence rules
 * (who overrides whom by incarnation), and the selection helpers probing and gossip need
 * (randomized round-robin order, k random members) without O(N) work per call.
 */

/** Numeric so that a 10k-member simulation keeps per-entry memory small. */
export const ALIVE = 0;
export const SUSPECT = 1;
export const DEAD = 2;
export const LEFT = 3;
export type MemberState = typeof ALIVE | typeof SUSPECT | typeof DEAD | typeof LEFT;
export const STATE_NAMES = ['alive', 'suspect', 'dead', 'left'] as const;
export type MemberStateName = (typeof STATE_NAMES)[number];

export interface NodeState {
  readonly name: string;
  /** "host:port" other members reach it at. */
  addr: string;
  /** msgpack-encoded metadata, as gossiped (size-limited). */
  meta: Uint8Array;
  /** null = not in maintenance; a string (maybe empty) = in maintenance with that reason. */
  maint: string | null;
  incarnation: number;
  state: MemberState;
  /** Clock time of the last state change (drives gossip-to-the-dead and reaping). */
  stateChange: number;
}

/** An alive message wins only with a strictly newer incarnation (the subject refutes with +1). */
export function aliveOverrides(cur: NodeState, incarnation: number): boolean {
  return incarnation > cur.incarnation;
}

/** A suspicion applies to an alive member at the same or a newer incarnation. */
export function suspectApplies(cur: NodeState, incarnation: number): boolean {
  return cur.state === ALIVE && incarnation >= cur.incarnation;
}

/** Dead/left applies unless already dead/left or the message is about an older incarnation. */
export function deadApplies(cur: NodeState, incarnation: number): boolean {
  return cur.state !== DEAD && cur.state !== LEFT && incarnation >= cur.incarnation;
}

export function isDeadOrLeft(s: NodeState): boolean {
  return s.state === DEAD || s.state === LEFT;
}

/** Map for lookup plus a dense array for O(1) random picks and round-robin probing. */
export class MemberTable {
  readonly #map = new Map<string, NodeState>();
  readonly #list: NodeState[] = [];
  readonly #rand: () => number;
  #alive = 0; // alive + suspect: the "N" in the scaling formulas
  #probeIdx = 0;

  constructor(rand: () => number = Math.random) {
    this.#rand = rand;
  }

  get size(): number {
    return this.#list.length;
  }

  /** Members currently alive or suspect (including the local one). */
  get liveCount(): number {
    return this.#alive;
  }

  get(name: string): NodeState | undefined {
    return this.#map.get(name);
  }

  all(): readonly NodeState[] {
    return this.#list;
  }

  /** Insert at a random position so probe order stays randomized (memberlist aliveNode). */
  add(s: NodeState): void {
    if (this.#map.has(s.name)) throw new Error(`member ${s.name} already in table`);
    this.#map.set(s.name, s);
    const n = this.#list.length;
    const j = Math.floor(this.#rand() * (n + 1));
    if (j === n) {
      this.#list.push(s);
    } else {
      this.#list.push(this.#list[j] as NodeState);
      this.#list[j] = s;
    }
    if (s.state === ALIVE || s.state === SUSPECT) this.#alive++;
  }

  remove(name: string): NodeState | undefined {
    const s = this.#map.get(name);
    if (!s) return undefined;
    this.#map.delete(name);
    // O(N), but removal only happens when reaping (rare); no per-entry index saves memory.
    const i = this.#list.indexOf(s);
    const last = this.#list.pop() as NodeState;
    if (last !== s) this.#list[i] = last;
    if (s.state === ALIVE || s.state === SUSPECT) this.#alive--;
    return s;
  }

  /** All state transitions go through here to keep the live count exact. */
  setState(s: NodeState, state: MemberState, now: number): void {
    const wasLive = s.state === ALIVE || s.state === SUSPECT;
    const isLive = state === ALIVE || state === SUSPECT;
    if (wasLive !== isLive) this.#alive += isLive ? 1 : -1;
    if (s.state !== state) s.stateChange = now;
    s.state = state;
  }

  /**
   * Next member to probe: walks the list round-robin and reshuffles after each full pass, so
   * every member is probed once per pass (SWIM's bound on detection time) in random order.
   */
  nextProbeTarget(accept: (s: NodeState) => boolean): NodeState | undefined {
    const n = this.#list.length;
    for (let checked = 0; checked < n; checked++) {
      if (this.#probeIdx >= this.#list.length) {
        this.#shuffle();
        this.#probeIdx = 0;
      }
      const s = this.#list[this.#probeIdx++] as NodeState;
      if (accept(s)) return s;
    }
    return undefined;
  }

  /** Up to k distinct random members passing the filter; O(k) expected (memberlist kRandomNodes). */
  randomMembers(k: number, accept: (s: NodeState) => boolean): NodeState[] {
    const out: NodeState[] = [];
    const n = this.#list.length;
    if (n === 0 || k <= 0) return out;
    for (let i = 0; i < 3 * n && out.length < k; i++) {
      const s = this.#list[Math.floor(this.#rand() * n)] as NodeState;
      if (!accept(s) || out.includes(s)) continue;
      out.push(s);
      // Bounded tries: for small n fall through to an exhaustive scan below.
      if (i > 8 * k + 32) break;
    }
    if (out.length < k && n <= 256) {
      for (const s of this.#list) {
        if (out.length >= k) break;
        if (accept(s) && !out.includes(s)) out.push(s);
      }
    }
    return out;
  }

  #shuffle(): void {
    const l = this.#list;
    for (let i = l.length - 1; i > 0; i--) {
      const j = Math.floor(this.#rand() * (i + 1));
      const a = l[i] as NodeState;
      const b = l[j] as NodeState;
      l[i] = b;
      l[j] = a;
    }
  }
}
