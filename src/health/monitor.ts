/**
 * HealthMonitor: the node's health as one object. Runs the node's rules (see runner.ts), keeps
 * each rule's reported status, computes the node summary (worst rule status; MAINTENANCE
 * overrides while set), publishes 'health.changed' on the event bus when a rule's status or the
 * summary changes, and hands every cycle to an optional HistorySink.
 */
import type { EventBus } from '../events/bus.ts';
import type { Logger } from '../log/logger.ts';
import { createCheck } from './checks/index.ts';
import { type CycleResult, RuleRunner, Scheduler } from './runner.ts';
import type { FlapSettings } from './schema.ts';
import { type Check, type CheckStatus, type HistorySink, type Rule, type Status, worst } from './types.ts';

export interface CheckSummary {
  name: string;
  status: CheckStatus;
  output: string;
  /** ms since epoch of the last change of `status`. */
  since: number;
  flapping: boolean;
}

export interface HealthSummary {
  node: string;
  status: Status;
  maintenance?: { reason: string; since: number };
  checks: CheckSummary[];
}

export interface HealthMonitorOptions {
  node: string;
  /** The node's rules, e.g. from `rulesForNode`. Names must be unique. */
  rules: Rule[];
  bus?: EventBus;
  logger?: Logger;
  history?: HistorySink;
  /** Interval for rules without `everyMs` (default 10s). */
  intervalMs?: number;
  /** Timeout for rules without `timeoutMs` (default min(interval, 10s)). */
  timeoutMs?: number;
  flap?: FlapSettings;
  /** Replace how checks are built (e.g. to share one CpuCheck); default `createCheck`. */
  createCheck?: (rule: Rule) => Check;
}

export class HealthMonitor {
  readonly node: string;
  readonly #runners: RuleRunner[];
  readonly #byName = new Map<string, RuleRunner>();
  readonly #bus: EventBus | undefined;
  readonly #log: Logger | undefined;
  readonly #history: HistorySink | undefined;
  readonly #scheduler: Scheduler;
  #maintenance: { reason: string; since: number } | undefined;
  #lastStatus: Status;

  constructor(opts: HealthMonitorOptions) {
    this.node = opts.node;
    this.#bus = opts.bus;
    this.#log = opts.logger;
    this.#history = opts.history;
    const interval = opts.intervalMs ?? 10_000;
    const flap = opts.flap ?? { window: 20, high: 50, low: 25 };
    const make = opts.createCheck ?? createCheck;
    this.#runners = opts.rules.map((r) => {
      if (this.#byName.has(r.name)) throw new Error(`duplicate rule name ${JSON.stringify(r.name)}`);
      const runner = new RuleRunner(r, make(r), flap, opts.timeoutMs ?? Math.min(r.everyMs ?? interval, 10_000));
      this.#byName.set(r.name, runner);
      return runner;
    });
    this.#scheduler = new Scheduler(this.#runners, interval, (r, res) => this.#apply(r, res), opts.logger);
    this.#lastStatus = this.#computeStatus();
  }

  start(): void {
    this.#scheduler.start();
  }

  /** Stops timers and aborts checks in progress (their processes are killed). */
  stop(): Promise<void> {
    return this.#scheduler.stop();
  }

  /**
   * Run one cycle of the named rules (default: all) now, concurrently, and apply the results.
   * Used by tests and by "check now" requests; shares a run already in progress.
   */
  async runCycle(names?: string[]): Promise<Map<string, CycleResult>> {
    const runners = names ? names.map((n) => {
      const r = this.#byName.get(n);
      if (!r) throw new Error(`unknown rule ${JSON.stringify(n)}; known: ${[...this.#byName.keys()].join(', ')}`);
      return r;
    }) : this.#runners;
    const results = await Promise.all(runners.map(async (r) => [r, await r.cycle()] as const));
    const out = new Map<string, CycleResult>();
    for (const [r, res] of results) {
      // A cycle shared with the scheduler is applied once: by whoever started it.
      this.#apply(r, res);
      out.set(r.rule.name, res);
    }
    return out;
  }

  setMaintenance(on: boolean, reason = ''): void {
    if (on) this.#maintenance = { reason: reason || 'maintenance', since: Date.now() };
    else this.#maintenance = undefined;
    this.#log?.info({ node: this.node, on, reason }, 'health maintenance mode');
    this.#publishSummary();
  }

  summary(): HealthSummary {
    const s: HealthSummary = {
      node: this.node,
      status: this.#computeStatus(),
      checks: this.#runners.map((r) => ({ name: r.rule.name, status: r.state.reported, output: r.state.output, since: r.state.since, flapping: r.state.flapping })),
    };
    if (this.#maintenance) s.maintenance = { ...this.#maintenance };
    return s;
  }

  /** The rules being run (after exceptions). */
  rules(): Rule[] {
    return this.#runners.map((r) => r.rule);
  }

  #computeStatus(): Status {
    if (this.#maintenance) return 'MAINTENANCE';
    return worst(this.#runners.map((r) => r.state.reported));
  }

  readonly #applied = new WeakSet<CycleResult>();

  #apply(r: RuleRunner, res: CycleResult): void {
    if (this.#applied.has(res)) return;
    this.#applied.add(res);
    try {
      this.#history?.record({ node: this.node, check: r.rule.name, at: res.at, raw: res.raw, status: res.status, output: res.output, flapping: res.flapping, durationMs: res.durationMs });
    } catch (e) {
      this.#log?.warn({ err: e, rule: r.rule.name }, 'health history sink failed');
    }
    if (res.changed) {
      this.#log?.info({ node: this.node, check: r.rule.name, status: res.status, previous: res.previous, output: res.output }, 'health check status changed');
      this.#bus?.publish('health.changed', { node: this.node, status: res.status, previous: res.previous, check: r.rule.name });
    }
    this.#publishSummary();
  }

  #publishSummary(): void {
    const status = this.#computeStatus();
    if (status === this.#lastStatus) return;
    const previous = this.#lastStatus;
    this.#lastStatus = status;
    this.#log?.info({ node: this.node, status, previous }, 'node health changed');
    this.#bus?.publish('health.changed', { node: this.node, status, previous });
  }
}
