/**
 * A throwaway rsync daemon on 127.0.0.1 for the filesync benchmarks: plain TCP, one writable
 * module per destination directory, run as the current user, no chroot. stop() kills it.
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** USER_HZ: 100 on every Linux this runs on (`getconf CLK_TCK`). */
const CLOCK_TICKS = 100;

export interface RsyncDaemon {
  /** rsync:// URL of a module (trailing slash: the module's directory itself). */
  url(module: string): string;
  /** CPU time (ms, user + system) of the daemon's finished connection processes so far. */
  childCpuMs(): number;
  stop(): void;
}

/** CPU time (ms, user + system) of the finished, reaped children (and theirs) of process `pid`. */
export function childCpuMs(pid: number): number {
  // /proc/PID/stat after the ")" of the command: fields 16 and 17 (cutime, cstime) in clock ticks.
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[13]) + Number(f[14])) * 1000) / CLOCK_TICKS;
}

/** Starts `rsync --daemon` with `modules` (name → directory), its config and pid file in `base`. */
export async function startRsyncDaemon(base: string, modules: Record<string, string>): Promise<RsyncDaemon> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = join(base, 'rsyncd.conf');
  const ids = `  uid = ${process.getuid?.() ?? 0}\n  gid = ${process.getgid?.() ?? 0}\n`;
  const sections = Object.entries(modules).map(([name, path]) => `[${name}]\n  path = ${path}\n  read only = no\n${ids}`);
  await writeFile(conf, `port = ${port}\naddress = 127.0.0.1\nuse chroot = no\npid file = ${join(base, 'rsyncd.pid')}\n${sections.join('')}`);
  const daemon = spawn('rsync', ['--daemon', '--no-detach', `--config=${conf}`], { stdio: 'ignore' });
  const end = Date.now() + 10_000;
  while (!(await run('rsync', [`rsync://127.0.0.1:${port}/`]).then(() => true, () => false))) {
    if (Date.now() > end) {
      daemon.kill();
      throw new Error('rsync daemon did not start');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: (module) => `rsync://127.0.0.1:${port}/${module}/`,
    childCpuMs: () => childCpuMs(daemon.pid!),
    stop: () => void daemon.kill(),
  };
}
