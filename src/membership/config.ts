/**
 * Membership tunables and the log-scaled formulas that make them grow with cluster size.
 * Profiles copy hashicorp/memberlist's DefaultLANConfig / DefaultWANConfig / DefaultLocalConfig
 * (config.go @1b4c746) plus Serf-style reap/reconnect timers that memberlist itself lacks.
 * All durations are milliseconds.
 */

export interface MembershipConfig {
  /** Period of one failure-detection round (one member probed per round). LAN 1 s. */
  probeInterval: number;
  /** How long to wait for a direct ack before asking others (indirect probe). LAN 500 ms. */
  probeTimeout: number;
  /** Members asked to probe on our behalf when the direct probe fails. LAN 3. */
  indirectChecks: number;
  /** Also try a reliable (TCP) ping when UDP fails, to tell packet loss from death. */
  tcpFallbackProbe: boolean;
  /** Period of piggy-back gossip of queued broadcasts. LAN 200 ms. */
  gossipInterval: number;
  /** Random members each gossip round goes to (the fan-out). LAN 3. */
  gossipNodes: number;
  /** Dead members still receive gossip for this long, so they can learn and refute. LAN 30 s. */
  gossipToTheDeadTime: number;
  /** Full state exchange with one random member; scaled up above 32 members. LAN 30 s. */
  pushPullInterval: number;
  /** Suspicion timeout multiplier (min timeout = mult·max(1,log10 N)·probeInterval). LAN 4. */
  suspicionMult: number;
  /** Max suspicion timeout = this × min timeout (Lifeguard). 6. */
  suspicionMaxTimeoutMult: number;
  /** Broadcast retransmits = mult·ceil(log10(N+1)). LAN 4. */
  retransmitMult: number;
  /** Local health (Lifeguard awareness) max multiplier; score ranges 0..max-1. 8. */
  awarenessMaxMultiplier: number;
  /** Max UDP payload incl. encryption overhead; compound messages are cut to fit. 1400. */
  udpBufferSize: number;
  /** Max encoded size of a member's metadata (memberlist: 512; we allow 2 KiB). */
  metaMaxSize: number;
  /** Timeout of one reliable (TCP) request: push/pull, join, fallback ping. LAN 10 s. */
  tcpTimeout: number;
  /** How often dead/left members are checked for reaping. Serf: 15 s. */
  reapInterval: number;
  /** Failed members are forgotten after this long. Serf ReconnectTimeout: 24 h. */
  deadReapTimeout: number;
  /** Members that left gracefully are forgotten after this long. Serf TombstoneTimeout: 24 h. */
  leftReapTimeout: number;
  /**
   * Every reconnectInterval one random failed member (and, when we are alone, the seeds) is
   * contacted with a push/pull: heals partitions longer than the suspicion timeout
   * (memberlist#222, serf#605). Serf: 30 s. 0 disables.
   */
  reconnectInterval: number;
  /** A dead member may come back with a new address only after this long. LAN 0 (memberlist). */
  deadNodeReclaimTime: number;
  /** Join: attempts per seed before giving up, and backoff between attempts. */
  joinRetries: number;
  joinRetryBackoff: number;
  /** Label mixed into encryption (AEAD associated data): keeps separate clusters apart. */
  label: string;
  /** Max queued broadcasts; oldest-most-transmitted are dropped first beyond this. */
  maxBroadcastQueue: number;
}

const SECOND = 1000;
const HOUR = 3600 * SECOND;

/** memberlist DefaultLANConfig: a single datacenter. */
export function lanConfig(): MembershipConfig {
  return {
    probeInterval: 1 * SECOND,
    probeTimeout: 500,
    indirectChecks: 3,
    tcpFallbackProbe: true,
    gossipInterval: 200,
    gossipNodes: 3,
    gossipToTheDeadTime: 30 * SECOND,
    pushPullInterval: 30 * SECOND,
    suspicionMult: 4,
    suspicionMaxTimeoutMult: 6,
    retransmitMult: 4,
    awarenessMaxMultiplier: 8,
    udpBufferSize: 1400,
    metaMaxSize: 2048,
    tcpTimeout: 10 * SECOND,
    reapInterval: 15 * SECOND,
    deadReapTimeout: 24 * HOUR,
    leftReapTimeout: 24 * HOUR,
    reconnectInterval: 30 * SECOND,
    deadNodeReclaimTime: 0,
    joinRetries: 3,
    joinRetryBackoff: 1 * SECOND,
    label: '',
    maxBroadcastQueue: 8192,
  };
}

/** memberlist DefaultWANConfig: higher latency and loss. */
export function wanConfig(): MembershipConfig {
  return {
    ...lanConfig(),
    tcpTimeout: 30 * SECOND,
    suspicionMult: 6,
    pushPullInterval: 60 * SECOND,
    probeTimeout: 3 * SECOND,
    probeInterval: 5 * SECOND,
    gossipNodes: 4,
    gossipInterval: 500,
    gossipToTheDeadTime: 60 * SECOND,
  };
}

/** memberlist DefaultLocalConfig: loopback / one host. */
export function localConfig(): MembershipConfig {
  return {
    ...lanConfig(),
    tcpTimeout: 1 * SECOND,
    indirectChecks: 1,
    retransmitMult: 2,
    suspicionMult: 3,
    pushPullInterval: 15 * SECOND,
    probeTimeout: 200,
    probeInterval: 1 * SECOND,
    gossipInterval: 100,
    gossipToTheDeadTime: 15 * SECOND,
  };
}

export type ConfigProfile = 'lan' | 'wan' | 'local';

export function profileConfig(profile: ConfigProfile): MembershipConfig {
  switch (profile) {
    case 'lan': return lanConfig();
    case 'wan': return wanConfig();
    case 'local': return localConfig();
  }
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Reject nonsense early with the offending field named. */
export function validateConfig(c: MembershipConfig): MembershipConfig {
  const positive: (keyof MembershipConfig)[] = [
    'probeInterval', 'probeTimeout', 'gossipInterval', 'suspicionMult', 'suspicionMaxTimeoutMult',
    'retransmitMult', 'awarenessMaxMultiplier', 'udpBufferSize', 'metaMaxSize', 'tcpTimeout',
    'reapInterval', 'joinRetries', 'maxBroadcastQueue',
  ];
  for (const k of positive) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new ConfigError(`membership config: ${k} must be a positive number, got ${String(v)}`);
    }
  }
  const nonNeg: (keyof MembershipConfig)[] = [
    'indirectChecks', 'gossipNodes', 'gossipToTheDeadTime', 'pushPullInterval', 'deadReapTimeout',
    'leftReapTimeout', 'reconnectInterval', 'deadNodeReclaimTime', 'joinRetryBackoff',
  ];
  for (const k of nonNeg) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new ConfigError(`membership config: ${k} must be a number >= 0, got ${String(v)}`);
    }
  }
  if (c.probeTimeout > c.probeInterval) {
    throw new ConfigError(`membership config: probeTimeout (${c.probeTimeout}) must not exceed probeInterval (${c.probeInterval})`);
  }
  if (c.udpBufferSize < 256 || c.udpBufferSize > 65000) {
    throw new ConfigError(`membership config: udpBufferSize must be within 256..65000, got ${c.udpBufferSize}`);
  }
  return c;
}

/** Lifeguard/memberlist suspicionTimeout: min = mult·max(1, log10 N)·interval (ms, rounded). */
export function suspicionTimeout(suspicionMult: number, n: number, interval: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)));
  return Math.floor(suspicionMult * nodeScale * interval);
}

/** memberlist retransmitLimit: mult·ceil(log10(N+1)). */
export function retransmitLimit(retransmitMult: number, n: number): number {
  return retransmitMult * Math.ceil(Math.log10(n + 1));
}

/** memberlist pushPullScale: interval × (ceil(log2 N − 5) + 1) once N > 32, so load stays flat. */
export function pushPullScale(interval: number, n: number): number {
  if (n <= 32) return interval;
  const mult = Math.ceil(Math.log2(n) - Math.log2(32)) + 1;
  return mult * interval;
}
