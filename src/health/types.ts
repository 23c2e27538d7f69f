/**
 * Shared types of the health component: statuses, the parsed `Rule`, what a check observes, and
 * the history sink interface. No runtime code except the status ordering helpers.
 */

export type Status = 'OK' | 'WARNING' | 'CRITICAL' | 'UNKNOWN' | 'MAINTENANCE';
export type CheckStatus = Exclude<Status, 'MAINTENANCE'>;

/**
 * Severity order used for "worst of": OK < WARNING < UNKNOWN < CRITICAL (Icinga's ranking).
 * UNKNOWN ranks above WARNING because a check that cannot tell is not evidence of health, and
 * failover must not prefer such a node; it stays below CRITICAL, which is a confirmed failure.
 */
const RANK: Record<CheckStatus, number> = { OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3 };

export function worse(a: CheckStatus, b: CheckStatus): CheckStatus {
  return RANK[a] >= RANK[b] ? a : b;
}

export function worst(statuses: Iterable<CheckStatus>): CheckStatus {
  let w: CheckStatus = 'OK';
  for (const s of statuses) w = worse(w, s);
  return w;
}

/** Nagios plugin exit codes (and the numeric value exported to Prometheus). MAINTENANCE = 4. */
export const STATUS_CODE: Record<Status, number> = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3, MAINTENANCE: 4 };

export type CheckKind =
  | 'disk' | 'load' | 'cpu' | 'memory' | 'swap' | 'process' | 'tcp' | 'http' | 'dns' | 'file'
  | 'postgres' | 'mysql' | 'command';

export type CompareOp = '>' | '>=' | '<' | '<=' | '==' | '!=';
export type MatchOp = '~' | '!~';

/** How a threshold value is written and normalised. */
export type UnitKind = 'percent' | 'number' | 'integer' | 'duration' | 'size';

export type Condition =
  /** metric OP value; value normalised (durations in ms, sizes in bytes, percents 0..100). */
  | { type: 'compare'; metric: string; op: CompareOp; value: number; unit: UnitKind; text: string }
  /** metric ~ "regex" / metric !~ "regex" (http body). */
  | { type: 'match'; metric: string; op: MatchOp; pattern: string }
  /** A boolean metric such as `fails` or `missing`. */
  | { type: 'flag'; metric: string }
  /** Command checks only: the plugin's exit code is the status (Nagios convention). */
  | { type: 'nagios' };

export type Action = 'warning' | 'critical' | 'nagios';

/** Per-kind parameters (what to look at). All strings/numbers already validated. */
export type RuleParams =
  | { kind: 'disk'; path: string }
  | { kind: 'load' }
  | { kind: 'cpu' }
  | { kind: 'memory' }
  | { kind: 'swap' }
  | { kind: 'process'; name?: string; pidfile?: string; match?: string }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'http'; url: string; method: string }
  | { kind: 'dns'; name: string; server: string; port: number; type: string }
  | { kind: 'file'; path: string }
  | { kind: 'postgres'; host: string; port: number; user: string; database: string }
  | { kind: 'mysql'; host: string; port: number }
  | { kind: 'command'; command: string };

export interface Rule {
  name: string;
  kind: CheckKind;
  params: RuleParams;
  condition: Condition;
  then: Action;
  /** Consecutive non-OK cycles before the status changes ("for N cycles"); >= 1. */
  forCycles: number;
  /** Consecutive OK cycles before a problem clears ("recover after M cycles"); >= 1. */
  recoverCycles: number;
  /** Milliseconds between runs; undefined = the section's interval. */
  everyMs?: number;
  /** Milliseconds before the run is aborted and reported UNKNOWN; undefined = default. */
  timeoutMs?: number;
  /** The rule as the administrator wrote it (text form) or a rendering of the YAML form. */
  source: string;
}

/** What one check run measured. `failed` = the target could not be reached or did not answer. */
export interface Observation {
  values: Record<string, number | string | boolean>;
  /** Human-readable one-liner ("/ 93.1% used (inodes 4.0%)"). */
  output: string;
  failed?: string;
  /** Nagios plugins: status from the exit code, perfdata. */
  nagios?: { status: CheckStatus; perfdata: PerfData[]; longOutput: string };
}

export interface PerfData {
  label: string;
  value: number;
  uom: string;
  warn?: string;
  crit?: string;
  min?: number;
  max?: number;
}

/** One check implementation bound to a rule's params. `run` must honour `signal`. */
export interface Check {
  run(signal: AbortSignal): Promise<Observation>;
}

/** One evaluated cycle, as handed to a HistorySink. */
export interface HistoryEntry {
  node: string;
  check: string;
  at: number; // ms since epoch
  /** What this cycle alone said. */
  raw: CheckStatus;
  /** What is reported after hysteresis and flap damping. */
  status: CheckStatus;
  output: string;
  flapping: boolean;
  durationMs: number;
}

/** Where cycle results go (the local SQLite store implements it). Must not throw or block. */
export interface HistorySink {
  record(entry: HistoryEntry): void;
}
