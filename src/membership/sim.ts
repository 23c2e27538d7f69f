/**
 * Discrete-event simulation of a cluster: the real Memberlist code, thousands of instances in one
 * process, on a VirtualClock and a simulated network with latency, jitter, loss, partitions,
 * killed members and "slow" members (event loop lagging). Used by tests and by
 * bench/membership/sim.ts. Deterministic for a given seed.
 */
import { VirtualClock, type Clock, type TimerHandle } from './clock.ts';
import type { MembershipConfig } from './config.ts';
import { Keyring } from './keyring.ts';
import { Memberlist, type MemberEvent } from './memberlist.ts';
import type { Transport, TransportHandler } from './transport.ts';
import type { EventBus } from '../events/bus.ts';

/** mulberry32: small, fast, seedable PRNG. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SimNetworkOptions {
  /** One-way base latency (ms). Default 1. */
  latency?: number;
  /** Extra uniform random latency 0..jitter (ms). Default 2. */
  jitter?: number;
  /** Packet loss probability for datagrams (streams are reliable). Default 0. */
  loss?: number;
  seed?: number;
  /**
   * Wall-clock error per member: each member's epoch() is off by a uniform random amount in
   * ±clockSkew ms (members without NTP). Default 0: one shared time base.
   */
  clockSkew?: number;
}

interface Endpoint {
  addr: string;
  handler: TransportHandler | null;
  up: boolean;
  /** Event-loop lag (ms) incoming packets wait before being handled. */
  slow: number;
  /** Extra lateness (ms) of this member's timers. */
  timerLag: number;
  group: number;
  /** How far this member's wall clock is off (ms). */
  clockOffset: number;
}

export class SimNetwork {
  readonly clock: VirtualClock;
  readonly rand: () => number;
  latency: number;
  jitter: number;
  loss: number;
  readonly #clockSkew: number;
  readonly #eps = new Map<string, Endpoint>();
  readonly counters = { packets: 0, bytes: 0, dropped: 0, streams: 0, streamBytes: 0 };

  constructor(opts: SimNetworkOptions = {}) {
    this.clock = new VirtualClock();
    this.rand = seededRandom(opts.seed ?? 1);
    this.latency = opts.latency ?? 1;
    this.jitter = opts.jitter ?? 2;
    this.loss = opts.loss ?? 0;
    this.#clockSkew = opts.clockSkew ?? 0;
  }

  /** A Transport bound to `addr` on this network. */
  transport(addr: string): Transport {
    const ep: Endpoint = { addr, handler: null, up: true, slow: 0, timerLag: 0, group: 0, clockOffset: this.#clockSkew === 0 ? 0 : (this.rand() * 2 - 1) * this.#clockSkew };
    this.#eps.set(addr, ep);
    return new SimTransport(this, ep);
  }

  /** The clock a member sees: its timers fire late by its current timer lag; its wall clock may be off. */
  clockFor(addr: string): Clock {
    const ep = this.#eps.get(addr);
    const c = this.clock;
    return {
      now: () => c.now(),
      ...(this.#clockSkew === 0 ? {} : { epoch: () => c.now() + (ep?.clockOffset ?? 0) }),
      setTimer: (ms: number, fn: () => void): TimerHandle => c.setTimer(ms + (ep?.timerLag ?? 0), fn),
      clearTimer: (h: TimerHandle) => c.clearTimer(h),
    };
  }

  /** Host down: packets to and from it vanish, streams time out. */
  setUp(addr: string, up: boolean): void {
    const ep = this.#eps.get(addr);
    if (ep) ep.up = up;
  }

  /**
   * A degraded member (CPU-starved, blocked event loop): its incoming packets wait `inboundLagMs`
   * before being handled, while its timers, which Node runs before I/O when the loop unblocks,
   * fire only `timerLagMs` late. That is what makes a slow member time out on healthy peers.
   */
  setSlow(addr: string, inboundLagMs: number, timerLagMs = 0): void {
    const ep = this.#eps.get(addr);
    if (ep) {
      ep.slow = inboundLagMs;
      ep.timerLag = timerLagMs;
    }
  }

  /** Split the network: addresses in different groups cannot talk. Unlisted stay in group 0. */
  partition(groups: string[][]): void {
    for (const ep of this.#eps.values()) ep.group = 0;
    groups.forEach((g, i) => {
      for (const a of g) {
        const ep = this.#eps.get(a);
        if (ep) ep.group = i + 1;
      }
    });
  }

  heal(): void {
    for (const ep of this.#eps.values()) ep.group = 0;
  }

  #reachable(from: Endpoint, to: Endpoint | undefined): to is Endpoint {
    return to !== undefined && from.up && to.up && to.handler !== null && from.group === to.group;
  }

  #delay(to: Endpoint): number {
    return this.latency + this.rand() * this.jitter + to.slow;
  }

  sendPacket(from: Endpoint, toAddr: string, data: Uint8Array): void {
    this.counters.packets++;
    this.counters.bytes += data.length;
    const to = this.#eps.get(toAddr);
    if (!this.#reachable(from, to) || (this.loss > 0 && this.rand() < this.loss)) {
      this.counters.dropped++;
      return;
    }
    this.clock.setTimer(this.#delay(to), () => {
      if (to.up && to.handler) to.handler.onPacket(from.addr, data);
    });
  }

  request(from: Endpoint, toAddr: string, data: Uint8Array, timeoutMs: number, cb: (err: Error | null, resp?: Uint8Array) => void): void {
    this.counters.streams++;
    this.counters.streamBytes += data.length;
    let done = false;
    const finish = (err: Error | null, resp?: Uint8Array): void => {
      if (done) return;
      done = true;
      this.clock.clearTimer(timer);
      cb(err, resp);
    };
    const timer = this.clock.setTimer(timeoutMs, () => finish(new Error(`request to ${toAddr} timed out after ${timeoutMs} ms`)));
    const to = this.#eps.get(toAddr);
    if (!this.#reachable(from, to)) return; // unreachable host: the caller times out
    this.clock.setTimer(this.#delay(to), () => {
      if (!this.#reachable(from, to) || !to.handler) return;
      to.handler.onRequest(from.addr, data, (resp) => {
        this.counters.streamBytes += resp.length;
        this.clock.setTimer(this.#delay(from), () => {
          if (this.#reachable(to, from)) finish(null, resp);
        });
      });
    });
  }
}

class SimTransport implements Transport {
  readonly #net: SimNetwork;
  readonly #ep: Endpoint;

  constructor(net: SimNetwork, ep: Endpoint) {
    this.#net = net;
    this.#ep = ep;
  }

  async start(handler: TransportHandler): Promise<void> {
    this.#ep.handler = handler;
  }

  sendPacket(to: string, data: Uint8Array): void {
    this.#net.sendPacket(this.#ep, to, data);
  }

  request(to: string, data: Uint8Array, timeoutMs: number, cb: (err: Error | null, resp?: Uint8Array) => void): void {
    this.#net.request(this.#ep, to, data, timeoutMs, cb);
  }

  localAddress(): string {
    return this.#ep.addr;
  }

  async close(): Promise<void> {
    this.#ep.handler = null;
  }
}

export interface SimClusterOptions extends SimNetworkOptions {
  size: number;
  /** Give member i the bus buses[i] (member.* events, user messages). */
  buses?: EventBus[];
  config?: Partial<MembershipConfig>;
  /** Base64 keys: every member gets its own Keyring with these keys. */
  keys?: string[];
  onEvent?: (node: number, ev: MemberEvent) => void;
  /** Name of member i (default `n${i}`); fixed-width names keep byte counts comparable across sizes. */
  name?: (i: number) => string;
}

export function simAddr(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:7946`;
}

/** N Memberlist instances on one SimNetwork. */
export class SimCluster {
  readonly net: SimNetwork;
  readonly members: Memberlist[] = [];
  readonly #opts: SimClusterOptions;
  readonly nameOf: (i: number) => string;

  constructor(opts: SimClusterOptions) {
    this.#opts = opts;
    this.nameOf = opts.name ?? ((i) => `n${i}`);
    this.net = new SimNetwork(opts);
    for (let i = 0; i < opts.size; i++) this.members.push(this.#make(i));
  }

  get clock(): VirtualClock {
    return this.net.clock;
  }

  #make(i: number, lastIncarnation = 0): Memberlist {
    const addr = simAddr(i);
    const onEvent = this.#opts.onEvent;
    const transport = this.net.transport(addr); // registers the endpoint clockFor looks up
    return new Memberlist({
      name: this.nameOf(i),
      config: this.#opts.config ?? {},
      clock: this.net.clockFor(addr),
      transport,
      rand: seededRandom((this.#opts.seed ?? 1) * 100003 + i),
      lastIncarnation,
      ...(this.#opts.buses?.[i] ? { bus: this.#opts.buses[i] } : {}),
      ...(this.#opts.keys ? { keyring: new Keyring(this.#opts.keys) } : {}),
      ...(onEvent ? { onEvent: (ev: MemberEvent) => onEvent(i, ev) } : {}),
    });
  }

  async startAll(): Promise<void> {
    for (const m of this.members) await m.start();
  }

  /**
   * Give every member the full member list at once (a converged cluster), sharing one decoded
   * state list so a 10k-member run does not pay a join storm it does not measure.
   */
  bootstrapConverged(): void {
    const states = this.members.map((m) => m.localState().find((s) => s.name === m.name)).filter((s) => s !== undefined);
    for (const m of this.members) m.applyState(states);
  }

  /** Every member joins through the protocol (push/pull with member 0), staggered over `spreadMs`. */
  async joinAll(spreadMs = 1000): Promise<void> {
    const seed = simAddr(0);
    const joins: Promise<number>[] = [];
    this.members.forEach((m, i) => {
      if (i === 0) return;
      this.clock.setTimer(Math.floor((i / this.members.length) * spreadMs), () => {
        joins.push(m.join([seed]).catch(() => 0));
      });
    });
    await this.run(spreadMs + 50);
    // Keep the clock moving until every join settled (retries and timeouts run on it).
    let settled = false;
    void Promise.all(joins).then(() => { settled = true; });
    while (!settled) await this.run(100);
  }

  /** Advance virtual time, letting promise continuations run between steps. */
  async run(ms: number, step = 50): Promise<void> {
    const end = this.clock.now() + ms;
    while (this.clock.now() < end) {
      this.clock.runUntil(Math.min(end, this.clock.now() + step));
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  /** Crash member i: it stops and its host stops answering. */
  async kill(i: number): Promise<void> {
    const m = this.members[i];
    if (!m) throw new RangeError(`no member ${i}`);
    this.net.setUp(simAddr(i), false);
    await m.shutdown();
  }

  /**
   * Restart member i with the same name and address (fresh process). persistIncarnation: it
   * starts above its previous incarnation (as the agent does from its state store); otherwise at 1.
   */
  async restart(i: number, persistIncarnation = false): Promise<Memberlist> {
    const old = this.members[i];
    if (!old) throw new RangeError(`no member ${i}`);
    if (old.running) await old.shutdown();
    this.net.setUp(simAddr(i), true);
    const m = this.#make(i, persistIncarnation ? old.stats().incarnation : 0);
    this.members[i] = m;
    await m.start();
    return m;
  }

  /** For each member, how many others it sees alive/suspect (excludes itself). */
  liveViews(): number[] {
    return this.members.map((m) => (m.running ? m.numMembers() - 1 : -1));
  }
}
