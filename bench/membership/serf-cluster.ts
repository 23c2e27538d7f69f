/**
 * N HashiCorp serf agents (the `serf` binary, Debian package) on loopback for the membership
 * comparison benchmark (compare.ts): each agent on its own address 127.A.B.(10+i), gossip port
 * 7946 and RPC port 7373, encrypted gossip (-encrypt) like our agents.
 *
 * Two timestamp sources for membership events:
 * - every agent's log lines (stdout piped here) are stamped on arrival: `serf: EventMemberFailed:
 *   NAME` is logged the moment serf processes memberlist's failure notification, which is the
 *   equivalent of our `member.failed` bus event;
 * - the `member-failed` event handler script appends `epoch_ms name` to `<dir>/<node>.failed`.
 *   The serf *agent* coalesces member events (CoalescePeriod 3 s, QuiescentPeriod 1 s in
 *   cmd/serf/command/agent/command.go), so handler times are at least ~1 s later than the
 *   detection itself.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export const SERF_BIN = '/usr/bin/serf';

export interface ObservedEvent {
  observer: string;
  kind: 'failed' | 'suspect' | 'alive' | 'joined' | 'left';
  name: string;
  at: number;
}

interface SerfNode {
  name: string;
  ip: string;
  proc?: ChildProcess;
  exited?: Promise<void>;
}

export class SerfCluster {
  readonly dir: string;
  readonly profile: string;
  readonly nodes = new Map<string, SerfNode>();
  readonly events: ObservedEvent[] = [];
  readonly #key = randomBytes(32).toString('base64');
  readonly #handler: string;

  constructor(dir: string, prefix: string, names: string[], profile: string) {
    this.dir = dir;
    this.profile = profile;
    mkdirSync(dir, { recursive: true });
    names.forEach((name, i) => this.nodes.set(name, { name, ip: `${prefix}${10 + i}` }));
    this.#handler = join(dir, 'member-failed.sh');
    writeFileSync(
      this.#handler,
      `#!/bin/sh\nts=$(date +%s%3N)\nwhile read -r name rest; do echo "$ts $name" >> "${dir}/$SERF_SELF_NAME.failed"; done\n`,
      { mode: 0o755 },
    );
  }

  node(name: string): SerfNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`serf: no node ${name}`);
    return n;
  }

  running(name: string): boolean {
    const p = this.node(name).proc;
    return !!p && p.exitCode === null && p.signalCode === null;
  }

  /** Starts one agent joining `joinTo` (names); resolves once its RPC answers. */
  async start(name: string, joinTo: string[]): Promise<void> {
    const n = this.node(name);
    const args = [
      'agent', '-node', name, '-bind', `${n.ip}:7946`, '-rpc-addr', `${n.ip}:7373`, '-profile', this.profile,
      '-encrypt', this.#key, '-log-level', 'info', '-event-handler', `member-failed=${this.#handler}`,
      ...joinTo.flatMap((j) => ['-retry-join', `${this.node(j).ip}:7946`]), '-retry-interval', '1s',
    ];
    const proc = spawn(SERF_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    n.proc = proc;
    n.exited = new Promise((r) => proc.once('exit', () => r()));
    for (const stream of [proc.stdout, proc.stderr]) {
      createInterface({ input: stream }).on('line', (line) => this.#onLine(name, line));
    }
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (!this.running(name)) throw new Error(`serf ${name} exited during start`);
      if (await this.members(name).then(() => true, () => false)) return;
      if (Date.now() > deadline) throw new Error(`serf ${name}: RPC not up after 15 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  #onLine(observer: string, line: string): void {
    const at = Date.now();
    let m = /serf: EventMember(Failed|Join|Leave|Reap): (\S+)/.exec(line);
    if (m) {
      const kind = m[1] === 'Failed' ? 'failed' : m[1] === 'Join' ? 'joined' : 'left';
      this.events.push({ observer, kind, name: m[2] ?? '', at });
      return;
    }
    m = /memberlist: Suspect (\S+) has failed/.exec(line);
    if (m) this.events.push({ observer, kind: 'suspect', name: m[1] ?? '', at });
  }

  async kill(name: string): Promise<void> {
    const n = this.node(name);
    if (!this.running(name)) return;
    n.proc?.kill('SIGCONT');
    n.proc?.kill('SIGKILL');
    await n.exited;
  }

  signal(name: string, sig: NodeJS.Signals): void {
    if (this.running(name)) this.node(name).proc?.kill(sig);
  }

  pid(name: string): number | undefined {
    return this.running(name) ? this.node(name).proc?.pid : undefined;
  }

  /** `serf members` through the node's RPC: name -> status (alive|failed|left|leaving). */
  members(name: string): Promise<Map<string, string>> {
    const n = this.node(name);
    return new Promise((resolve, reject) => {
      execFile(SERF_BIN, ['members', '-rpc-addr', `${n.ip}:7373`, '-format', 'json'], { timeout: 5000 }, (err, stdout) => {
        if (err) return reject(err);
        try {
          const doc = JSON.parse(stdout) as { members: { name: string; status: string }[] };
          resolve(new Map(doc.members.map((m) => [m.name, m.status])));
        } catch (e) {
          reject(e as Error);
        }
      });
    });
  }

  /** Handler-script timestamps: observer -> [{at, name}] written by `member-failed`. */
  handlerFailed(observer: string): { at: number; name: string }[] {
    const f = join(this.dir, `${observer}.failed`);
    if (!existsSync(f)) return [];
    return readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => {
      const [ts, name] = l.split(' ');
      return { at: Number(ts), name: name ?? '' };
    });
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.nodes.keys()].map((n) => this.kill(n)));
  }
}
