/**
 * Host resource checks: cpu (deltas of /proc/stat), load (os.loadavg, i.e. /proc/loadavg),
 * memory and swap (/proc/meminfo). All reads are async; nothing blocks the event loop.
 */
import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Check, Observation } from '../types.ts';

interface CpuSample {
  user: number; nice: number; system: number; idle: number; iowait: number; irq: number; softirq: number; steal: number;
}

export function parseProcStat(text: string): CpuSample {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('/proc/stat has no aggregate "cpu" line');
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  if (f.length < 4 || f.some((n) => !Number.isFinite(n))) throw new Error(`/proc/stat: unexpected cpu line ${JSON.stringify(line)}`);
  const g = (i: number): number => f[i] ?? 0;
  return { user: g(0), nice: g(1), system: g(2), idle: g(3), iowait: g(4), irq: g(5), softirq: g(6), steal: g(7) };
}

const pct = (n: number): number => Math.round(n * 1000) / 10;

/**
 * CPU usage over the interval since this check's previous run. The first run has no previous
 * sample, so it takes two samples 250 ms apart (an average since boot would hide a busy CPU).
 */
export class CpuCheck implements Check {
  #prev: CpuSample | undefined;
  readonly #statPath: string;

  constructor(statPath = '/proc/stat') {
    this.#statPath = statPath;
  }

  async #sample(signal: AbortSignal): Promise<CpuSample> {
    return parseProcStat(await readFile(this.#statPath, { encoding: 'utf8', signal }));
  }

  async run(signal: AbortSignal): Promise<Observation> {
    let a = this.#prev;
    if (!a) { a = await this.#sample(signal); await sleep(250, undefined, { signal }); }
    const b = await this.#sample(signal);
    this.#prev = b;
    const d = (k: keyof CpuSample): number => Math.max(0, b[k] - (a as CpuSample)[k]);
    const total = d('user') + d('nice') + d('system') + d('idle') + d('iowait') + d('irq') + d('softirq') + d('steal');
    if (total === 0) return { values: { usage: 0, user: 0, system: 0, iowait: 0, steal: 0 }, output: 'cpu: no ticks elapsed' };
    const values = {
      usage: pct((total - d('idle') - d('iowait')) / total),
      user: pct((d('user') + d('nice')) / total),
      system: pct((d('system') + d('irq') + d('softirq')) / total),
      iowait: pct(d('iowait') / total),
      steal: pct(d('steal') / total),
    };
    return { values, output: `cpu ${values.usage}% (user ${values.user}%, system ${values.system}%, iowait ${values.iowait}%, steal ${values.steal}%)` };
  }
}

export class LoadCheck implements Check {
  async run(): Promise<Observation> {
    const [m1 = 0, m5 = 0, m15 = 0] = loadavg();
    const r = (n: number): number => Math.round(n * 100) / 100;
    return { values: { '1m': r(m1), '5m': r(m5), '15m': r(m15) }, output: `load ${r(m1)} ${r(m5)} ${r(m15)}` };
  }
}

/** /proc/meminfo as a map of field -> bytes. */
export function parseMeminfo(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?$/.exec(line.trim());
    if (m) out.set(m[1] as string, Number(m[2]) * (line.includes('kB') ? 1024 : 1));
  }
  return out;
}

export class MemoryCheck implements Check {
  readonly #what: 'memory' | 'swap';
  readonly #path: string;

  constructor(what: 'memory' | 'swap', meminfoPath = '/proc/meminfo') {
    this.#what = what;
    this.#path = meminfoPath;
  }

  async run(signal: AbortSignal): Promise<Observation> {
    const mi = parseMeminfo(await readFile(this.#path, { encoding: 'utf8', signal }));
    const need = (k: string): number => {
      const v = mi.get(k);
      if (v === undefined) throw new Error(`${this.#path} has no ${k} field`);
      return v;
    };
    const gib = (b: number): string => `${(b / 1024 ** 3).toFixed(2)}GiB`;
    if (this.#what === 'memory') {
      // MemAvailable (kernel >= 3.14) counts reclaimable cache; "used" is what cannot be reclaimed.
      const total = need('MemTotal');
      const avail = mi.get('MemAvailable') ?? need('MemFree') + (mi.get('Buffers') ?? 0) + (mi.get('Cached') ?? 0);
      const usage = total > 0 ? pct((total - avail) / total) : 0;
      return { values: { usage }, output: `memory ${usage}% used (${gib(total - avail)} of ${gib(total)})` };
    }
    const total = need('SwapTotal');
    const free = need('SwapFree');
    if (total === 0) return { values: { usage: 0 }, output: 'swap: none configured (0%)' };
    const usage = pct((total - free) / total);
    return { values: { usage }, output: `swap ${usage}% used (${gib(total - free)} of ${gib(total)})` };
  }
}
