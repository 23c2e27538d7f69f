/**
 * keepalived (Debian package) in network namespaces, for the failover benchmark.
 *
 * Layout: one namespace holding a bridge `br0`, and one namespace per instance whose `eth0` is a
 * veth pair plugged into that bridge, addressed 10.200.0.(10+i)/24. Nothing is configured in the
 * host namespace: every address lives inside a namespace this module created, and destroy()
 * deletes the namespaces (which removes the veths) and kills the daemons.
 *
 * Each instance runs VRRP only (`keepalived -n -P`), advert_int 1 s, the given priority,
 * preemption on (the keepalived default), and a notify_master script that appends
 * `<date +%s%N> <name>` to one shared log.
 *
 * Public interface: KeepalivedCluster.create(priorities), start(i), kill9(i), master(),
 * notifications(), destroy().
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';

export const VIP = '10.200.0.100';

export interface Notification {
  atMs: number;
  name: string;
}

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export class KeepalivedCluster {
  readonly dir: string;
  readonly names: string[];
  readonly #bridgeNs: string;
  readonly #ns: string[];
  readonly #priorities: number[];
  readonly #procs = new Map<number, ChildProcess>();
  readonly #notifyLog: string;
  #created: string[] = [];

  private constructor(priorities: number[]) {
    const tag = `fobench${process.pid}-${randomInt(1000, 9999)}`;
    this.dir = mkdtempSync(join(tmpdir(), 'multiall-keepalived-'));
    this.#priorities = priorities;
    this.names = priorities.map((_, i) => `k${i + 1}`);
    this.#bridgeNs = `${tag}-br`;
    this.#ns = this.names.map((n) => `${tag}-${n}`);
    this.#notifyLog = join(this.dir, 'notify.log');
  }

  static feasible(): string | null {
    if (process.getuid?.() !== 0) return 'not root: cannot create network namespaces';
    try {
      execFileSync('keepalived', ['--version'], { stdio: 'ignore' });
    } catch {
      return 'keepalived is not installed (apt-get install -y keepalived)';
    }
    return null;
  }

  static create(priorities: number[]): KeepalivedCluster {
    const k = new KeepalivedCluster(priorities);
    try {
      k.#setup();
    } catch (err) {
      k.destroy();
      throw err;
    }
    return k;
  }

  #setup(): void {
    const br = this.#bridgeNs;
    ip(['netns', 'add', br]);
    this.#created.push(br);
    ip(['-n', br, 'link', 'set', 'lo', 'up']);
    ip(['-n', br, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', br, 'link', 'set', 'br0', 'up']);
    const script = join(this.dir, 'notify.sh');
    writeFileSync(script, `#!/bin/sh\necho "$(date +%s%N) $1" >> ${this.#notifyLog}\n`);
    chmodSync(script, 0o755);
    this.#ns.forEach((ns, i) => {
      ip(['netns', 'add', ns]);
      this.#created.push(ns);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', br, 'link', 'add', `v${i + 1}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      ip(['-n', br, 'link', 'set', `v${i + 1}`, 'master', 'br0']);
      ip(['-n', br, 'link', 'set', `v${i + 1}`, 'up']);
      ip(['-n', ns, 'addr', 'add', `10.200.0.${10 + i + 1}/24`, 'dev', 'eth0']);
      ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      const name = this.names[i] ?? `k${i + 1}`;
      writeFileSync(join(this.dir, `${name}.conf`), [
        'global_defs {',
        `  router_id fobench_${name}`,
        '  script_user root',
        '}',
        'vrrp_instance VI_1 {',
        '  state BACKUP',
        '  interface eth0',
        '  virtual_router_id 51',
        `  priority ${this.#priorities[i] ?? 100}`,
        '  advert_int 1',
        '  virtual_ipaddress {',
        `    ${VIP}/24`,
        '  }',
        `  notify_master "${script} ${name}"`,
        '}',
        '',
      ].join('\n'));
    });
  }

  /** Starts instance i (0-based) in its namespace, in its own process group. */
  start(i: number): void {
    const name = this.names[i] ?? `k${i + 1}`;
    const ns = this.#ns[i] ?? '';
    const f = (s: string): string => join(this.dir, `${name}.${s}`);
    const p = spawn('ip', ['netns', 'exec', ns, 'keepalived', '-n', '-P', '-l', '-G', '-R',
      '-f', f('conf'), '-p', f('pid'), '-r', f('vrrp.pid'), '-c', f('check.pid'), '-i', name], {
      detached: true, stdio: ['ignore', 'ignore', 'ignore'],
    });
    this.#procs.set(i, p);
  }

  /** kill -9 of the whole process group (parent and VRRP child at once: no graceful priority-0 advert). */
  async kill9(i: number): Promise<void> {
    const p = this.#procs.get(i);
    if (!p?.pid) return;
    const exited = new Promise((r) => p.once('exit', r));
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      return;
    }
    if (p.exitCode === null && p.signalCode === null) await exited;
    this.#procs.delete(i);
  }

  /** Names of the instances whose namespace holds the VIP right now. */
  holders(): string[] {
    return this.#ns.flatMap((ns, i) => {
      try {
        return ip(['-n', ns, '-4', 'addr', 'show', 'dev', 'eth0']).includes(`${VIP}/`) ? [this.names[i] ?? ''] : [];
      } catch {
        return [];
      }
    });
  }

  notifications(): Notification[] {
    if (!existsSync(this.#notifyLog)) return [];
    return readFileSync(this.#notifyLog, 'utf8').trim().split('\n').filter(Boolean).map((l) => {
      const [ns, name] = l.split(' ');
      return { atMs: Number(BigInt(ns ?? '0') / 1000n) / 1000, name: name ?? '' };
    });
  }

  destroy(): void {
    for (const p of this.#procs.values()) {
      try {
        if (p.pid) process.kill(-p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    this.#procs.clear();
    for (const ns of this.#created.reverse()) {
      try {
        ip(['netns', 'del', ns]);
      } catch {
        // already gone
      }
    }
    this.#created = [];
    rmSync(this.dir, { recursive: true, force: true });
  }
}
