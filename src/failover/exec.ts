/**
 * Runs one action command: `/bin/sh -c CMD` in its own process group (detached) so that a
 * timeout kills the command and everything it spawned (SIGTERM to the group, SIGKILL after a
 * grace period). stdout/stderr are captured up to a bound; the rest is counted, not kept.
 *
 * Public interface: runCommand, CommandResult, RunOptions, OUTPUT_LIMIT.
 * Depends on: node:child_process.
 */
import { spawn } from 'node:child_process';

/** Bytes kept per stream: enough for a script's diagnostics, bounded for the log and history. */
export const OUTPUT_LIMIT = 8 * 1024;
/** Time between SIGTERM and SIGKILL of a timed-out group. */
export const KILL_GRACE_MS = 2000;

export interface RunOptions {
  timeoutMs: number;
  env: Record<string, string>;
  /** argv prefix, e.g. ['ip', 'netns', 'exec', 'ns1'] to run inside a network namespace. */
  prefix?: readonly string[];
  /** Called with the pid (= process group id) once started (tests check the group is gone). */
  onSpawn?: (pid: number) => void;
}

export interface CommandResult {
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** Bytes dropped beyond OUTPUT_LIMIT (both streams). */
  truncated: number;
  /** Set when the process could not be started at all. */
  error?: string;
}

export function runCommand(command: string, opts: RunOptions): Promise<CommandResult> {
  return new Promise((resolve) => {
    const argv = [...(opts.prefix ?? []), '/bin/sh', '-c', command];
    const child = spawn(argv[0] as string, argv.slice(1), {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env },
    });
    let truncated = 0;
    const collect = (into: Buffer[]) => {
      let size = 0;
      return (c: Buffer): void => {
        const keep = Math.max(0, Math.min(c.length, OUTPUT_LIMIT - size));
        if (keep > 0) into.push(c.subarray(0, keep));
        truncated += c.length - keep;
        size += keep;
      };
    };
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', collect(out));
    child.stderr.on('data', collect(err));
    let timedOut = false;
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const signalGroup = (sig: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try { process.kill(-child.pid, sig); } catch { /* group already gone */ }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      signalGroup('SIGTERM');
      killTimer = setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS);
    }, opts.timeoutMs);
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    let startError: string | undefined;
    child.once('error', (e) => { startError = e.message; });
    // 'close' waits for the pipes too: a background child holding stdout keeps the action running
    // until it exits or the timeout kills the whole group.
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      // The leader exited but group members may linger (sh backgrounded them): kill them too.
      if (timedOut) signalGroup('SIGKILL');
      if (killTimer !== undefined) clearTimeout(killTimer);
      resolve({
        ok: !timedOut && code === 0 && startError === undefined,
        exitCode: code,
        signal: sig,
        timedOut,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        truncated,
        ...(startError === undefined ? {} : { error: startError }),
      });
    });
  });
}
