/**
 * Memberlist: SWIM failure detection + Lifeguard + infection-style dissemination + push/pull
 * anti-entropy, modelled on hashicorp/memberlist (state.go, net.go). One instance per agent.
 *
 * Public interface: new Memberlist(opts) → start() → join(seeds) … leave(ms) → shutdown();
 * members(), localMember(), setMeta(), setMaintenance(), keyring, stats(); events via the
 * EventBus (`member.*`) and/or the onEvent callback.
 * Depends on: an injected Clock and Transport (real UDP/TCP in net-udp.ts, simulated in sim.ts),
 * and the per-concern modules next to it (state, suspicion, awareness, broadcast, messages, keyring).
 */
import { Packr, Unpackr } from 'msgpackr';
import type { Logger } from '../log/logger.ts';
import { silentLogger } from '../log/logger.ts';
import type { EventBus } from '../events/bus.ts';
import { formatAddr, parseAddr } from './addr.ts';
import { Awareness } from './awareness.ts';
import { BroadcastQueue } from './broadcast.ts';
import { realClock, type Clock, type TimerHandle } from './clock.ts';
import {
  lanConfig, pushPullScale, retransmitLimit, suspicionTimeout, validateConfig, ConfigError, type MembershipConfig,
} from './config.ts';
import { ENCRYPTION_OVERHEAD, Keyring } from './keyring.ts';
import {
  COMPOUND_HEADER_OVERHEAD, COMPOUND_PART_OVERHEAD, DecodeError, LIMITS, decode, encode, encodeCompound,
  type AckMsg, type AliveMsg, type CoordEntry, type CoordMsg, type DeadMsg, type IndirectPingMsg, type Message, type PingMsg,
  type PpDiffMsg, type PpRowsMsg, type PushNodeState, type SuspectMsg, type UserMsg,
} from './messages.ts';
import { JOIN_BUCKETS, bucketCount, decide, type MemberDigest } from './antientropy.ts';
import { CoordinateClient, CoordinateError, distance, type Coordinate, type CoordinateConfig } from './coordinate.ts';
import type { TopoMember } from './topology.ts';
import {
  ALIVE, DEAD, LEFT, SUSPECT, MemberTable, STATE_NAMES, aliveOverrides, deadApplies, fnvString, mix32, mod, suspectApplies,
  type MemberStateName, type NodeState,
} from './state.ts';
import { Suspicion } from './suspicion.ts';
import { ConnectionRefusedError, type Transport, type TransportHandler } from './transport.ts';
import { UdpTransport } from './net-udp.ts';

export interface MemberInfo {
  name: string;
  addr: string;
  state: MemberStateName;
  incarnation: number;
  meta: Record<string, unknown>;
  maintenance: { on: boolean; reason?: string };
  /** Clock time (ms) of the last state change. */
  stateChangedAt: number;
}

export type MemberEventKind = 'joined' | 'updated' | 'suspect' | 'alive' | 'failed' | 'left' | 'reaped' | 'maintenance';

export interface MemberEvent {
  kind: MemberEventKind;
  member: MemberInfo;
  /** For 'suspect': who accused. */
  by?: string;
}

export interface MemberlistOptions {
  /** Unique, stable member name (e.g. hostname). Same name after restart = same member. */
  name: string;
  /** Address to bind (real transport). Default 0.0.0.0. */
  bindAddr?: string;
  /** Address others should use to reach us (NAT, multi-homed). Default: bindAddr. */
  advertiseAddr?: string;
  /** Gossip port (UDP + TCP). Default 7946; 0 = ephemeral (tests). */
  port?: number;
  /** Full config (see config.ts: lanConfig/wanConfig/localConfig) or overrides of LAN. */
  config?: Partial<MembershipConfig>;
  /** Enables encryption. Keyring instance or base64 keys (first = primary). */
  keyring?: Keyring | string[];
  /** Drop unencrypted/unauthenticated incoming packets (default true when a keyring is set). */
  verifyIncoming?: boolean;
  /** Encrypt outgoing packets (default true when a keyring is set; false eases a plaintext→encrypted upgrade). */
  verifyOutgoing?: boolean;
  meta?: Record<string, unknown>;
  clock?: Clock;
  transport?: Transport;
  logger?: Logger;
  bus?: EventBus;
  onEvent?: (ev: MemberEvent) => void;
  /** Random source (seeded in simulations for reproducibility). */
  rand?: () => number;
  /**
   * The highest incarnation this member announced in a previous run (persisted by the caller,
   * e.g. in the agent's state store): we start above it, so after a restart our alive message
   * already beats whatever others hold about us (dead or alive) and needs no refutation round.
   */
  lastIncarnation?: number;
  /** Called with each new incarnation of ours before it is announced, for the caller to persist. */
  onIncarnation?: (n: number) => void;
  /**
   * Vivaldi network coordinates (off by default: each member then keeps one coordinate per
   * member). true or a partial CoordinateConfig turns them on: acks carry the acker's
   * coordinate, direct probes feed RTT samples, and coordinates spread by gossip and push/pull.
   */
  coordinates?: boolean | Partial<CoordinateConfig>;
  /**
   * Who may talk to whom directly (topology.ts). Probe, gossip and push/pull targets are limited
   * to members we can reach; `restricts` (some pairs cannot talk) must be the same on every member.
   */
  topology?: MemberTopology;
}

export interface MemberTopology {
  canReach(a: TopoMember, b: TopoMember): boolean;
  /** True when some members cannot talk directly: only then do coordinates need anti-entropy. */
  readonly restricts: boolean;
}

export interface MemberlistStats {
  members: { alive: number; suspect: number; dead: number; left: number };
  healthScore: number;
  incarnation: number;
  packetsSent: number;
  packetsReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Packets dropped because no installed key authenticated them (or plaintext while verifying). */
  authFailures: number;
  /** Packets dropped because they did not decode (DecodeError). */
  decodeErrors: number;
  probes: number;
  indirectProbes: number;
  tcpFallbacks: number;
  probeFailures: number;
  suspicionsRaised: number;
  refutes: number;
  pushPulls: number;
  /** Full member rows sent / received in push/pull exchanges (digests and bucket hashes not counted). */
  pushPullRowsSent: number;
  pushPullRowsReceived: number;
  /** Failed probes concluded early because the TCP fallback was refused (the member's process is gone). */
  probesRefused: number;
  /** Out-of-turn probes of a member we just heard suspected (to confirm or not, independently). */
  probesOnSuspicion: number;
  /** User messages sent from here, delivered here (own included), and copies dropped as already seen. */
  userMessagesSent: number;
  userMessagesDelivered: number;
  userMessagesDuplicate: number;
  broadcastQueue: number;
  broadcastsDropped: number;
}

export class MemberlistError extends Error {
  override name = 'MemberlistError';
}

export class MetaTooLargeError extends MemberlistError {
  override name = 'MetaTooLargeError';
}

export class UserMessageError extends MemberlistError {
  override name = 'UserMessageError';
}

export class JoinError extends MemberlistError {
  override name = 'JoinError';
  readonly errors: { seed: string; error: string }[];
  constructor(errors: { seed: string; error: string }[]) {
    super(`join failed: no seed reachable (${errors.map((e) => `${e.seed}: ${e.error}`).join('; ')})`);
    this.errors = errors;
  }
}

const metaPackr = new Packr({ useRecords: false });
const metaUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
const EMPTY = new Uint8Array(0);
/**
 * Rejoins (a member's start announcement, its refutations, an alive that revives a dead or left
 * member) are sent on this many times the usual retransmit limit. With the usual limit each
 * member receives an update about limit times on average (Poisson): at 50 members that is ≈ 8,
 * so about one member in 3,000 (simulated: 8 of 1,200 restarts at 50 members) got no copy and kept
 * the restarted member dead until the next push/pull, up to a minute. Twice the limit makes that
 * ≈ e^-16 per member. Rejoins are rare, so the extra bytes are too.
 */
const REJOIN_TRANSMIT_MULT = 2;
/** Encoded size limit of a user message's data: with name, topic and framing it fits one 1400-byte datagram. */
export const USER_DATA_MAX = 1024;
/** A user message id is remembered this long (far beyond its gossip lifetime of a few seconds) to drop copies. */
const USER_SEEN_MS = 120_000;
const USER_SEEN_MAX = 65_536;
/** Recent user messages are kept (at most 1024) for push/pull to repair members gossip missed. */
const USER_RECENT_MS = 60_000;
const USER_RECENT_MAX = 1024;
const TOPIC_RE = /^[\w.:/-]{1,64}$/;
const NAME_RE = /^[^\s\p{Cc}]{1,256}$/u;

interface AckHandler {
  ack: (m: AckMsg) => void;
  nack: () => void;
  timer: TimerHandle;
}

function userKey(k: { from: string; id: number }): string {
  return `${k.from}\n${k.id}`;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Memberlist {
  readonly name: string;
  readonly config: MembershipConfig;
  readonly keyring: Keyring | null;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #bus: EventBus | undefined;
  readonly #onEvent: ((ev: MemberEvent) => void) | undefined;
  readonly #onIncarnation: ((n: number) => void) | undefined;
  readonly #lastIncarnation: number;
  readonly #rand: () => number;
  readonly #transport: Transport;
  readonly #table: MemberTable;
  readonly #awareness: Awareness;
  readonly #broadcasts: BroadcastQueue;
  readonly #suspicions = new Map<string, Suspicion>();
  readonly #acks = new Map<number, AckHandler>();
  readonly #verifyIncoming: boolean;
  readonly #verifyOutgoing: boolean;
  readonly #aad: Uint8Array | undefined;
  #metaBytes: Uint8Array;
  #maint: string | null = null;
  #addr = '';
  #self: NodeState | null = null;
  #incarnation = 0;
  #seq = 0;
  /** Where in each probe interval (ms, on the shared epoch) our probes fall. */
  #probePhase = 0;
  #running = false;
  #leaving = false;
  #silent = false;
  #seeds: string[] = [];
  #timers: { probe?: TimerHandle; gossip?: TimerHandle; pushPull?: TimerHandle; reap?: TimerHandle; reconnect?: TimerHandle } = {};
  readonly #metaCache = new WeakMap<Uint8Array, Record<string, unknown>>();
  readonly #topo: MemberTopology | undefined;
  // Vivaldi (only when opts.coordinates): our client, the latest coordinate of every member,
  // and a separate low-priority queue so coordinates only fill room membership updates leave.
  readonly #coords: CoordinateClient | null;
  readonly #peerCoords = new Map<string, { seq: number; c: Coordinate }>();
  readonly #coordBroadcasts: BroadcastQueue;
  // User messages: own queue (after membership updates, before coordinates), and the ids seen.
  readonly #userBroadcasts: BroadcastQueue;
  readonly #userSeen = new Map<string, number>();
  readonly #userRecent = new Map<string, { at: number; m: UserMsg }>();
  #coordSeq = 0;
  #coordPublishedAt = -Infinity;
  #coordPublished: Coordinate | null = null;
  readonly #s = {
    packetsSent: 0, packetsReceived: 0, bytesSent: 0, bytesReceived: 0, authFailures: 0, decodeErrors: 0,
    probes: 0, indirectProbes: 0, tcpFallbacks: 0, probeFailures: 0, suspicionsRaised: 0, refutes: 0, pushPulls: 0,
    pushPullRowsSent: 0, pushPullRowsReceived: 0, probesRefused: 0, probesOnSuspicion: 0,
    userMessagesSent: 0, userMessagesDelivered: 0, userMessagesDuplicate: 0,
  };

  constructor(opts: MemberlistOptions) {
    if (typeof opts.name !== 'string' || !NAME_RE.test(opts.name)) {
      throw new MemberlistError(`member name must be 1..256 printable characters without spaces, got ${JSON.stringify(opts.name)}`);
    }
    this.name = opts.name;
    const cfg = { ...lanConfig(), ...opts.config };
    for (const k of Object.keys(opts.config ?? {})) {
      if (!(k in cfg) || !(k in lanConfig())) throw new ConfigError(`membership config: unknown setting ${JSON.stringify(k)}`);
    }
    this.config = validateConfig(cfg);
    this.keyring = opts.keyring === undefined ? null : opts.keyring instanceof Keyring ? opts.keyring : new Keyring(opts.keyring);
    this.#verifyIncoming = this.keyring !== null && (opts.verifyIncoming ?? true);
    this.#verifyOutgoing = this.keyring !== null && (opts.verifyOutgoing ?? true);
    this.#aad = this.config.label !== '' ? Buffer.from(this.config.label, 'utf8') : undefined;
    this.#clock = opts.clock ?? realClock();
    this.#log = opts.logger ?? silentLogger();
    this.#bus = opts.bus;
    this.#onEvent = opts.onEvent;
    this.#onIncarnation = opts.onIncarnation;
    const last = opts.lastIncarnation ?? 0;
    if (!Number.isSafeInteger(last) || last < 0) throw new MemberlistError(`lastIncarnation must be a non-negative integer, got ${String(last)}`);
    this.#lastIncarnation = last;
    this.#rand = opts.rand ?? Math.random;
    this.#table = new MemberTable(this.#rand);
    this.#awareness = new Awareness(this.config.awarenessMaxMultiplier);
    this.#broadcasts = new BroadcastQueue(
      () => retransmitLimit(this.config.retransmitMult, this.#table.liveCount),
      this.config.maxBroadcastQueue,
    );
    this.#metaBytes = this.#encodeMeta(opts.meta ?? {});
    this.#topo = opts.topology;
    this.#coords = opts.coordinates ? new CoordinateClient(opts.coordinates === true ? {} : opts.coordinates, this.#rand) : null;
    this.#coordBroadcasts = new BroadcastQueue(() => retransmitLimit(this.config.retransmitMult, this.#table.liveCount), 1024);
    this.#userBroadcasts = new BroadcastQueue(() => retransmitLimit(this.config.retransmitMult, this.#table.liveCount), 1024);
    this.#transport = opts.transport ?? new UdpTransport({
      bindAddr: opts.bindAddr ?? '0.0.0.0',
      port: opts.port ?? 7946,
      advertiseAddr: opts.advertiseAddr,
      tcpTimeout: this.config.tcpTimeout,
    });
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    if (this.#running) throw new MemberlistError('already started');
    const handler: TransportHandler = {
      onPacket: (from, data) => this.#onPacket(from, data),
      onRequest: (from, data, reply) => this.#onRequest(from, data, reply),
    };
    await this.#transport.start(handler);
    this.#addr = this.#transport.localAddress();
    this.#running = true;
    // Our own entry; announcing it queues an alive broadcast that gossip carries after join.
    this.#setIncarnation(this.#lastIncarnation + 1);
    this.#aliveNode({ type: 'alive', incarnation: this.#incarnation, node: this.name, addr: this.#addr, meta: this.#metaBytes, maint: this.#maint }, true);
    this.#self = this.#table.get(this.name) ?? null;
    // Random initial stagger so members of a cluster started together do not tick in lockstep.
    const c = this.config;
    this.#probePhase = this.#rand() * c.probeInterval;
    this.#timers.probe = this.#clock.setTimer(mod(this.#probePhase - this.#epoch(), c.probeInterval), () => this.#probeTick());
    this.#timers.gossip = this.#clock.setTimer(this.#rand() * c.gossipInterval, () => this.#gossipTick());
    if (c.pushPullInterval > 0) {
      // The first exchange falls at a random fraction f of the *scaled* period for the cluster
      // size known by then (we learn it by joining), as every later one does: after a mass start
      // of a large cluster, anti-entropy load is spread as in steady state instead of every
      // member exchanging within the first unscaled interval (memberlist's stagger).
      const f = this.#rand();
      this.#timers.pushPull = this.#clock.setTimer(f * c.pushPullInterval, () => {
        this.#timers.pushPull = this.#clock.setTimer(f * (pushPullScale(c.pushPullInterval, this.#table.liveCount) - c.pushPullInterval), () => this.#pushPullTick());
      });
    }
    this.#timers.reap = this.#clock.setTimer(c.reapInterval, () => this.#reapTick());
    if (c.reconnectInterval > 0) this.#timers.reconnect = this.#clock.setTimer(c.reconnectInterval * (0.5 + this.#rand()), () => this.#reconnectTick());
  }

  /**
   * Contact seeds ("host[:port]") with a push/pull (retrying each joinRetries times).
   * Resolves with the number reached; rejects with JoinError if none was.
   */
  async join(seeds: string[]): Promise<number> {
    if (!this.#running) throw new MemberlistError('join before start');
    const addrs = seeds.map((s) => {
      const hp = parseAddr(s);
      return formatAddr(hp.host, hp.port);
    });
    for (const a of addrs) if (!this.#seeds.includes(a)) this.#seeds.push(a);
    const results = await Promise.all(addrs.filter((a) => a !== this.#addr).map((a) => this.#joinOne(a)));
    const errors = results.filter((r): r is { seed: string; error: string } => r !== null);
    const ok = results.length - errors.length;
    if (ok === 0 && results.length > 0) throw new JoinError(errors);
    return ok;
  }

  #joinOne(addr: string): Promise<{ seed: string; error: string } | null> {
    return new Promise((resolve) => {
      let attempt = 0;
      const tryOnce = (): void => {
        attempt++;
        this.#pushPull(addr, true, (err) => {
          if (!err) return resolve(null);
          if (attempt >= this.config.joinRetries || !this.#running) return resolve({ seed: addr, error: err.message });
          this.#clock.setTimer(this.config.joinRetryBackoff * attempt, tryOnce);
        });
      };
      tryOnce();
    });
  }

  /** Broadcast that we leave (others mark us "left", not "failed"); waits until sent or timeout. */
  async leave(timeoutMs: number): Promise<void> {
    if (!this.#running || this.#leaving || !this.#self) return;
    this.#leaving = true;
    const self = this.#self;
    const others = this.#table.liveCount > 1;
    await new Promise<void>((resolve) => {
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        this.#clock.clearTimer(timer);
        resolve();
      };
      const timer = this.#clock.setTimer(timeoutMs, finish);
      const intent: DeadMsg = { type: 'dead', incarnation: self.incarnation, node: this.name, from: this.name };
      this.#deadNode(intent, finish);
      // Gossip may spend a small transmit budget on recently dead members; tell a few live ones
      // directly too, so a graceful leave is not mistaken for a failure.
      for (const m of this.#table.randomMembers(this.config.gossipNodes, (x) => x.name !== this.name && (x.state === ALIVE || x.state === SUSPECT) && this.#reach(x))) {
        this.#sendMsg(m.addr, intent);
      }
      if (!others) finish();
    });
  }

  async shutdown(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    for (const t of Object.values(this.#timers)) if (t) this.#clock.clearTimer(t);
    this.#timers = {};
    for (const s of this.#suspicions.values()) s.stop();
    this.#suspicions.clear();
    for (const h of this.#acks.values()) this.#clock.clearTimer(h.timer);
    this.#acks.clear();
    this.#broadcasts.reset();
    this.#coordBroadcasts.reset();
    this.#userBroadcasts.reset();
    await this.#transport.close();
  }

  get running(): boolean {
    return this.#running;
  }

  // ---------------------------------------------------------------- public queries / updates

  members(): MemberInfo[] {
    return this.#table.all().map((s) => this.#info(s));
  }

  /** Members in state alive or suspect (the ones other components should use). */
  liveMembers(): MemberInfo[] {
    return this.#table.all().filter((s) => s.state === ALIVE || s.state === SUSPECT).map((s) => this.#info(s));
  }

  member(name: string): MemberInfo | undefined {
    const s = this.#table.get(name);
    return s ? this.#info(s) : undefined;
  }

  localMember(): MemberInfo {
    if (!this.#self) throw new MemberlistError('not started');
    return this.#info(this.#self);
  }

  /** Estimated cluster size (alive + suspect). */
  numMembers(): number {
    return this.#table.liveCount;
  }

  /** Lifeguard health score (0 = healthy). */
  healthScore(): number {
    return this.#awareness.score;
  }

  /** External health penalty, e.g. from event-loop lag (see awareness.ts EventLoopLagMonitor). */
  setHealthPenalty(p: number): void {
    this.#awareness.setExternal(p);
  }

  /** Replace our metadata; spreads as an alive message with a bumped incarnation. */
  setMeta(meta: Record<string, unknown>): void {
    this.#metaBytes = this.#encodeMeta(meta);
    this.#announceSelf();
  }

  setMaintenance(on: boolean, reason = ''): void {
    if (reason.length > LIMITS.maintReason) throw new MemberlistError(`maintenance reason longer than ${LIMITS.maintReason} characters`);
    this.#maint = on ? reason : null;
    this.#announceSelf();
  }

  stats(): MemberlistStats {
    const members = { alive: 0, suspect: 0, dead: 0, left: 0 };
    for (const s of this.#table.all()) members[STATE_NAMES[s.state]]++;
    return {
      members, healthScore: this.#awareness.score, incarnation: this.#incarnation, ...this.#s,
      broadcastQueue: this.#broadcasts.length, broadcastsDropped: this.#broadcasts.dropped,
    };
  }

  // ---------------------------------------------------------------- coordinates and topology

  /** Our Vivaldi coordinate, or null when coordinates are off. */
  coordinate(): Coordinate | null {
    return this.#coords?.coordinate() ?? null;
  }

  /** Latest known coordinate of a member (ours for our own name); undefined when unknown or off. */
  coordinateOf(name: string): Coordinate | undefined {
    if (!this.#coords) return undefined;
    if (name === this.name) return this.#coords.coordinate();
    const e = this.#peerCoords.get(name);
    return e ? { ...e.c, vec: [...e.c.vec] } : undefined;
  }

  /** Estimated round-trip time in ms between two members (b defaults to us); undefined when a coordinate is unknown. */
  estimateRtt(a: string, b: string = this.name): number | undefined {
    const ca = this.coordinateOf(a);
    const cb = this.coordinateOf(b);
    if (!ca || !cb) return undefined;
    return a === b ? 0 : distance(ca, cb) * 1000;
  }

  /** Up to n live members other than us, nearest first by estimated RTT (unknown coordinates last, by name). */
  nearest(n: number, filter?: (m: MemberInfo) => boolean): { member: MemberInfo; rttMs: number | undefined }[] {
    const rows = this.liveMembers()
      .filter((m) => m.name !== this.name && (!filter || filter(m)))
      .map((member) => ({ member, rttMs: this.estimateRtt(member.name) }));
    rows.sort((x, y) => (x.rttMs ?? Infinity) - (y.rttMs ?? Infinity) || (x.member.name < y.member.name ? -1 : 1));
    return rows.slice(0, Math.max(0, n));
  }

  /** Whether the topology lets us talk to this member directly (always true without a topology). */
  canReach(name: string): boolean {
    const s = this.#table.get(name);
    return s ? this.#reach(s) : true;
  }

  #topoView(s: NodeState): TopoMember {
    return { name: s.name, meta: this.#decodeMeta(s.meta) };
  }

  /** Topology filter for probe/gossip/push-pull targets. */
  #reach(s: NodeState, from: NodeState | null = this.#self): boolean {
    if (!this.#topo || !from) return true;
    return this.#topo.canReach(this.#topoView(from), this.#topoView(s));
  }

  /** A direct probe was acked with the acker's coordinate: one RTT sample (memberlist NotifyPingComplete). */
  #onPingComplete(node: string, c: Coordinate, rttMs: number): void {
    if (!this.#coords) return;
    try {
      this.#coords.update(node, c, rttMs / 1000);
    } catch (e) {
      if (!(e instanceof CoordinateError)) throw e;
      this.#log.debug({ member: node, err: e.message }, 'ignoring coordinate sample');
      return;
    }
    const cur = this.#peerCoords.get(node);
    this.#peerCoords.set(node, { seq: cur?.seq ?? 0, c });
    this.#maybePublishCoord();
  }

  /** Gossip our coordinate when it moved noticeably, at most once per (scaled) 10 probe intervals. */
  #maybePublishCoord(): void {
    if (!this.#coords) return;
    const now = this.#clock.now();
    if (now - this.#coordPublishedAt < pushPullScale(10 * this.config.probeInterval, this.#table.liveCount)) return;
    const c = this.#coords.coordinate();
    const p = this.#coordPublished;
    if (p) {
      let d = 0;
      for (let i = 0; i < c.vec.length; i++) d += ((c.vec[i] as number) - (p.vec[i] ?? 0)) ** 2;
      const moved = Math.sqrt(d) + Math.abs(c.height - p.height) + Math.abs(c.adjustment - p.adjustment);
      // 50 µs or 5 % of our distance from the origin, whichever is larger.
      if (moved < Math.max(50e-6, 0.05 * distance(c, { vec: c.vec.map(() => 0), error: 0, adjustment: 0, height: 0 }))) return;
    }
    this.#coordPublishedAt = now;
    this.#coordPublished = c;
    this.#coordSeq++;
    this.#coordBroadcasts.queue({ key: this.name, msg: encode({ type: 'coord', node: this.name, seq: this.#coordSeq, coord: c }) });
  }

  /** A member's coordinate from gossip (rebroadcast when newer) or push/pull (not rebroadcast). */
  #coordNode(m: CoordMsg, rebroadcast = true): void {
    if (!this.#coords) return;
    if (m.node === this.name) {
      // An older life of ours published further: continue numbering past it. Our own current
      // coordinate echoed back by peers (seq equal) must not trigger a new publish, or every echo
      // restarts the cycle and coordinates flood the gossip.
      if (m.seq > this.#coordSeq) {
        this.#coordSeq = m.seq;
        this.#coordPublishedAt = -Infinity;
        this.#coordPublished = null;
      }
      return;
    }
    if (!this.#table.get(m.node)) return; // only members we know: memory stays bounded by the member table
    const cur = this.#peerCoords.get(m.node);
    if (cur && m.seq <= cur.seq) return;
    this.#peerCoords.set(m.node, { seq: m.seq, c: m.coord });
    if (rebroadcast) this.#coordBroadcasts.queue({ key: m.node, msg: encode(m) });
  }

  /** Queued broadcasts for `room` bytes: membership updates first, then user messages, coordinates in what is left. */
  #piggyback(room: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let left = room;
    for (const q of [this.#broadcasts, this.#userBroadcasts, this.#coordBroadcasts]) {
      if (q.length === 0 || left <= COMPOUND_PART_OVERHEAD) continue;
      for (const p of q.getBroadcasts(COMPOUND_PART_OVERHEAD, left)) {
        out.push(p);
        left -= COMPOUND_PART_OVERHEAD + p.length;
      }
    }
    return out;
  }

  // ---------------------------------------------------------------- user messages

  /**
   * Gossip an application message to every live member (and deliver it here too), as event
   * `member.message` {from, topic, data} on each member's bus. Best effort like all gossip: sent
   * retransmitLimit times from every member that gets it, delivered at most once per member
   * (copies are dropped by (sender, id)); a member that is down or partitioned misses it. data is
   * any msgpack-encodable value ≤ USER_DATA_MAX bytes encoded (UserMessageError otherwise).
   */
  sendUserMessage(topic: string, data: unknown): void {
    if (!this.#running) throw new UserMessageError('not started');
    if (typeof topic !== 'string' || !TOPIC_RE.test(topic)) throw new UserMessageError(`topic must be 1..64 characters of [A-Za-z0-9_.:/-], got ${JSON.stringify(topic)}`);
    let b: Uint8Array;
    try {
      b = Uint8Array.from(metaPackr.pack(data));
    } catch (e) {
      throw new UserMessageError(`message data is not encodable: ${(e as Error).message}`);
    }
    if (b.length > USER_DATA_MAX) throw new UserMessageError(`message data is ${b.length} bytes encoded, limit is ${USER_DATA_MAX}`);
    this.#s.userMessagesSent++;
    this.#userNode({ type: 'user', from: this.name, id: Math.floor(this.#rand() * 2 ** 53), topic, data: b });
    this.#gossipRound();
  }

  /** A user message: first copy → deliver, re-gossip (transmit-limited) and keep for push/pull; later copies are dropped. */
  #userNode(m: UserMsg): void {
    this.#expireUser();
    const key = userKey(m);
    if (this.#userSeen.has(key)) {
      this.#s.userMessagesDuplicate++;
      return;
    }
    let data: unknown;
    try {
      data = metaUnpackr.unpack(m.data);
    } catch {
      this.#s.decodeErrors++;
      return;
    }
    const now = this.#clock.now();
    this.#userSeen.set(key, now);
    this.#userRecent.set(key, { at: now, m });
    this.#userBroadcasts.queue({ key, msg: encode(m) });
    this.#s.userMessagesDelivered++;
    this.#bus?.publish('member.message', { from: m.from, topic: m.topic, data });
  }

  /** Forget ids and bodies past their window or count (maps iterate oldest first). */
  #expireUser(): void {
    const now = this.#clock.now();
    for (const [k, t] of this.#userSeen) {
      if (now - t < USER_SEEN_MS && this.#userSeen.size < USER_SEEN_MAX) break;
      this.#userSeen.delete(k);
    }
    for (const [k, r] of this.#userRecent) {
      if (now - r.at < USER_RECENT_MS && this.#userRecent.size <= USER_RECENT_MAX) break;
      this.#userRecent.delete(k);
    }
  }

  /** Push/pull digest of the recent user messages we hold: sum of mixed key hashes (0 = none). */
  #userHash(): number {
    this.#expireUser();
    let h = 0;
    for (const k of this.#userRecent.keys()) h = (h + mix32(fnvString(k))) >>> 0;
    return h;
  }

  /**
   * Merge alive rows as if they came from a push/pull, without rebroadcast or events. Used by the
   * simulator to start large clusters from a converged view (a 10k-member join storm is not what
   * it measures) and by tests; the normal path is join().
   */
  applyState(states: PushNodeState[]): void {
    this.#silent = true;
    try {
      for (const r of states) {
        if (r.state === ALIVE) this.#aliveNode({ type: 'alive', incarnation: r.incarnation, node: r.name, addr: r.addr, meta: r.meta, maint: r.maint }, false, true);
      }
    } finally {
      this.#silent = false;
    }
  }

  /** Our whole view as push/pull rows. */
  localState(): PushNodeState[] {
    return this.#table.all().map((s) => this.#row(s));
  }

  /** One member as a push/pull row, with its coordinate when we know one. */
  #row(s: NodeState): PushNodeState {
    const r: PushNodeState = { name: s.name, addr: s.addr, meta: s.meta, maint: s.maint, incarnation: s.incarnation, state: s.state };
    const c = this.#coordEntry(s.name);
    if (c) {
      r.coordSeq = c.seq;
      r.coord = c.coord;
    }
    return r;
  }

  /** The coordinate we know for a member (ours once published), or undefined. */
  #coordEntry(name: string): CoordEntry | undefined {
    if (!this.#coords) return undefined;
    if (name === this.name) return this.#coordSeq > 0 ? { node: name, seq: this.#coordSeq, coord: this.#coords.coordinate() } : undefined;
    const e = this.#peerCoords.get(name);
    return e ? { node: name, seq: e.seq, coord: e.c } : undefined;
  }

  /** Coordinate sequence per member for push/pull digests. */
  readonly #coordSeqOf = (name: string): number => (name === this.name ? this.#coordSeq : (this.#peerCoords.get(name)?.seq ?? 0));

  /**
   * Whether push/pull digests cover coordinates: only when the topology keeps some members from
   * talking directly. Otherwise every member probes every member once per round-robin pass and
   * the ack carries the acker's coordinate (as in serf, which never gossips coordinates), and
   * exchanging every member's ever-changing coordinate was most of our push/pull bytes.
   */
  get #coordAntiEntropy(): boolean {
    return this.#coords !== null && this.#topo?.restricts === true;
  }

  #digest(s: NodeState): MemberDigest {
    return { name: s.name, incarnation: s.incarnation, state: s.state, hash: this.#table.versionHashOf(s), coordSeq: this.#coordAntiEntropy ? this.#coordSeqOf(s.name) : 0 };
  }

  #bucketHashes(buckets: number): Uint32Array {
    return this.#table.bucketHashes(buckets, this.#coordAntiEntropy ? this.#coordSeqOf : null);
  }

  #encodeMeta(meta: Record<string, unknown>): Uint8Array {
    if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) throw new MemberlistError('meta must be a plain object');
    let b: Uint8Array;
    try {
      b = Uint8Array.from(metaPackr.pack(meta));
    } catch (e) {
      throw new MemberlistError(`meta is not encodable: ${(e as Error).message}`);
    }
    if (b.length > this.config.metaMaxSize) {
      throw new MetaTooLargeError(`meta is ${b.length} bytes encoded, limit is ${this.config.metaMaxSize} (config.metaMaxSize)`);
    }
    return b;
  }

  #decodeMeta(b: Uint8Array): Record<string, unknown> {
    if (b.length === 0) return {};
    let m = this.#metaCache.get(b);
    if (!m) {
      try {
        const v: unknown = metaUnpackr.unpack(b);
        m = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
      } catch {
        m = {};
      }
      this.#metaCache.set(b, m);
    }
    return m;
  }

  #info(s: NodeState): MemberInfo {
    return {
      name: s.name, addr: s.addr, state: STATE_NAMES[s.state], incarnation: s.incarnation, meta: this.#decodeMeta(s.meta),
      maintenance: s.maint === null ? { on: false } : { on: true, reason: s.maint }, stateChangedAt: s.stateChange,
    };
  }

  #announceSelf(): void {
    if (!this.#running || !this.#self) return;
    this.#setIncarnation(this.#incarnation + 1);
    this.#aliveNode({ type: 'alive', incarnation: this.#incarnation, node: this.name, addr: this.#addr, meta: this.#metaBytes, maint: this.#maint }, true);
  }

  #emit(kind: MemberEventKind, s: NodeState, by?: string): void {
    if ((!this.#onEvent && !this.#bus) || this.#silent) return;
    const member = this.#info(s);
    this.#onEvent?.(by === undefined ? { kind, member } : { kind, member, by });
    const bus = this.#bus;
    if (!bus) return;
    switch (kind) {
      case 'joined': bus.publish('member.joined', { name: s.name, address: s.addr, meta: member.meta }); break;
      case 'updated': bus.publish('member.updated', { name: s.name, meta: member.meta }); break;
      case 'suspect': bus.publish('member.suspect', { name: s.name, incarnation: s.incarnation, by: by ?? '' }); break;
      case 'alive': bus.publish('member.alive', { name: s.name, incarnation: s.incarnation }); break;
      case 'failed': bus.publish('member.failed', { name: s.name, incarnation: s.incarnation }); break;
      case 'left': bus.publish('member.left', { name: s.name }); break;
      case 'reaped': bus.publish('member.reaped', { name: s.name }); break;
      case 'maintenance': bus.publish('member.maintenance', member.maintenance.reason === undefined ? { name: s.name, on: false } : { name: s.name, on: true, reason: member.maintenance.reason }); break;
    }
  }

  // ---------------------------------------------------------------- state machine (memberlist state.go)

  #broadcast(node: string, m: Message, notify?: () => void, mult?: number): void {
    this.#broadcasts.queue({ key: node, msg: encode(m), notify, mult });
  }

  /** Apply an alive message. bootstrap = our own announcement; quiet = do not rebroadcast. */
  #aliveNode(a: AliveMsg, bootstrap: boolean, quiet = false): void {
    if (this.#leaving && a.node === this.name) return;
    if (a.meta.length > this.config.metaMaxSize) {
      this.#log.warn({ member: a.node, size: a.meta.length }, 'dropping alive message: meta over metaMaxSize');
      return;
    }
    const isLocal = a.node === this.name;
    let s = this.#table.get(a.node);
    let isNew = false;
    let updatesAddr = false;
    if (!s) {
      // Unknown members start as dead at incarnation 0 so the alive below applies.
      s = this.#table.add({ name: a.node, addr: a.addr, meta: EMPTY, maint: null, incarnation: 0, state: DEAD, stateChange: this.#clock.now() });
      isNew = true;
    } else if (s.addr !== a.addr) {
      // A new address is accepted only for members that are gone (restart elsewhere).
      const canReclaim = s.state === LEFT || (s.state === DEAD && this.#clock.now() - s.stateChange >= this.config.deadNodeReclaimTime);
      if (!canReclaim || isLocal) {
        this.#log.warn({ member: a.node, have: s.addr, got: a.addr }, 'conflicting address for member; ignoring alive message');
        return;
      }
      updatesAddr = true;
    }
    if (!isLocal && !isNew && !updatesAddr && !aliveOverrides(s, a.incarnation)) return;
    if (isLocal && a.incarnation < s.incarnation) return;

    const sus = this.#suspicions.get(a.node);
    if (sus) {
      sus.stop();
      this.#suspicions.delete(a.node);
    }

    if (!bootstrap && isLocal) {
      // Someone is gossiping about us. Our own message echoed back is fine; anything else
      // (older meta, a claim at our incarnation or beyond) is refuted with a newer incarnation.
      if (a.incarnation === s.incarnation && bytesEqual(a.meta, s.meta) && a.maint === s.maint) return;
      this.#refute(s, a.incarnation);
      return;
    }

    const oldState = s.state;
    const metaChanged = !bytesEqual(s.meta, a.meta);
    const maintChanged = s.maint !== a.maint;
    // Our start announcement, or a member back from dead/left: see REJOIN_TRANSMIT_MULT.
    const rejoin = isLocal ? isNew : !isNew && (oldState === DEAD || oldState === LEFT);
    if (!quiet) this.#broadcast(a.node, a, undefined, rejoin ? REJOIN_TRANSMIT_MULT : 1);
    s.incarnation = a.incarnation;
    if (metaChanged) s.meta = a.meta.length === 0 ? EMPTY : a.meta;
    s.maint = a.maint;
    s.addr = a.addr;
    this.#table.setState(s, ALIVE, this.#clock.now());

    if (isNew || oldState === DEAD || oldState === LEFT) {
      if (!isLocal || isNew) this.#emit('joined', s);
      if (s.maint !== null) this.#emit('maintenance', s);
      return;
    }
    if (oldState === SUSPECT) this.#emit('alive', s);
    if (metaChanged) this.#emit('updated', s);
    if (maintChanged) this.#emit('maintenance', s);
  }

  #suspectNode(m: SuspectMsg): void {
    const s = this.#table.get(m.node);
    if (!s || m.incarnation < s.incarnation) return;
    const existing = this.#suspicions.get(m.node);
    if (existing) {
      // An independent confirmation shortens the timer (Lifeguard) and is re-gossiped.
      if (existing.confirm(m.from)) this.#broadcast(m.node, m);
      return;
    }
    if (!suspectApplies(s, m.incarnation)) return;
    if (m.node === this.name) {
      this.#refute(s, m.incarnation);
      this.#log.warn({ accuser: m.from }, 'refuting a suspicion about ourselves');
      return;
    }
    this.#broadcast(m.node, m);
    s.incarnation = m.incarnation;
    this.#table.setState(s, SUSPECT, this.#clock.now());
    this.#s.suspicionsRaised++;

    const n = this.#table.liveCount;
    let k = this.config.suspicionMult - 2;
    // Few members: we can't expect k independent confirmations, so don't wait for them.
    if (n - 2 < k) k = 0;
    const min = suspicionTimeout(this.config.suspicionMult, n, this.config.probeInterval);
    const max = this.config.suspicionMaxTimeoutMult * min;
    const inc = m.incarnation;
    const sus = new Suspicion(this.#clock, m.from, k, min, max, () => {
      if (this.#suspicions.get(m.node) !== sus) return;
      this.#suspicions.delete(m.node);
      const cur = this.#table.get(m.node);
      if (cur && cur.state === SUSPECT && cur.incarnation === inc) {
        this.#log.info({ member: m.node }, 'suspect has failed, no refutation received');
        this.#deadNode({ type: 'dead', incarnation: inc, node: m.node, from: this.name });
        this.#gossipRound();
      }
    });
    this.#suspicions.set(m.node, sus);
    this.#emit('suspect', s, m.from);
    // The timer only shrinks to its minimum once k members independently confirm, and a member
    // otherwise re-checks the suspect only when its round-robin turn comes (every ~N probe
    // intervals), so detection waited on luck. Instead each member that hears of the suspicion
    // probes it at once with probability (k+1)/(N−2): about k+1 fresh, independent checks
    // cluster-wide per suspicion (none when few members), whatever N. Timers are unchanged.
    if (m.from !== this.name && k > 0 && !this.#leaving && this.#reach(s) && this.#rand() < (k + 1) / (n - 2)) {
      this.#s.probesOnSuspicion++;
      this.#probeNode(s);
    }
  }

  #deadNode(d: DeadMsg, notify?: () => void): void {
    const s = this.#table.get(d.node);
    if (!s || d.incarnation < s.incarnation) return;
    const sus = this.#suspicions.get(d.node);
    if (sus) {
      sus.stop();
      this.#suspicions.delete(d.node);
    }
    if (!deadApplies(s, d.incarnation)) return;
    if (d.node === this.name && !this.#leaving) {
      // We are declared dead while running: refute loudly.
      this.#refute(s, d.incarnation);
      return;
    }
    this.#broadcast(d.node, d, notify);
    s.incarnation = d.incarnation;
    const left = d.node === d.from;
    this.#table.setState(s, left ? LEFT : DEAD, this.#clock.now());
    this.#emit(left ? 'left' : 'failed', s);
  }

  /** Every new incarnation of ours goes through here, so the caller persists it before anyone hears it. */
  #setIncarnation(n: number): void {
    this.#incarnation = n;
    this.#onIncarnation?.(n);
  }

  /** Bump our incarnation past the accusation and gossip that we're alive (+1 health score). */
  #refute(self: NodeState, accusedInc: number): void {
    this.#setIncarnation(Math.max(this.#incarnation, accusedInc) + 1);
    self.incarnation = this.#incarnation;
    this.#awareness.applyDelta(1);
    this.#s.refutes++;
    this.#broadcast(this.name, { type: 'alive', incarnation: this.#incarnation, node: this.name, addr: this.#addr, meta: this.#metaBytes, maint: this.#maint }, undefined, REJOIN_TRANSMIT_MULT);
    this.#gossipRound();
  }

  #mergeState(remote: PushNodeState[]): void {
    for (const r of remote) {
      switch (r.state) {
        case ALIVE:
          this.#aliveNode({ type: 'alive', incarnation: r.incarnation, node: r.name, addr: r.addr, meta: r.meta, maint: r.maint }, false);
          break;
        case LEFT:
          this.#deadNode({ type: 'dead', incarnation: r.incarnation, node: r.name, from: r.name });
          break;
        default:
          // A remote "dead" only makes us suspect: the member gets a chance to refute to us.
          this.#suspectNode({ type: 'suspect', incarnation: r.incarnation, node: r.name, from: this.name });
      }
      if (r.coord && r.coordSeq !== undefined) this.#coordNode({ type: 'coord', node: r.name, seq: r.coordSeq, coord: r.coord }, false);
    }
    this.#s.pushPullRowsReceived += remote.length;
  }

  // ---------------------------------------------------------------- network I/O

  #wrap(plain: Uint8Array): Uint8Array {
    return this.#verifyOutgoing && this.keyring ? this.keyring.encrypt(plain, this.#aad) : plain;
  }

  /** Decrypt (when encryption is on) or null = drop and count. */
  #unwrap(data: Uint8Array): Uint8Array | null {
    if (!this.keyring) return data;
    const plain = this.keyring.decrypt(data, this.#aad);
    if (plain) return plain;
    if (this.#verifyIncoming) {
      this.#s.authFailures++;
      return null;
    }
    return data; // upgrade mode: accept plaintext
  }

  #rawSend(addr: string, plain: Uint8Array): void {
    const data = this.#wrap(plain);
    this.#s.packetsSent++;
    this.#s.bytesSent += data.length;
    this.#transport.sendPacket(addr, data);
  }

  #packetRoom(): number {
    return this.config.udpBufferSize - (this.#verifyOutgoing ? ENCRYPTION_OVERHEAD : 0);
  }

  /** Send one message, filling the rest of the packet with queued broadcasts (piggybacking). */
  #sendMsg(addr: string, m: Message): void {
    const msg = encode(m);
    const room = this.#packetRoom() - COMPOUND_HEADER_OVERHEAD - COMPOUND_PART_OVERHEAD - msg.length;
    const extra = this.#piggyback(room);
    this.#rawSend(addr, extra.length === 0 ? msg : encodeCompound([msg, ...extra]));
  }

  #onPacket(from: string, data: Uint8Array): void {
    if (!this.#running) return;
    this.#s.packetsReceived++;
    this.#s.bytesReceived += data.length;
    const plain = this.#unwrap(data);
    if (!plain) return;
    let msgs: Message[];
    try {
      msgs = decode(plain);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.#s.decodeErrors++;
      this.#log.debug({ from, err: e.message }, 'dropping undecodable packet');
      return;
    }
    for (const m of msgs) this.#handle(from, m);
  }

  #handle(from: string, m: Message): void {
    switch (m.type) {
      case 'ping': return this.#handlePing(from, m);
      case 'indirectPing': return this.#handleIndirectPing(m);
      case 'ack': {
        const h = this.#acks.get(m.seq);
        if (h) {
          this.#acks.delete(m.seq);
          this.#clock.clearTimer(h.timer);
          h.ack(m);
        }
        return;
      }
      case 'nack': {
        this.#acks.get(m.seq)?.nack();
        return;
      }
      case 'alive': return this.#aliveNode(m, false);
      case 'suspect': return this.#suspectNode(m);
      case 'dead': return this.#deadNode(m);
      // Only the owner gossips its coordinate (to a few random members, transmit-limited);
      // receivers keep it without re-gossiping: push/pull carries coordinates to everyone else.
      // Re-gossiping every member's coordinate cost 5-20x the bytes of membership itself.
      case 'coord': return this.#coordNode(m, false);
      case 'user': return this.#userNode(m);
      default:
        this.#s.decodeErrors++; // push/pull and err only travel over streams
    }
  }

  #handlePing(from: string, p: PingMsg): void {
    // A ping meant for a previous owner of this address must not be acked by us.
    if (p.target !== '' && p.target !== this.name) return;
    this.#sendMsg(p.sourceAddr || from, this.#coords ? { type: 'ack', seq: p.seq, coord: this.#coords.coordinate() } : { type: 'ack', seq: p.seq });
  }

  #handleIndirectPing(ind: IndirectPingMsg): void {
    this.#s.indirectProbes++;
    const seq = this.#nextSeq();
    const timer = this.#clock.setTimer(this.config.probeTimeout, () => {
      this.#acks.delete(seq);
      if (ind.nack) this.#sendMsg(ind.sourceAddr, { type: 'nack', seq: ind.seq });
    });
    this.#acks.set(seq, {
      ack: () => this.#sendMsg(ind.sourceAddr, { type: 'ack', seq: ind.seq }),
      nack: () => undefined,
      timer,
    });
    this.#sendMsg(ind.targetAddr, { type: 'ping', seq, target: ind.target, sourceName: this.name, sourceAddr: this.#addr });
  }

  #onRequest(_from: string, data: Uint8Array, reply: (resp: Uint8Array) => void): void {
    if (!this.#running) return;
    this.#s.bytesReceived += data.length;
    const plain = this.#unwrap(data);
    // An empty reply tells an honest peer with the wrong key "authentication failed" at once
    // instead of letting it time out; it reveals nothing.
    if (!plain) return reply(EMPTY);
    let msgs: Message[];
    try {
      msgs = decode(plain);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.#s.decodeErrors++;
      reply(this.#wrap(encode({ type: 'err', message: `undecodable request: ${e.message}` })));
      return;
    }
    const m = msgs[0];
    if (msgs.length !== 1 || !m) {
      reply(this.#wrap(encode({ type: 'err', message: 'expected exactly one message' })));
      return;
    }
    if (m.type === 'ping') {
      // TCP fallback probe: answer only if we are the member asked for.
      if (m.target === '' || m.target === this.name) reply(this.#wrap(encode({ type: 'ack', seq: m.seq })));
      else reply(this.#wrap(encode({ type: 'err', message: `this is ${this.name}, not ${m.target}` })));
      return;
    }
    if (m.type === 'ppDigest') {
      this.#s.pushPulls++;
      if (m.join) this.#log.debug({ from: _from }, 'push/pull from a joining member');
      reply(this.#wrap(encode(this.#diffFor(m.hashes, m.userHash))));
      return;
    }
    if (m.type === 'ppRows') {
      // Answer with what was asked for as it is now, then merge theirs (memberlist's order).
      const rows = this.#rowsNamed(m.want);
      const coords = m.wantCoords.map((n) => this.#coordEntry(n)).filter((c) => c !== undefined);
      const user = m.wantUser.map((k) => this.#userRecent.get(userKey(k))?.m).filter((u) => u !== undefined);
      this.#s.pushPullRowsSent += rows.length;
      reply(this.#wrap(encode({ type: 'ppRows', rows, coords, want: [], wantCoords: [], user, wantUser: [] })));
      this.#mergeState(m.rows);
      for (const c of m.coords) this.#coordNode({ type: 'coord', ...c }, false);
      for (const u of m.user) this.#userNode(u);
      return;
    }
    reply(this.#wrap(encode({ type: 'err', message: `unexpected ${m.type} on stream` })));
  }

  /**
   * Anti-entropy with one member, digest first (antientropy.ts): send our bucket hashes, get rows
   * of buckets we lack and digests of buckets that differ, then exchange only the rows (or
   * coordinates) one side lacks or has older. cb(null) once both sides' views are merged.
   */
  #pushPull(addr: string, join: boolean, cb: (err: Error | null) => void): void {
    this.#s.pushPulls++;
    const hashes = this.#bucketHashes(join ? JOIN_BUCKETS : bucketCount(this.#table.liveCount));
    this.#request(addr, { type: 'ppDigest', join, hashes, userHash: this.#userHash() }, 'ppDiff', (err, d) => {
      if (err || d?.type !== 'ppDiff') return cb(err ?? new MemberlistError('unexpected push/pull response'));
      const ex = this.#exchangeFor(hashes.length, d);
      this.#mergeState(d.rows);
      if (ex.rows.length + ex.coords.length + ex.want.length + ex.wantCoords.length + ex.user.length + ex.wantUser.length === 0) return cb(null);
      this.#s.pushPullRowsSent += ex.rows.length;
      this.#request(addr, ex, 'ppRows', (err2, r) => {
        if (err2 || r?.type !== 'ppRows') return cb(err2 ?? new MemberlistError('unexpected push/pull response'));
        this.#mergeState(r.rows);
        for (const c of r.coords) this.#coordNode({ type: 'coord', ...c }, false);
        for (const u of r.user) this.#userNode(u);
        cb(null);
      });
    });
  }

  /** Responder, step 2: alive rows of buckets the initiator has empty, digests of the other differing ones. */
  #diffFor(theirs: Uint32Array, theirUserHash: number): PpDiffMsg {
    const mine = this.#bucketHashes(theirs.length);
    const mask = new Uint8Array(theirs.length); // 1 = send rows, 2 = send digests
    const buckets: number[] = [];
    for (let b = 0; b < theirs.length; b++) {
      if (mine[b] === theirs[b]) continue;
      mask[b] = theirs[b] === 0 ? 1 : 2;
      if (mask[b] === 2) buckets.push(b);
    }
    const rows = this.#table.inBuckets(mask, 1).filter((s) => s.state === ALIVE).map((s) => this.#row(s));
    const digests = buckets.length > 0 ? this.#table.inBuckets(mask, 2).map((s) => this.#digest(s)) : [];
    this.#s.pushPullRowsSent += rows.length;
    const userKeys = this.#userHash() === theirUserHash ? null : [...this.#userRecent.values()].map((r) => ({ from: r.m.from, id: r.m.id }));
    return { type: 'ppDiff', rows, buckets, digests, userKeys };
  }

  /** Initiator, step 3: per member of the differing buckets, what to send and what to ask for. */
  #exchangeFor(buckets: number, d: PpDiffMsg): PpRowsMsg {
    const out: PpRowsMsg = { type: 'ppRows', rows: [], coords: [], want: [], wantCoords: [], user: [], wantUser: [] };
    if (d.userKeys) {
      // Recent user messages: send what the peer does not list, ask for what we never saw.
      const theirs = new Set(d.userKeys.map(userKey));
      for (const [k, r] of this.#userRecent) if (!theirs.has(k)) out.user.push(r.m);
      for (const k of d.userKeys) if (!this.#userSeen.has(userKey(k))) out.wantUser.push(k);
    }
    const mask = new Uint8Array(buckets);
    for (const b of d.buckets) if (b < buckets) mask[b] = 1;
    const remote = new Map(d.digests.map((x) => [x.name, x]));
    const apply = (local: NodeState | undefined, r: MemberDigest | undefined): void => {
      const dec = decide(local && this.#digest(local), r);
      const name = (local?.name ?? r?.name) as string;
      if (dec.send === 'row' && local) out.rows.push(this.#row(local));
      else if (dec.send === 'coord') {
        const c = this.#coordEntry(name);
        if (c) out.coords.push(c);
      }
      if (dec.want === 'row') out.want.push(name);
      else if (dec.want === 'coord') out.wantCoords.push(name);
    };
    for (const s of this.#table.inBuckets(mask)) apply(s, remote.get(s.name));
    for (const r of remote.values()) if (!this.#table.get(r.name)) apply(undefined, r);
    return out;
  }

  /** Current rows of the named members we know. */
  #rowsNamed(names: string[]): PushNodeState[] {
    const rows: PushNodeState[] = [];
    for (const n of names) {
      const s = this.#table.get(n);
      if (s) rows.push(this.#row(s));
    }
    return rows;
  }

  /** One reliable request/response over the transport, encrypted, decoded to the expected message type. */
  #request(addr: string, msg: Message, expect: Message['type'], cb: (err: Error | null, m?: Message) => void): void {
    const req = this.#wrap(encode(msg));
    this.#s.bytesSent += req.length;
    this.#transport.request(addr, req, this.config.tcpTimeout, (err, resp) => {
      if (!this.#running) return cb(new MemberlistError('shut down'));
      if (err || !resp) return cb(err ?? new MemberlistError('no response'));
      this.#s.bytesReceived += resp.length;
      const plain = this.#unwrap(resp);
      if (!plain) return cb(new MemberlistError('response failed authentication (wrong gossip key or label?)'));
      let msgs: Message[];
      try {
        msgs = decode(plain);
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
        this.#s.decodeErrors++;
        return cb(new MemberlistError(`undecodable ${expect} response: ${e.message}`));
      }
      const m = msgs[0];
      if (!m || m.type !== expect) return cb(new MemberlistError(m?.type === 'err' ? `remote error: ${m.message}` : `unexpected ${m?.type ?? 'empty'} response, expected ${expect}`));
      cb(null, m);
    });
  }

  #nextSeq(): number {
    this.#seq = (this.#seq + 1) >>> 0;
    return this.#seq;
  }

  // ---------------------------------------------------------------- periodic work

  #probeTick(): void {
    if (!this.#running) return;
    const interval = this.config.probeInterval;
    const since = this.#epoch() - this.#probePhase;
    // Our ticks stay on our phase (a late timer does not push the next one later), so each round
    // of the shared probe schedule gets one probe from us. Lifeguard: a degraded member (high
    // health score) probes less often.
    let late = mod(since, interval);
    if (late > interval / 2) late -= interval; // fired a hair early
    this.#timers.probe = this.#clock.setTimer(this.#awareness.scale(interval) - late, () => this.#probeTick());
    if (this.#leaving) return;
    const round = Math.round(since / interval);
    const target = this.#table.probeTarget(this.name, round, (s) => (s.state === ALIVE || s.state === SUSPECT) && this.#reach(s));
    if (target) this.#probeNode(target);
  }

  /** Milliseconds on the time base all members share (probe rounds are counted on it). */
  #epoch(): number {
    return this.#clock.epoch?.() ?? this.#clock.now();
  }

  #probeNode(node: NodeState): void {
    this.#s.probes++;
    const seq = this.#nextSeq();
    const interval = this.#awareness.scale(this.config.probeInterval);
    const timeout = this.#awareness.scale(this.config.probeTimeout);
    let done = false;
    let nacks = 0;
    let expectedNacks = 0;
    let indirectTimer: TimerHandle | null = null;
    const finish = (ok: boolean, refused = false): void => {
      if (done) return;
      done = true;
      const h = this.#acks.get(seq);
      if (h) this.#clock.clearTimer(h.timer);
      this.#acks.delete(seq);
      if (indirectTimer) this.#clock.clearTimer(indirectTimer);
      if (ok) {
        this.#awareness.applyDelta(-1);
        return;
      }
      this.#s.probeFailures++;
      // Missing nacks mean *we* may be the problem (Lifeguard): raise our own health score. The
      // helpers were asked one probe timeout into the round and nack one probe timeout later, so
      // their nacks land right around now: keep counting for half a timeout before judging, or
      // every failed probe of a dead member would wrongly count as our own ill health (and
      // stretch our probe interval just when confirmations are needed).
      // A refused connection is an answer from the target's host: our own network works.
      if (refused) {
        this.#s.probesRefused++;
      } else if (expectedNacks > 0 && this.#running) {
        this.#acks.set(seq, {
          ack: () => undefined,
          nack: () => { nacks++; },
          timer: this.#clock.setTimer(timeout / 2, () => {
            this.#acks.delete(seq);
            this.#awareness.applyDelta(Math.max(0, expectedNacks - nacks));
          }),
        });
      } else {
        this.#awareness.applyDelta(1);
      }
      if (!this.#running) return;
      const cur = this.#table.get(node.name);
      if (cur && (cur.state === ALIVE || cur.state === SUSPECT)) {
        this.#suspectNode({ type: 'suspect', incarnation: cur.incarnation, node: cur.name, from: this.name });
        this.#gossipRound();
      }
    };
    const sentAt = this.#clock.now();
    const ack = (m: AckMsg): void => {
      // Only a direct ack carries the target's coordinate (an indirect one is relayed without it).
      if (m.coord && !done) this.#onPingComplete(node.name, m.coord, this.#clock.now() - sentAt);
      finish(true);
    };
    this.#acks.set(seq, { ack, nack: () => { nacks++; }, timer: this.#clock.setTimer(interval, () => finish(false)) });

    const ping: PingMsg = { type: 'ping', seq, target: node.name, sourceName: this.name, sourceAddr: this.#addr };
    if (node.state === SUSPECT) {
      // Buddy system: tell a suspect it is suspected, so it can refute right away.
      const parts = [encode(ping), encode({ type: 'suspect', incarnation: node.incarnation, node: node.name, from: this.name })];
      this.#rawSend(node.addr, encodeCompound(parts));
    } else {
      this.#sendMsg(node.addr, ping);
    }

    indirectTimer = this.#clock.setTimer(timeout, () => {
      indirectTimer = null;
      if (done || !this.#running) return;
      const peers = this.#table.randomMembers(this.config.indirectChecks, (s) => s.state === ALIVE && s.name !== this.name && s.name !== node.name && this.#reach(s) && this.#reach(node, s));
      for (const p of peers) {
        expectedNacks++;
        this.#sendMsg(p.addr, { type: 'indirectPing', seq, target: node.name, targetAddr: node.addr, nack: true, sourceName: this.name, sourceAddr: this.#addr });
      }
      if (this.config.tcpFallbackProbe) {
        this.#s.tcpFallbacks++;
        const req = this.#wrap(encode(ping));
        this.#transport.request(node.addr, req, Math.max(1, interval - timeout), (err, resp) => {
          if (done) return;
          // Nothing listens on the member's port although its host answered: its process is gone
          // (a crash, kill -9). Suspect now instead of waiting out the probe interval; a host that
          // is down does not answer at all and takes the normal path. Suspicion stays refutable.
          if (err instanceof ConnectionRefusedError) return finish(false, true);
          if (err || !resp) return;
          const plain = this.#unwrap(resp);
          if (!plain) return;
          try {
            const [m] = decode(plain);
            if (m?.type === 'ack' && m.seq === seq) {
              this.#log.warn({ member: node.name }, 'member reachable over TCP but not UDP: check firewall/network');
              finish(true);
            }
          } catch (e) {
            if (!(e instanceof DecodeError)) throw e;
            this.#s.decodeErrors++;
          }
        });
      }
    });
  }

  #gossipTick(): void {
    if (!this.#running) return;
    this.#timers.gossip = this.#clock.setTimer(this.config.gossipInterval, () => this.#gossipTick());
    this.#gossipRound();
  }

  /**
   * Queued broadcasts to gossipNodes random members. Also run at once for news we originate (our
   * suspicion, our declaration of a death, our refutation) instead of waiting up to one
   * gossipInterval for the tick: the transmit budget per broadcast is the same, the first hop sooner.
   */
  #gossipRound(): void {
    if (!this.#running) return;
    if (this.#broadcasts.length === 0 && this.#userBroadcasts.length === 0 && this.#coordBroadcasts.length === 0) return;
    const now = this.#clock.now();
    const targets = this.#table.randomMembers(this.config.gossipNodes, (s) => {
      if (s.name === this.name || !this.#reach(s)) return false;
      if (s.state === ALIVE || s.state === SUSPECT) return true;
      // Keep telling recently dead members, so a falsely-declared one learns and refutes.
      return s.state === DEAD && now - s.stateChange <= this.config.gossipToTheDeadTime;
    });
    const room = this.#packetRoom() - COMPOUND_HEADER_OVERHEAD;
    for (const t of targets) {
      const parts = this.#piggyback(room);
      if (parts.length === 0) return;
      this.#rawSend(t.addr, encodeCompound(parts));
    }
  }

  #pushPullTick(): void {
    if (!this.#running) return;
    const next = pushPullScale(this.config.pushPullInterval, this.#table.liveCount);
    this.#timers.pushPull = this.#clock.setTimer(next, () => this.#pushPullTick());
    if (this.#leaving) return;
    const [peer] = this.#table.randomMembers(1, (s) => s.state === ALIVE && s.name !== this.name && this.#reach(s));
    if (peer) this.#pushPull(peer.addr, false, (err) => {
      if (err) this.#log.debug({ peer: peer.name, err: err.message }, 'push/pull failed');
    });
  }

  #reapTick(): void {
    if (!this.#running) return;
    this.#timers.reap = this.#clock.setTimer(this.config.reapInterval, () => this.#reapTick());
    const now = this.#clock.now();
    const gone: NodeState[] = [];
    for (const s of this.#table.all()) {
      if (s.state === DEAD && now - s.stateChange >= this.config.deadReapTimeout) gone.push(s);
      else if (s.state === LEFT && now - s.stateChange >= this.config.leftReapTimeout) gone.push(s);
    }
    for (const s of gone) {
      this.#table.remove(s.name);
      this.#peerCoords.delete(s.name);
      this.#coords?.forget(s.name);
      this.#emit('reaped', s);
    }
  }

  /**
   * Partition healing (memberlist#222): SWIM never probes dead members again, so after a split
   * longer than the suspicion timeout both halves would stay apart. Periodically push/pull with
   * one random failed member (Serf's reconnect), and retry the seeds when we're alone.
   */
  #reconnectTick(): void {
    if (!this.#running) return;
    this.#timers.reconnect = this.#clock.setTimer(this.config.reconnectInterval, () => this.#reconnectTick());
    if (this.#leaving) return;
    const dead: NodeState[] = [];
    for (const s of this.#table.all()) if (s.state === DEAD && this.#reach(s)) dead.push(s);
    const live = this.#table.liveCount;
    // Serf's rule: probability dead/live keeps cluster-wide reconnect load ~1 per interval.
    if (dead.length > 0 && this.#rand() < Math.min(1, dead.length / Math.max(1, live))) {
      const peer = dead[Math.floor(this.#rand() * dead.length)] as NodeState;
      this.#pushPull(peer.addr, true, () => undefined);
    }
    if (live <= 1) {
      for (const seed of this.#seeds) if (seed !== this.#addr) this.#pushPull(seed, true, () => undefined);
    }
  }
}

