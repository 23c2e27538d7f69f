/**
 * The configuration contract every component codes against. The loader (load.ts) turns a YAML
 * file into a `Config`; effective.ts aggregates the pools a node belongs to into an
 * `EffectiveConfig` whose every leaf value remembers where it came from.
 */

/** One problem found in a config file: where it is (file:line:col and the dotted config path) and what is wrong. */
export interface ConfigProblem {
  file: string;
  line: number; // 1-based; 0 when unknown
  column: number; // 1-based; 0 when unknown
  path: string; // e.g. "pools[1].members[0]" or "node.bind"
  message: string;
  /** 'warning' for a problem that does not stop the config from loading; absent means error. */
  severity?: 'error' | 'warning';
}

/**
 * What loading a config file gives. On failure `problems` holds every error and every warning
 * (each warning has `severity: 'warning'`), sorted by position.
 */
export type LoadResult =
  | { ok: true; config: Config; warnings: ConfigProblem[] }
  | { ok: false; problems: ConfigProblem[] };

export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface NodeConfig {
  name: string;
  /** Address the agent's listeners bind to (RPC over mTLS, gossip). */
  bind: string;
  /** Address other agents use to reach this one; defaults to `bind`. */
  advertise: string;
  rpcPort: number;
  gossipPort: number;
  network: string;
  dataDir: string;
  tls: TlsFiles;
  /** File with the gossip keyring (see `multiall keygen`); undefined = gossip disabled until set. */
  gossipKeyring?: string;
}

export type TokenRole = 'read' | 'operator';

export interface ApiToken {
  name: string;
  role: TokenRole;
  /** sha256 hex of the bearer secret; the secret itself is never stored in config. */
  sha256: string;
}

export interface ApiConfig {
  /** Unix socket path (mode 0600); defaults to `<dataDir>/api.sock`. */
  socket: string;
  /** Optional TCP listener "host:port" that requires bearer tokens. */
  tcp?: { host: string; port: number };
  tokens: ApiToken[];
}

export interface LogConfig {
  level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  format: 'auto' | 'json' | 'pretty';
}

/** Gossip (membership) timing: a profile plus overrides, all durations in ms. See docs/membership.md. */
export interface GossipConfig {
  profile: 'lan' | 'wan' | 'local';
  probeInterval?: number;
  probeTimeout?: number;
  gossipInterval?: number;
  suspicionMult?: number;
  pushPullInterval?: number;
  reconnectInterval?: number;
  deadReapTimeout?: number;
  leftReapTimeout?: number;
}

export interface NetworkDef {
  name: string;
  /** Relay members ("Princess Bee Hosts") carrying traffic from other networks. */
  relays: string[];
  /** Other networks whose members this network's members talk to directly (no relay). */
  direct?: string[];
}

/** Per-component settings: one key per component, each component owns its sub-schema. */
export type ComponentSettings = Record<string, unknown>;

export interface PoolDef {
  name: string;
  members: string[];
  settings: ComponentSettings;
}

export interface NodeOverride {
  /** Settings that replace what the pools say for this node. */
  settings: ComponentSettings;
}

export interface Config {
  /** Absolute path of the file this came from. */
  file: string;
  node: NodeConfig;
  api: ApiConfig;
  log: LogConfig;
  /** Seed addresses ("host:port") to join. */
  join: string[];
  gossip: GossipConfig;
  /** Ed25519 public keys (PEM files) whose signed pool documents this node accepts. */
  adminKeys: string[];
  networks: NetworkDef[];
  pools: PoolDef[];
  overrides: Record<string, NodeOverride>;
}

/** Where one effective value came from. */
export type ValueSource = { kind: 'pool'; pool: string } | { kind: 'override'; node: string };

export interface EffectiveValue {
  path: string; // dotted, e.g. "health.interval"
  value: unknown;
  source: ValueSource;
}

export interface SettingConflict {
  path: string;
  values: { value: unknown; source: ValueSource }[];
}

export interface EffectiveConfig {
  node: string;
  pools: string[];
  /** Aggregated settings as a plain object (what components read). */
  settings: ComponentSettings;
  /** Every leaf with its source, sorted by path. */
  values: EffectiveValue[];
  /** Same path set differently by two pools and not settled by an override. */
  conflicts: SettingConflict[];
}
