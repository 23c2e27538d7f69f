/**
 * Command check: runs `/bin/sh -c COMMAND` as a separate process in its own process group
 * (detached), so a hung plugin never blocks the agent and can be killed with everything it
 * spawned: on abort the whole group gets SIGKILL. Stdout follows the Nagios plugin convention
 * (see nagios.ts); exit code 0/1/2/3 = OK/WARNING/CRITICAL/UNKNOWN.
 */
import { spawn } from 'node:child_process';
import type { Check, Observation } from '../types.ts';
import { exitStatus, parsePluginOutput } from './nagios.ts';

/** Output kept per stream (Consul caps script output at 4 KB; perfdata lines need a bit more). */
export const OUTPUT_LIMIT = 16 * 1024;

export class CommandCheck implements Check {
  readonly #command: string;
  /** Pid of the process group leader of the run in progress (tests look at it). */
  lastPid: number | undefined;

  constructor(command: string) {
    this.#command = command;
  }

  run(signal: AbortSignal): Promise<Observation> {
    return new Promise((resolve, reject) => {
      signal.throwIfAborted();
      const child = spawn('/bin/sh', ['-c', this.#command], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      this.lastPid = child.pid;
      const out: string[] = [];
      const err: string[] = [];
      const collect = (into: string[]) => {
        let size = 0;
        return (c: Buffer): void => {
          if (size < OUTPUT_LIMIT) into.push(c.subarray(0, OUTPUT_LIMIT - size).toString('utf8'));
          size += c.length;
        };
      };
      child.stdout.on('data', collect(out));
      child.stderr.on('data', collect(err));
      const killGroup = (): void => {
        if (child.pid === undefined) return;
        try { process.kill(-child.pid, 'SIGKILL'); } catch { /* group already gone */ }
      };
      const onAbort = (): void => { killGroup(); reject(signal.reason instanceof Error ? signal.reason : new Error('aborted')); };
      signal.addEventListener('abort', onAbort, { once: true });
      child.once('error', (e) => { signal.removeEventListener('abort', onAbort); reject(new Error(`cannot run ${JSON.stringify(this.#command)}: ${e.message}`)); });
      // 'close' waits for stdout/stderr to close too, so a plugin's background child holding the
      // pipe keeps the run going until it ends or the timeout kills the group.
      child.once('close', (code, sig) => {
        signal.removeEventListener('abort', onAbort);
        const stdout = out.join('');
        const parsed = parsePluginOutput(stdout);
        const status = exitStatus(sig ? null : code);
        const text = parsed.text || err.join('').trim().split('\n')[0] || '(no output)';
        const how = sig ? `killed by ${sig}` : `exit ${code}`;
        resolve({
          values: { exit: code ?? -1 },
          output: `${text} [${how}]`,
          ...(code === 0 ? {} : { failed: how }),
          nagios: { status, perfdata: parsed.perfdata, longOutput: parsed.longOutput },
        });
      });
    });
  }
}
