/**
 * Deterministic in-process simulation of a failover pool: one global (real) virtual time, one
 * drifting local clock per node (rate within ±MAX_DRIFT_RATE unless told otherwise), an
 * in-memory transport that can partition, drop and delay messages, and nodes that can be paused
 * (their timers and incoming messages are held until resumed, like SIGSTOP), killed and
 * restarted (a new Failover over the same persistence). Everything random comes from one seed.
 *
 * After every event the simulation checks that at most one node answers isMasterNow() per
 * service (mastership only begins inside an event and lease expiry only ends it, so checking
 * after each event covers every instant), and it records every claim for the history checker.
 */
import { Failover } from '../../src/failover/failover.ts';
import type { ActionExecutor, ActionOutcome } from '../../src/failover/actions.ts';
import type { ClaimRecord } from '../../src/failover/election.ts';
import { MemoryPersistence } from '../../src/failover/persistence.ts';
import type { Clock, PeerTransport, PoolMember, ResolvedService, TimerHandle } from '../../src/failover/types.ts';
import { claimIntervals, checkHistory, type CheckResult } from '../../src/failover/history-checker.ts';
import { silentLogger, type Logger } from '../../src/log/logger.ts';
import { seededRandom } from '../../src/membership/sim.ts';

/** The simulation's seeded PRNG (mulberry32), shared with the membership simulator. */
export const prng = seededRandom;

interface Ev {
  at: number;
  seq: number;
  fn: (() => void) | null;
  owner: string | null;
  gen: number;
}

/** Records actions in memory (the election simulations run thousands of transitions). */
export class RecordingExecutor implements ActionExecutor {
  readonly log: { node: string; command: string; at: number }[] = [];
  readonly #node: string;
  readonly #sim: Sim;
  constructor(sim: Sim, node: string) {
    this.#sim = sim;
    this.#node = node;
  }
  command(_a: unknown, command: string): Promise<ActionOutcome> {
    this.log.push({ node: this.#node, command, at: this.#sim.now });
    return Promise.resolve({ ok: true, detail: 'recorded' });
  }
  floatingIp(op: 'add' | 'del', address: string, iface: string): Promise<ActionOutcome> {
    this.log.push({ node: this.#node, command: `floating_ip ${op} ${address} ${iface}`, at: this.#sim.now });
    return Promise.resolve({ ok: true, detail: 'recorded' });
  }
}

export interface SimNode {
  name: string;
  rate: number;
  offset: number;
  running: boolean;
  paused: boolean;
  gen: number;
  healthy: boolean;
  maintenance: boolean;
  persistence: MemoryPersistence;
  fo: Failover | null;
  held: Ev[];
  /** Failover instances this node ever ran (a paused old instance may still be probed). */
  clock: Clock;
}

export interface SimOptions {
  seed: number;
  members: string[];
  /** Extra nodes that only vote (witness). */
  extra?: string[];
  services: ResolvedService[];
  /** Max |rate − 1| of node clocks. */
  drift?: number;
  delay?: [number, number];
  /** Wait for real action processes after each event (tests with real commands). */
  realActions?: boolean;
  /** Build an executor per node; default RecordingExecutor. */
  executor?: (node: string) => ActionExecutor | undefined;
  /** Debugging: log lines of every node (default: silent). */
  logger?: Logger;
}

export class Sim {
  now = 0;
  readonly rng: () => number;
  readonly nodes = new Map<string, SimNode>();
  readonly claims: ClaimRecord[] = [];
  readonly violations: string[] = [];
  readonly recorded = new Map<string, RecordingExecutor>();
  readonly members: string[];
  readonly services: ResolvedService[];
  dropRate = 0;
  delay: [number, number];
  /** node → group; nodes in different groups cannot talk. */
  groups = new Map<string, number>();
  events = 0;
  /** Nodes every view reports alive whatever their state (to probe vote rules directly). */
  readonly assumeAlive = new Set<string>();
  readonly #heap: Ev[] = [];
  #seq = 0;
  readonly #o: SimOptions;

  constructor(o: SimOptions) {
    this.#o = o;
    this.rng = prng(o.seed);
    this.members = o.members;
    this.services = o.services;
    this.delay = o.delay ?? [1, 20];
    const drift = o.drift ?? 0.04;
    for (const name of [...o.members, ...(o.extra ?? [])]) {
      const n: SimNode = {
        name, rate: 1 + (this.rng() * 2 - 1) * drift, offset: Math.floor(this.rng() * 1e6), running: false, paused: false, gen: 0,
        healthy: true, maintenance: false, persistence: new MemoryPersistence(), fo: null, held: [],
        clock: undefined as unknown as Clock,
      };
      n.clock = this.#clockFor(n);
      this.nodes.set(name, n);
    }
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }

  toReal(name: string, local: number): number {
    const n = this.node(name);
    return (local - n.offset) / n.rate;
  }

  #clockFor(n: SimNode): Clock {
    return {
      now: () => n.offset + n.rate * this.now,
      setTimer: (ms, fn) => ({ _timer: this.schedule(this.now + Math.max(0, ms) / n.rate, fn, n.name) }),
      clearTimer: (h: TimerHandle) => { (h._timer as Ev).fn = null; },
    };
  }

  schedule(at: number, fn: () => void, owner: string | null): Ev {
    const ev: Ev = { at, seq: this.#seq++, fn, owner, gen: owner === null ? 0 : this.node(owner).gen };
    this.#push(ev);
    return ev;
  }

  start(name: string): void {
    const n = this.node(name);
    if (n.running) return;
    n.gen++;
    n.running = true;
    n.paused = false;
    n.held = [];
    const executor = this.#o.executor?.(name) ?? (() => {
      const r = new RecordingExecutor(this, name);
      this.recorded.set(`${name}#${n.gen}`, r);
      return r;
    })();
    n.fo = new Failover({
      node: name, pool: 'p', services: this.services, transport: this.#transport(n), view: { self: name, members: () => this.#view(name) },
      clock: n.clock, persistence: n.persistence, logger: this.#o.logger?.child({ t: () => this.now }) ?? silentLogger(), executor,
      trace: (r) => this.claims.push(r), random: this.rng,
    });
    n.fo.start();
  }

  kill(name: string): void {
    const n = this.node(name);
    n.running = false;
    n.paused = false;
    n.held = [];
    n.fo = null;
    n.gen++; // drops every event of the old process
  }

  pause(name: string): void {
    this.node(name).paused = true;
  }

  resume(name: string): void {
    const n = this.node(name);
    n.paused = false;
    // Held timers and messages run now, in their original order (as after SIGCONT).
    for (const ev of n.held) { ev.at = this.now; this.#push(ev); }
    n.held = [];
  }

  partition(...groups: string[][]): void {
    this.groups = new Map();
    groups.forEach((g, i) => { for (const n of g) this.groups.set(n, i); });
  }

  heal(): void {
    this.groups = new Map();
  }

  linkOk(a: string, b: string): boolean {
    return (this.groups.get(a) ?? -1) === (this.groups.get(b) ?? -1);
  }

  /** Membership + health as `self` sees it: reachable, running and not paused = alive. */
  #view(self: string): PoolMember[] {
    return this.members.map((name) => {
      const n = this.node(name);
      const alive = name === self || this.assumeAlive.has(name) || (n.running && !n.paused && this.linkOk(self, name));
      return { name, alive, healthy: n.healthy, maintenance: n.maintenance };
    });
  }

  #transport(from: SimNode): PeerTransport {
    const gen = from.gen; // start() bumped it before building the transport
    return {
      call: (peer, method, body, timeoutMs) => new Promise((resolve, reject) => {
        let settled = false;
        const timer = from.clock.setTimer(timeoutMs, () => { if (!settled) { settled = true; reject(new Error(`timeout calling ${peer}`)); } });
        const lost = (): boolean => !this.linkOk(from.name, peer) || this.rng() < this.dropRate;
        if (lost()) return;
        const copy = structuredClone(body);
        this.schedule(this.now + this.#delay(), () => {
          const to = this.nodes.get(peer);
          if (to === undefined || !to.running || to.fo === null) return;
          const answer = (ok: boolean, v: unknown): void => {
            if (lost()) return;
            this.schedule(this.now + this.#delay(), () => {
              if (settled || from.gen !== gen) return;
              settled = true;
              from.clock.clearTimer(timer);
              if (ok) resolve(v); else reject(v instanceof Error ? v : new Error(String(v)));
            }, from.name);
          };
          to.fo.handleRpc(method, copy, from.name).then((v) => answer(true, v), (e: unknown) => answer(false, e));
        }, peer);
      }),
    };
  }

  #delay(): number {
    const [a, b] = this.delay;
    return a + this.rng() * (b - a);
  }

  /** Runs events until real time `until`. */
  async runUntil(until: number): Promise<void> {
    for (;;) {
      const ev = this.#heap[0];
      if (ev === undefined || ev.at > until) break;
      this.#pop();
      if (ev.fn === null) continue;
      if (ev.owner !== null) {
        const n = this.node(ev.owner);
        if (!n.running || n.gen !== ev.gen) continue;
        if (n.paused) { n.held.push(ev); continue; }
      }
      this.now = Math.max(this.now, ev.at);
      const fn = ev.fn;
      ev.fn = null;
      fn();
      this.events++;
      await this.#settle();
      this.#checkNow();
    }
    this.now = Math.max(this.now, until);
    await this.#settle();
    this.#checkNow();
  }

  async run(ms: number): Promise<void> {
    await this.runUntil(this.now + ms);
  }

  async #settle(): Promise<void> {
    if (this.#o.realActions === true) {
      await new Promise((r) => setImmediate(r));
      for (const n of this.nodes.values()) if (n.fo !== null && !n.paused) await n.fo.idle();
      await new Promise((r) => setImmediate(r));
    } else {
      for (let i = 0; i < 40; i++) await null;
    }
  }

  /** Masters right now (isMasterNow) per service, paused processes included. */
  masters(service: string): string[] {
    const out: string[] = [];
    for (const n of this.nodes.values()) if (n.fo !== null && n.fo.isMasterNow(service)) out.push(n.name);
    return out;
  }

  #checkNow(): void {
    for (const s of this.services) {
      const m = this.masters(s.name);
      if (m.length > 1) this.violations.push(`t=${this.now.toFixed(1)} ${s.name}: ${m.join(', ')} are all master now`);
    }
  }

  /** Runs the history checker over every claim recorded so far. */
  check(): CheckResult {
    const { intervals, violations } = claimIntervals(this.claims, (n, t) => this.toReal(n, t));
    return checkHistory(intervals, violations);
  }

  #push(ev: Ev): void {
    const h = this.#heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i] as Ev, h[p] as Ev)) break;
      [h[i], h[p]] = [h[p] as Ev, h[i] as Ev];
      i = p;
    }
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop();
    if (last === undefined || h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && less(h[l] as Ev, h[m] as Ev)) m = l;
      if (r < h.length && less(h[r] as Ev, h[m] as Ev)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m] as Ev, h[i] as Ev];
      i = m;
    }
  }
}

function less(a: Ev, b: Ev): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** A resolved service with defaults for simulations. */
export function service(over: Partial<ResolvedService> & { voters: string[] }): ResolvedService {
  return {
    name: 'vip', priority: {}, defaultPriority: 100, preempt: { mode: 'preempt' }, witness: null, leaseMs: 3000, heartbeatMs: 1000,
    actions: { standby_to_master: [], master_to_standby: [], to_fault: [], health_changed: [] },
    ...over,
  };
}
