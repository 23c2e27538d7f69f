/** Test helpers: run one rule once through the real check and runner; in-memory HistorySink. */
import { readFile } from 'node:fs/promises';
import { createCheck } from '../../src/health/checks/index.ts';
import { parseRule } from '../../src/health/rules.ts';
import { RuleRunner, type CycleResult } from '../../src/health/runner.ts';
import type { HistoryEntry, HistorySink } from '../../src/health/types.ts';

export const FLAP = { window: 20, high: 50, low: 25 };

export async function once(text: string, timeoutMs = 5000): Promise<CycleResult> {
  const rule = parseRule(text);
  return new RuleRunner(rule, createCheck(rule), FLAP, rule.timeoutMs ?? timeoutMs).cycle();
}

/** In-memory history for tests (the SQLite store implements HistorySink in production). */
export class MemoryHistory implements HistorySink {
  readonly entries: HistoryEntry[] = [];

  record(entry: HistoryEntry): void {
    this.entries.push(entry);
  }
}

/** Poll until fn() is true (bounded); for waiting on the OS, not for asserting timings. */
export async function until(fn: () => boolean | Promise<boolean>, what: string, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** True when the process is absent, or a zombie waiting for a reaper (PID 1 in a container may never reap it). */
export function gone(pid: number): Promise<boolean> {
  return readFile(`/proc/${pid}/stat`, 'utf8').then((s) => s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3) === 'Z', () => true);
}
