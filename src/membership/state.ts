/**
 * The member table: one entry per known member, the SWIM state machine's precedence rules
 * (who overrides whom by incarnation), and the selection helpers probing and gossip need
 * (the probe schedule, k random members) without O(N) work per call.
 *
 * Storage is compact because a simulation runs thousands of Memberlists in one process and each
 * holds a full view (N² entries): member names are interned to small integer ids in a
 * process-wide MemberRegistry, and a table keeps, per id, a state byte, the state-change time
 * (Float64Array) and a pointer to an immutable, shared MemberVersion (addr, meta, maint,
 * incarnation), so views that agree about a member share one object (≈21 bytes per entry instead
 * of ≈110 for a NodeState object in a Map). Entries are read and written through NodeState
 * handles (`get`, `all`, …): small objects created per call whose fields read and write the
 * table, so the protocol code in memberlist.ts works on them as on plain objects.
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

/** What a member announces about itself at one incarnation. Immutable; shared between tables. */
export interface MemberVersion {
  readonly addr: string;
  readonly meta: Uint8Array;
  readonly maint: string | null;
  readonly incarnation: number;
  /** fnv1a32 of (addr, maint, meta, incarnation): the content part of a push/pull digest (antientropy.ts). */
  readonly hash: number;
}

const utf8 = new TextEncoder();

/** 32-bit FNV-1a over bytes, continuing from `h` (so fields can be chained). */
export function fnv1a32(bytes: Uint8Array, h = 0x811c9dc5): number {
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ (bytes[i] as number), 0x01000193);
  return h >>> 0;
}

/** FNV-1a of a string's UTF-8 bytes. */
export function fnvString(s: string, h = 0x811c9dc5): number {
  return fnv1a32(utf8.encode(s), h);
}

// 0xff never occurs in UTF-8, so it separates string fields unambiguously.
const FIELD_SEP = new Uint8Array([0xff]);

/**
 * The content hash of one member version, part of its push/pull digest (docs/membership.md,
 * "Push/pull"): FNV-1a over addr, 0xff, [maint, 0xff] or 0xff, meta, incarnation as u64 big-endian.
 */
export function versionHash(addr: string, meta: Uint8Array, maint: string | null, incarnation: number): number {
  let h = fnv1a32(FIELD_SEP, fnvString(addr));
  h = fnv1a32(FIELD_SEP, maint === null ? h : fnvString(maint, h));
  h = fnv1a32(meta, h);
  const inc = new Uint8Array(8);
  const dv = new DataView(inc.buffer);
  dv.setUint32(0, Math.floor(incarnation / 0x100000000));
  dv.setUint32(4, incarnation >>> 0);
  return fnv1a32(inc, h);
}

/** murmur3's 32-bit finalizer: spreads FNV's weak low bits before they pick a bucket. */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Push/pull digest bucket of a member (buckets is a power of two). */
export function bucketOf(nameHash: number, buckets: number): number {
  return mix32(nameHash) & (buckets - 1);
}

/**
 * One member's contribution to its bucket's hash: everything a digest compares (name, version,
 * state, coordinate sequence), mixed, never 0. Bucket hash = sum of contributions mod 2³².
 */
export function digestTerm(nameHash: number, verHash: number, state: MemberState, coordSeq: number): number {
  const h = mix32(nameHash ^ mix32(verHash ^ Math.imul(state + 1, 0x9e3779b1) ^ mix32(coordSeq >>> 0)));
  return h === 0 ? 1 : h;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Versions remembered per member for sharing (a miss only costs memory, never correctness). */
const VERSION_CACHE = 4;

/**
 * Interns member names to dense integer ids (reference-counted by the tables holding them, freed
 * ids are reused) and member versions per name. One process-wide instance (`memberRegistry`)
 * serves every MemberTable, so the simulated members of one process share it.
 */
export class MemberRegistry {
  readonly #ids = new Map<string, number>();
  readonly #names: string[] = [];
  #refs = new Int32Array(64);
  readonly #free: number[] = [];
  readonly #versions: (MemberVersion[] | undefined)[] = [];
  #nameHashes = new Uint32Array(64);

  /** Ids ever allocated (tables size their per-id arrays to this). */
  get highWater(): number {
    return this.#names.length;
  }

  /** Names currently held by at least one table. */
  get size(): number {
    return this.#ids.size;
  }

  lookup(name: string): number {
    return this.#ids.get(name) ?? -1;
  }

  name(id: number): string {
    return this.#names[id] as string;
  }

  /** fnvString(name), cached: picks the member's push/pull digest bucket. */
  nameHash(id: number): number {
    return this.#nameHashes[id] as number;
  }

  /** Id of `name`, allocating it if needed, and one more reference to it. */
  acquire(name: string): number {
    let id = this.#ids.get(name);
    if (id === undefined) {
      id = this.#free.pop();
      if (id === undefined) {
        id = this.#names.length;
        this.#names.push(name);
        this.#versions.push(undefined);
        if (id >= this.#refs.length) {
          const r = new Int32Array(this.#refs.length * 2);
          r.set(this.#refs);
          this.#refs = r;
          const h = new Uint32Array(this.#refs.length);
          h.set(this.#nameHashes);
          this.#nameHashes = h;
        }
      } else {
        this.#names[id] = name;
      }
      this.#nameHashes[id] = fnvString(name);
      this.#ids.set(name, id);
    }
    this.#refs[id] = (this.#refs[id] as number) + 1;
    return id;
  }

  release(id: number): void {
    const r = (this.#refs[id] as number) - 1;
    this.#refs[id] = r;
    if (r > 0) return;
    this.#ids.delete(this.#names[id] as string);
    this.#versions[id] = undefined;
    this.#free.push(id);
  }

  /** A shared version equal to the given fields (a recent one for this member, or a new one). */
  version(id: number, addr: string, meta: Uint8Array, maint: string | null, incarnation: number): MemberVersion {
    let list = this.#versions[id];
    if (list === undefined) {
      list = [];
      this.#versions[id] = list;
    }
    for (let i = 0; i < list.length; i++) {
      const v = list[i] as MemberVersion;
      if (v.incarnation === incarnation && v.addr === addr && v.maint === maint && bytesEqual(v.meta, meta)) return v;
    }
    const v: MemberVersion = { addr, meta, maint, incarnation, hash: versionHash(addr, meta, maint, incarnation) };
    if (list.length >= VERSION_CACHE) list.pop();
    list.unshift(v);
    return v;
  }
}

/** The registry every MemberTable uses by default (one per process). */
export const memberRegistry = new MemberRegistry();

/** Bit set in a state byte when the id is not (or no longer) in the table. */
const ABSENT = 0x80;

/** Per-id arrays of one table; entries (handles) read and write through it. */
class Store {
  readonly reg: MemberRegistry;
  state = new Uint8Array(0);
  change = new Float64Array(0);
  ver: (MemberVersion | undefined)[] = [];
  /** Members alive or suspect. */
  alive = 0;

  constructor(reg: MemberRegistry) {
    this.reg = reg;
  }

  ensure(id: number): void {
    const old = this.state.length;
    if (id < old) return;
    const cap = Math.max(id + 1, this.reg.highWater, old + (old >> 3) + 8);
    const st = new Uint8Array(cap).fill(ABSENT);
    st.set(this.state);
    const ch = new Float64Array(cap);
    ch.set(this.change);
    this.state = st;
    this.change = ch;
    const ver = new Array<MemberVersion | undefined>(cap).fill(undefined);
    for (let i = 0; i < old; i++) ver[i] = this.ver[i];
    this.ver = ver;
  }

  setState(id: number, state: MemberState, now: number | null): void {
    const prev = (this.state[id] as number) & 3;
    const wasLive = prev === ALIVE || prev === SUSPECT;
    const isLive = state === ALIVE || state === SUSPECT;
    if (wasLive !== isLive) this.alive += isLive ? 1 : -1;
    if (now !== null && prev !== state) this.change[id] = now;
    this.state[id] = state;
  }

  setVersion(id: number, addr: string, meta: Uint8Array, maint: string | null, incarnation: number): void {
    this.ver[id] = this.reg.version(id, addr, meta, maint, incarnation);
  }
}

/** A NodeState view of one table entry. Still readable after removal (until the id is reused). */
class Entry implements NodeState {
  readonly name: string;
  readonly id: number;
  readonly #s: Store;

  constructor(s: Store, id: number, name: string) {
    this.#s = s;
    this.id = id;
    this.name = name;
  }

  get #v(): MemberVersion {
    return this.#s.ver[this.id] as MemberVersion;
  }

  get addr(): string {
    return this.#v.addr;
  }

  set addr(addr: string) {
    const v = this.#v;
    if (v.addr !== addr) this.#s.setVersion(this.id, addr, v.meta, v.maint, v.incarnation);
  }

  get meta(): Uint8Array {
    return this.#v.meta;
  }

  set meta(meta: Uint8Array) {
    const v = this.#v;
    if (v.meta !== meta) this.#s.setVersion(this.id, v.addr, meta, v.maint, v.incarnation);
  }

  get maint(): string | null {
    return this.#v.maint;
  }

  set maint(maint: string | null) {
    const v = this.#v;
    if (v.maint !== maint) this.#s.setVersion(this.id, v.addr, v.meta, maint, v.incarnation);
  }

  get incarnation(): number {
    return this.#v.incarnation;
  }

  set incarnation(incarnation: number) {
    const v = this.#v;
    if (v.incarnation !== incarnation) this.#s.setVersion(this.id, v.addr, v.meta, v.maint, incarnation);
  }

  get state(): MemberState {
    return ((this.#s.state[this.id] as number) & 3) as MemberState;
  }

  /** Direct writes keep the live count exact but leave stateChange alone (see MemberTable.setState). */
  set state(state: MemberState) {
    if (((this.#s.state[this.id] as number) & ABSENT) === 0) this.#s.setState(this.id, state, null);
    else this.#s.state[this.id] = state | ABSENT;
  }

  get stateChange(): number {
    return this.#s.change[this.id] as number;
  }

  set stateChange(t: number) {
    this.#s.change[this.id] = t;
  }
}

/**
 * Lookup by name through the registry, plus a dense array of ids for O(1) random picks and a
 * ring of the same ids in name-hash order for the probe schedule. Returned NodeStates are live
 * handles: write changes through them (or setState), not through the object passed to add().
 */
export class MemberTable {
  readonly #s: Store;
  #list = new Int32Array(16);
  #ring = new Int32Array(16);
  #n = 0;
  readonly #rand: () => number;

  constructor(rand: () => number = Math.random, registry: MemberRegistry = memberRegistry) {
    this.#rand = rand;
    this.#s = new Store(registry);
  }

  get size(): number {
    return this.#n;
  }

  /** Members currently alive or suspect (including the local one). */
  get liveCount(): number {
    return this.#s.alive;
  }

  #has(id: number): boolean {
    return id >= 0 && id < this.#s.state.length && ((this.#s.state[id] as number) & ABSENT) === 0;
  }

  #entry(id: number): Entry {
    return new Entry(this.#s, id, this.#s.reg.name(id));
  }

  get(name: string): NodeState | undefined {
    const id = this.#s.reg.lookup(name);
    return this.#has(id) ? this.#entry(id) : undefined;
  }

  /** Every entry (a fresh array of handles). */
  all(): NodeState[] {
    const out = new Array<NodeState>(this.#n);
    for (let i = 0; i < this.#n; i++) out[i] = this.#entry(this.#list[i] as number);
    return out;
  }

  /**
   * Push/pull digest: per bucket (member name → bucketOf) the sum of the members' digestTerm.
   * Runs over the typed arrays directly: a 10k-member simulation computes it for every exchange.
   */
  bucketHashes(buckets: number, coordSeq: ((name: string) => number) | null): Uint32Array {
    const out = new Uint32Array(buckets);
    const st = this.#s;
    for (let i = 0; i < this.#n; i++) {
      const id = this.#list[i] as number;
      const nh = st.reg.nameHash(id);
      const cs = coordSeq ? coordSeq(st.reg.name(id)) : 0;
      const b = bucketOf(nh, buckets);
      out[b] = ((out[b] as number) + digestTerm(nh, (st.ver[id] as MemberVersion).hash, ((st.state[id] as number) & 3) as MemberState, cs)) >>> 0;
    }
    return out;
  }

  /** Entries whose bucket is marked `value` in `mask` (one byte per bucket). */
  inBuckets(mask: Uint8Array, value = 1): NodeState[] {
    const out: NodeState[] = [];
    const reg = this.#s.reg;
    for (let i = 0; i < this.#n; i++) {
      const id = this.#list[i] as number;
      if (mask[bucketOf(reg.nameHash(id), mask.length)] === value) out.push(this.#entry(id));
    }
    return out;
  }

  /** The content hash of an entry's current version (see versionHash). */
  versionHashOf(s: NodeState): number {
    if (s instanceof Entry) return (this.#s.ver[s.id] as MemberVersion).hash;
    return versionHash(s.addr, s.meta, s.maint, s.incarnation);
  }

  /** Copy `s` into the table and return the live entry. */
  add(s: NodeState): NodeState {
    const reg = this.#s.reg;
    if (this.#has(reg.lookup(s.name))) throw new Error(`member ${s.name} already in table`);
    const id = reg.acquire(s.name);
    const st = this.#s;
    st.ensure(id);
    st.state[id] = DEAD; // counted as not live until setState below
    st.change[id] = s.stateChange;
    st.setVersion(id, s.addr, s.meta, s.maint, s.incarnation);
    st.setState(id, s.state, null);
    if (this.#n === this.#list.length) {
      const size = Math.max(16, this.#n * 2, reg.highWater);
      const l = new Int32Array(size);
      l.set(this.#list);
      this.#list = l;
      const r = new Int32Array(size);
      r.set(this.#ring);
      this.#ring = r;
    }
    const n = this.#n;
    this.#list[n] = id;
    const at = this.#ringIndex(id);
    this.#ring.copyWithin(at + 1, at, n);
    this.#ring[at] = id;
    this.#n = n + 1;
    return this.#entry(id);
  }

  remove(name: string): NodeState | undefined {
    const id = this.#s.reg.lookup(name);
    if (!this.#has(id)) return undefined;
    const e = this.#entry(id);
    // O(N), but removal only happens when reaping (rare); no per-entry index saves memory.
    const l = this.#list;
    const i = l.subarray(0, this.#n).indexOf(id);
    const at = this.#ringIndex(id);
    this.#ring.copyWithin(at, at + 1, this.#n);
    const last = l[--this.#n] as number;
    if (last !== id) l[i] = last;
    const st = this.#s;
    const state = (st.state[id] as number) & 3;
    if (state === ALIVE || state === SUSPECT) st.alive--;
    st.state[id] = state | ABSENT;
    st.reg.release(id);
    return e;
  }

  /** All state transitions go through here to keep the live count exact. */
  setState(s: NodeState, state: MemberState, now: number): void {
    if (s instanceof Entry) {
      if (this.#has(s.id) && this.#s.reg.name(s.id) === s.name) {
        this.#s.setState(s.id, state, now);
        return;
      }
    }
    // Not one of ours (or no longer in the table): update the object only.
    if (s.state !== state) s.stateChange = now;
    s.state = state;
  }

  /**
   * The member `self` probes in cluster-wide round `round` (wall time / probe interval): the
   * entry 1 + round mod (M−1) places after `self` in the ring (all M entries by name hash, the
   * same order on every member with the same view), or the next one `accept` takes. Per member
   * this is a round-robin, every other member once per M−1 rounds, like SWIM's. Across members
   * the offset is the same in a round, so its probes hit M distinct targets: every member is
   * probed once per round, not a Poisson number of times (with independent random orders no
   * one probes a given member for 3 rounds or more in ~5 % of rounds, which delays detection).
   */
  probeTarget(self: string, round: number, accept: (s: NodeState) => boolean): NodeState | undefined {
    const m = this.#n;
    const selfId = this.#s.reg.lookup(self);
    if (m < 2 || !this.#has(selfId)) return undefined;
    const start = this.#ringIndex(selfId) + 1 + mod(round, m - 1);
    for (let i = 0; i < m; i++) {
      const id = this.#ring[(start + i) % m] as number;
      if (id === selfId) continue;
      const s = this.#entry(id);
      if (accept(s)) return s;
    }
    return undefined;
  }

  /** Ring order: name hash, then name (hash collisions). */
  #ringBefore(a: number, b: number): boolean {
    const reg = this.#s.reg;
    const ha = reg.nameHash(a);
    const hb = reg.nameHash(b);
    return ha !== hb ? ha < hb : reg.name(a) < reg.name(b);
  }

  /** Index of `id` in the ring, or where it would be inserted. */
  #ringIndex(id: number): number {
    let lo = 0;
    let hi = this.#n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const x = this.#ring[mid] as number;
      if (x !== id && this.#ringBefore(x, id)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Up to k distinct random members passing the filter; O(k) expected (memberlist kRandomNodes). */
  randomMembers(k: number, accept: (s: NodeState) => boolean): NodeState[] {
    const out: NodeState[] = [];
    const n = this.#n;
    if (n === 0 || k <= 0) return out;
    const ids: number[] = [];
    const l = this.#list;
    for (let i = 0; i < 3 * n && out.length < k; i++) {
      const id = l[Math.floor(this.#rand() * n)] as number;
      if (ids.includes(id)) continue;
      const s = this.#entry(id);
      if (!accept(s)) continue;
      ids.push(id);
      out.push(s);
      // Bounded tries: for small n fall through to an exhaustive scan below.
      if (i > 8 * k + 32) break;
    }
    if (out.length < k && n <= 256) {
      for (let i = 0; i < n && out.length < k; i++) {
        const id = l[i] as number;
        if (ids.includes(id)) continue;
        const s = this.#entry(id);
        if (!accept(s)) continue;
        ids.push(id);
        out.push(s);
      }
    }
    return out;
  }
}

/** x mod m in [0, m), also for negative x. */
export function mod(x: number, m: number): number {
  return ((x % m) + m) % m;
}
