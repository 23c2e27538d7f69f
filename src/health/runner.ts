/**
 * Running rules: one `RuleRunner` per rule owns the check, runs it with a timeout, evaluates the
 * result and feeds the `RuleState` machine (hysteresis + flap detection). `Scheduler` runs every
 * rule on its own interval; rules run concurrently and a rule never overlaps itself.
 *
 * Timeouts: the run is raced against a timer; at the deadline the check's AbortSignal fires
 * (sockets are destroyed, command process groups get SIGKILL) and the cycle is UNKNOWN
 * "timed out after Xs" even if the check ignores the signal. A throwing check is UNKNOWN with
 * the error message.
 *
 * Hysteresis (`RuleState`): a non-OK result must repeat for `forCycles` consecutive cycles
 * before the reported status leaves OK, and OK must repeat `recoverCycles` times before a
 * problem clears. Counters reset on every opposite result (Monit's #1030 was a counter that
 * did not). Before the first decision the status is UNKNOWN "pending"; a first OK is taken at
 * once. Once in a problem state, a different problem (CRITICAL -> UNKNOWN) is taken at once.
 *
 * Flapping (Nagios' algorithm): the last `window` raw results are kept; each change between
 * consecutive results is weighted from 0.8 (oldest) to 1.2 (newest) and the sum is expressed as
 * a percentage of the possible changes. At or above `high` the rule is flapping; below `low` it
 * stops. While flapping, the reported status is the worst result in the window, so a service
 * bouncing between OK and CRITICAL reads CRITICAL instead of alternating and triggering
 * failover back and forth.
 */
import type { Logger } from 'pino';
import { evaluate } from './evaluate.ts';
import type { FlapSettings } from './schema.ts';
import { type Check, type CheckStatus, type Rule, worst } from './types.ts';
import { formatDuration } from './units.ts';

export interface CycleResult {
  raw: CheckStatus;
  rawOutput: string;
  status: CheckStatus;
  output: string;
  flapping: boolean;
  /** The reported status changed in this cycle. */
  changed: boolean;
  previous: CheckStatus;
  at: number;
  durationMs: number;
}

export class TimeoutError extends Error {
  constructor(ms: number) {
    super(`timed out after ${formatDuration(ms)}`);
    this.name = 'TimeoutError';
  }
}

/** Run a check with a deadline. Never rejects. */
export async function runWithTimeout(check: Check, timeoutMs: number, outer?: AbortSignal): Promise<{ status?: CheckStatus; obs?: Awaited<ReturnType<Check['run']>>; error?: string; durationMs: number }> {
  const ac = new AbortController();
  const t0 = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onOuter = (): void => ac.abort(new Error('health monitor stopped'));
  outer?.addEventListener('abort', onOuter, { once: true });
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const e = new TimeoutError(timeoutMs);
      ac.abort(e);
      reject(e);
    }, timeoutMs);
  });
  // Promise.resolve().then: a check that throws synchronously is handled like one that rejects.
  const run = Promise.resolve().then(() => check.run(ac.signal));
  run.catch(() => { /* a late rejection after the deadline is expected */ });
  try {
    const obs = await Promise.race([run, deadline]);
    return { obs, durationMs: performance.now() - t0 };
  } catch (e) {
    const err = e instanceof TimeoutError ? e : ac.signal.reason instanceof TimeoutError ? ac.signal.reason : e;
    const msg = err instanceof TimeoutError ? err.message : `check error: ${err instanceof Error ? err.message : String(err)}`;
    return { status: 'UNKNOWN', error: msg, durationMs: performance.now() - t0 };
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', onOuter);
    if (!ac.signal.aborted) ac.abort(new Error('run finished')); // release listeners the check left behind
  }
}

/** Nagios-style weighted percent state change over a list of results (oldest first). */
export function percentStateChange(history: readonly CheckStatus[], window: number): number {
  if (history.length < 2 || window < 2) return 0;
  const n = window - 1; // possible transitions in a full window
  const offset = window - history.length; // a short history sits at the newest end
  let sum = 0;
  for (let i = 1; i < history.length; i++) {
    if (history[i] !== history[i - 1]) {
      const pos = i + offset - 1; // 0 .. n-1
      sum += n > 1 ? 0.8 + (0.4 * pos) / (n - 1) : 1;
    }
  }
  return (sum / n) * 100;
}

export class RuleState {
  readonly forCycles: number;
  readonly recoverCycles: number;
  readonly flap: FlapSettings;
  /** Status after hysteresis (before flap damping). */
  hard: CheckStatus = 'UNKNOWN';
  decided = false;
  badStreak = 0;
  goodStreak = 0;
  readonly history: CheckStatus[] = [];
  flapping = false;
  reported: CheckStatus = 'UNKNOWN';
  output = 'pending: not checked yet';
  since: number;
  percent = 0;

  constructor(forCycles: number, recoverCycles: number, flap: FlapSettings, now = Date.now()) {
    this.forCycles = forCycles;
    this.recoverCycles = recoverCycles;
    this.flap = flap;
    this.since = now;
  }

  feed(raw: CheckStatus, rawOutput: string, at: number): { status: CheckStatus; output: string; changed: boolean; previous: CheckStatus } {
    this.history.push(raw);
    if (this.history.length > this.flap.window) this.history.shift();
    let note = '';
    if (raw === 'OK') {
      this.goodStreak++;
      this.badStreak = 0;
      if (this.hard !== 'OK') {
        if (!this.decided || this.goodStreak >= this.recoverCycles) { this.hard = 'OK'; this.decided = true; } else note = ` [recovering: OK ${this.goodStreak}/${this.recoverCycles} cycles]`;
      }
    } else {
      this.badStreak++;
      this.goodStreak = 0;
      if (this.hard !== raw) {
        if (this.badStreak >= this.forCycles || (this.decided && this.hard !== 'OK')) { this.hard = raw; this.decided = true; } else note = ` [${raw} ${this.badStreak}/${this.forCycles} cycles]`;
      }
    }
    this.percent = percentStateChange(this.history, this.flap.window);
    if (!this.flapping && this.percent >= this.flap.high) this.flapping = true;
    else if (this.flapping && this.percent < this.flap.low) this.flapping = false;
    const previous = this.reported;
    const status = this.flapping ? worst(this.history) : this.hard;
    this.reported = status;
    this.output = rawOutput + note + (this.flapping ? ` [flapping: ${Math.round(this.percent)}% state change, holding ${status}]` : '');
    if (!this.decided && raw !== 'OK') this.output = `pending: ${this.output}`;
    const changed = status !== previous;
    if (changed) this.since = at;
    return { status, output: this.output, changed, previous };
  }
}

export class RuleRunner {
  readonly rule: Rule;
  readonly check: Check;
  readonly state: RuleState;
  readonly timeoutMs: number;
  running: Promise<CycleResult> | undefined;

  constructor(rule: Rule, check: Check, flap: FlapSettings, defaultTimeoutMs = 10_000) {
    this.rule = rule;
    this.check = check;
    this.timeoutMs = rule.timeoutMs ?? defaultTimeoutMs;
    this.state = new RuleState(rule.forCycles, rule.recoverCycles, flap);
  }

  /** One cycle: run, evaluate, feed the state machine. Concurrent calls share the run in progress. */
  cycle(outer?: AbortSignal): Promise<CycleResult> {
    this.running ??= this.#cycle(outer).finally(() => { this.running = undefined; });
    return this.running;
  }

  async #cycle(outer?: AbortSignal): Promise<CycleResult> {
    const r = await runWithTimeout(this.check, this.timeoutMs, outer);
    let raw: CheckStatus;
    let rawOutput: string;
    if (r.obs) {
      try {
        ({ status: raw, output: rawOutput } = evaluate(this.rule, r.obs));
      } catch (e) {
        raw = 'UNKNOWN';
        rawOutput = `evaluation error: ${(e as Error).message}`;
      }
    } else {
      raw = 'UNKNOWN';
      rawOutput = r.error ?? 'no result';
    }
    const at = Date.now();
    const s = this.state.feed(raw, rawOutput, at);
    return { raw, rawOutput, status: s.status, output: s.output, flapping: this.state.flapping, changed: s.changed, previous: s.previous, at, durationMs: r.durationMs };
  }
}

/**
 * Timers for a set of runners: each runs once at start, then `everyMs` after its previous run
 * finished (so a slow check cannot pile up runs). Timers are unref'd: health checks alone do
 * not keep the process alive.
 */
export class Scheduler {
  readonly #runners: RuleRunner[];
  readonly #onResult: (r: RuleRunner, res: CycleResult) => void;
  readonly #intervalMs: number;
  readonly #timers = new Map<RuleRunner, ReturnType<typeof setTimeout>>();
  #ac: AbortController | undefined;
  readonly log: Logger | undefined;

  constructor(runners: RuleRunner[], intervalMs: number, onResult: (r: RuleRunner, res: CycleResult) => void, log?: Logger) {
    this.#runners = runners;
    this.#intervalMs = intervalMs;
    this.#onResult = onResult;
    this.log = log;
  }

  get started(): boolean {
    return this.#ac !== undefined;
  }

  start(): void {
    if (this.#ac) return;
    const ac = new AbortController();
    this.#ac = ac;
    for (const r of this.#runners) this.#schedule(r, 0, ac);
  }

  #schedule(r: RuleRunner, delay: number, ac: AbortController): void {
    const t = setTimeout(() => {
      this.#timers.delete(r);
      r.cycle(ac.signal).then((res) => {
        if (ac.signal.aborted) return;
        this.#onResult(r, res);
        this.#schedule(r, r.rule.everyMs ?? this.#intervalMs, ac);
      }, (e: unknown) => {
        // cycle() never rejects; this is a bug guard that keeps the rule scheduled.
        this.log?.error({ err: e, rule: r.rule.name }, 'health cycle failed');
        if (!ac.signal.aborted) this.#schedule(r, r.rule.everyMs ?? this.#intervalMs, ac);
      });
    }, delay);
    t.unref();
    this.#timers.set(r, t);
  }

  /** Stop timers, abort runs in progress and wait for them to settle. */
  async stop(): Promise<void> {
    const ac = this.#ac;
    if (!ac) return;
    this.#ac = undefined;
    ac.abort(new Error('health monitor stopped'));
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    await Promise.allSettled(this.#runners.map((r) => r.running));
  }
}
