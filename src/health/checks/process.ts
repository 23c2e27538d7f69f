/**
 * Process checks, read from /proc (Linux):
 * - by name: processes whose comm (kernel name, truncated to 15 chars) equals NAME, or whose
 *   argv[0] basename equals NAME when NAME is longer than comm can hold;
 * - by regex: processes whose full command line (NULs shown as spaces) matches;
 * - by pid file: the pid in the file names a live, non-zombie process (a stale pid file counts
 *   as missing — Monit once silently trusted one, hbz/lobid#465).
 * Zombies never count as running.
 */
import { readdir, readFile } from 'node:fs/promises';
import type { Check, Observation } from '../types.ts';

const COMM_LEN = 15;

async function readOr(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined; // the process exited while we were scanning
  }
}

/** Process state letter from /proc/PID/stat (after the parenthesised comm, which may contain spaces). */
export function statState(stat: string): string | undefined {
  const close = stat.lastIndexOf(')');
  return close < 0 ? undefined : stat.slice(close + 2, close + 3) || undefined;
}

async function alive(pid: number, proc: string): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const st = await readOr(`${proc}/${pid}/stat`);
  return st !== undefined && statState(st) !== 'Z';
}

export class ProcessCheck implements Check {
  readonly #name: string | undefined;
  readonly #match: RegExp | undefined;
  readonly #pidfile: string | undefined;
  readonly #proc: string;

  constructor(opts: { name?: string; match?: string; pidfile?: string }, proc = '/proc') {
    this.#name = opts.name;
    this.#match = opts.match !== undefined ? new RegExp(opts.match) : undefined;
    this.#pidfile = opts.pidfile;
    this.#proc = proc;
  }

  async run(signal: AbortSignal): Promise<Observation> {
    if (this.#pidfile !== undefined) return this.#byPidfile(signal);
    const pids = (await readdir(this.#proc)).filter((d) => /^\d+$/.test(d)).map(Number);
    const found: number[] = [];
    // Bounded batches keep the number of open files small on hosts with many processes.
    for (let i = 0; i < pids.length; i += 64) {
      signal.throwIfAborted();
      const batch = pids.slice(i, i + 64);
      const hits = await Promise.all(batch.map((pid) => this.#matches(pid)));
      batch.forEach((pid, j) => { if (hits[j]) found.push(pid); });
    }
    const what = this.#name !== undefined ? `process ${this.#name}` : `processes matching /${this.#match?.source}/`;
    const shown = found.slice(0, 10).join(', ') + (found.length > 10 ? ', …' : '');
    return {
      values: { count: found.length, missing: found.length === 0 },
      output: `${what}: ${found.length} running${found.length ? ` (pid ${shown})` : ''}`,
    };
  }

  async #matches(pid: number): Promise<boolean> {
    const dir = `${this.#proc}/${pid}`;
    if (this.#name !== undefined) {
      const comm = (await readOr(`${dir}/comm`))?.trimEnd();
      if (comm === undefined) return false;
      let hit = comm === this.#name;
      if (!hit && this.#name.length > COMM_LEN && comm === this.#name.slice(0, COMM_LEN)) {
        const argv0 = (await readOr(`${dir}/cmdline`))?.split('\0')[0] ?? '';
        hit = argv0.split('/').pop() === this.#name;
      }
      if (!hit) return false;
    } else {
      const cmd = await readOr(`${dir}/cmdline`);
      if (!cmd || !this.#match?.test(cmd.replace(/\0+$/, '').replace(/\0/g, ' '))) return false;
    }
    const st = await readOr(`${dir}/stat`);
    return st !== undefined && statState(st) !== 'Z';
  }

  async #byPidfile(signal: AbortSignal): Promise<Observation> {
    const file = this.#pidfile as string;
    let text: string;
    try {
      text = await readFile(file, { encoding: 'utf8', signal });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      return { values: { missing: true, count: 0 }, output: `pid file ${file} does not exist` };
    }
    const pid = Number(text.trim());
    if (!Number.isInteger(pid) || pid <= 0) return { values: { missing: true, count: 0 }, output: `pid file ${file} holds no pid (${JSON.stringify(text.trim().slice(0, 40))})` };
    const up = await alive(pid, this.#proc);
    return { values: { missing: !up, count: up ? 1 : 0, pid }, output: up ? `pid ${pid} (from ${file}) is running` : `pid ${pid} from ${file} is not running (stale pid file)` };
  }
}
