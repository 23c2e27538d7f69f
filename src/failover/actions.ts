/**
 * Transition actions: one serial queue per service. A transition's actions run one after the
 * other in configured order, and transitions run in the order they were queued (never
 * concurrently: keepalived#996 and Patroni#2445 show what unordered hooks do to a cluster).
 *
 * Per action: %VAR% expansion (vars.ts), timeout (the process group is killed), extra env, output
 * captured (bounded) into the log and the history sink, and the failure policy:
 *   abort    (default) stop this transition's remaining actions; the transition failed
 *   continue log and go on with the next action
 *   retry    run again up to `retries` more times, then behave like abort
 * Master-only transitions (standby_to_master) carry a guard, checked immediately before each
 * action (and each retry): once the lease is no longer valid nothing more runs as master.
 *
 * Public interface: ActionsRunner, ActionExecutor, processExecutor, TransitionResult,
 * ActionRecord, ActionOutcome, actionLabel.
 * Depends on: ./exec.ts, ./floating-ip.ts, ./vars.ts, ./types.ts, pino Logger (type).
 */
import type { Logger } from 'pino';
import { runCommand } from './exec.ts';
import { floatingIp } from './floating-ip.ts';
import { expandTemplate, varsEnv, type Vars } from './vars.ts';
import type { Action, CommandAction, FailoverEventSink, HistorySink, Transition } from './types.ts';

export interface ActionOutcome {
  ok: boolean;
  detail: string;
  exitCode?: number | null;
  timedOut?: boolean;
  stdout?: string;
  stderr?: string;
}

/** Runs the two kinds of action. The default runs real processes. */
export interface ActionExecutor {
  command(action: CommandAction, command: string, env: Record<string, string>): Promise<ActionOutcome>;
  floatingIp(op: 'add' | 'del', address: string, iface: string): Promise<ActionOutcome>;
}

/** Real processes; `prefix` runs every command under e.g. `ip netns exec NS`. */
export function processExecutor(prefix: readonly string[] = []): ActionExecutor {
  return {
    async command(action, command, env) {
      const r = await runCommand(command, { timeoutMs: action.timeoutMs, env, prefix });
      const how = r.error !== undefined ? `could not start: ${r.error}`
        : r.timedOut ? `timed out after ${action.timeoutMs}ms, process group killed`
          : r.signal !== null ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
      return {
        ok: r.ok, detail: how, exitCode: r.exitCode, timedOut: r.timedOut,
        stdout: r.truncated > 0 ? `${r.stdout}\n[… ${r.truncated} bytes dropped]` : r.stdout, stderr: r.stderr,
      };
    },
    async floatingIp(op, address, iface) {
      const r = await floatingIp(op, address, iface, prefix);
      return { ok: r.ok, detail: r.detail };
    },
  };
}

export interface ActionRecord {
  index: number;
  label: string;
  ok: boolean;
  attempts: number;
  detail: string;
}

export interface TransitionResult {
  transition: Transition;
  ok: boolean;
  /** Why the remaining actions were not run (abort policy, guard), if they were not. */
  stopped: string | null;
  actions: ActionRecord[];
}

export function actionLabel(a: Action): string {
  return a.kind === 'run' ? a.run : `floating_ip ${a.address} dev ${a.interface}`;
}

export interface ActionsRunnerOptions {
  pool: string;
  service: string;
  node: string;
  actions: Record<Transition, Action[]>;
  logger: Logger;
  history?: HistorySink;
  events?: FailoverEventSink;
  executor?: ActionExecutor;
}

export class ActionsRunner {
  readonly #o: ActionsRunnerOptions;
  readonly #exec: ActionExecutor;
  #tail: Promise<unknown> = Promise.resolve();
  #pending = 0;

  constructor(opts: ActionsRunnerOptions) {
    this.#o = opts;
    this.#exec = opts.executor ?? processExecutor();
  }

  /** Transitions queued or running. */
  get pending(): number {
    return this.#pending;
  }

  /** Queue a transition; resolves when its actions have run. Never rejects. */
  enqueue(transition: Transition, vars: Vars, guard?: () => boolean): Promise<TransitionResult> {
    this.#pending++;
    const run = this.#tail.then(() => this.#run(transition, vars, guard)).catch((e: unknown): TransitionResult => {
      // Only a bug gets here (executors report failures as outcomes); keep the queue alive.
      this.#o.logger.error({ err: e, transition }, 'failover action runner error');
      return { transition, ok: false, stopped: `internal error: ${String(e)}`, actions: [] };
    }).finally(() => { this.#pending--; });
    this.#tail = run;
    return run;
  }

  /** Resolves when every queued transition has run. */
  async idle(): Promise<void> {
    while (this.#pending > 0) await this.#tail;
  }

  async #run(transition: Transition, vars: Vars, guard?: () => boolean): Promise<TransitionResult> {
    const { logger, history, events, pool, service, node } = this.#o;
    const list = this.#o.actions[transition];
    const records: ActionRecord[] = [];
    let stopped: string | null = null;
    for (const [index, action] of list.entries()) {
      const label = actionLabel(action);
      let attempts = 0;
      let outcome: ActionOutcome = { ok: false, detail: 'not run' };
      const maxAttempts = action.onFailure === 'retry' ? 1 + action.retries : 1;
      while (attempts < maxAttempts) {
        if (guard !== undefined && !guard()) {
          stopped = 'no longer master (lease not valid): master-only actions stopped';
          break;
        }
        attempts++;
        outcome = await this.#one(transition, action, vars);
        const entry = { pool, service, node, transition, index, action: label, attempt: attempts, ok: outcome.ok, detail: outcome.detail, exitCode: outcome.exitCode ?? null, stdout: outcome.stdout ?? '', stderr: outcome.stderr ?? '' };
        history?.append('action', entry);
        (outcome.ok ? logger.info.bind(logger) : logger.warn.bind(logger))(entry, `failover ${service} ${transition} action ${index + 1}/${list.length}: ${outcome.detail}`);
        events?.publish('failover.action', { pool, service, node, transition, action: label, ok: outcome.ok, detail: outcome.detail });
        if (outcome.ok) break;
      }
      if (stopped !== null && attempts === 0) break;
      records.push({ index, label, ok: outcome.ok, attempts, detail: outcome.detail });
      if (stopped !== null) break;
      if (!outcome.ok && action.onFailure !== 'continue') {
        stopped = `action ${index + 1} (${label}) failed: ${outcome.detail}`;
        break;
      }
    }
    const ok = stopped === null && records.every((r) => r.ok || list[r.index]?.onFailure === 'continue');
    return { transition, ok, stopped, actions: records };
  }

  async #one(transition: Transition, action: Action, vars: Vars): Promise<ActionOutcome> {
    if (action.kind === 'floating_ip') {
      return this.#exec.floatingIp(transition === 'standby_to_master' ? 'add' : 'del', action.address, action.interface);
    }
    let command: string;
    try {
      command = expandTemplate(action.run, vars);
    } catch (e) {
      return { ok: false, detail: `cannot expand command: ${(e as Error).message}` };
    }
    return this.#exec.command(action, command, { ...varsEnv(vars), ...action.env });
  }
}
