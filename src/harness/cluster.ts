/**
 * Cluster harness: N real agent processes on loopback, each with its own address
 * (127.A.B.10+i, A.B random per cluster so parallel clusters never collide), config, certificate
 * and data dir. Tests and `npm start` use it.
 *
 * Faults: kill (-9), pause/resume (SIGSTOP/SIGCONT), stop (SIGTERM), restart, and partitions of
 * chosen node sets with iptables DROP rules between their loopback addresses (needs root and
 * iptables; `Cluster.canPartition()` tells). Every agent talks from its own address, so a rule on
 * source/destination pairs cuts exactly the chosen links, UDP and TCP alike.
 *
 * Public interface: Cluster.create(opts), cluster.start/stop/kill/pause/resume/restart,
 * cluster.partition/heal, cluster.api(name, method, path, body), cluster.cli(name, args),
 * cluster.logOf(name), cluster.destroy().
 */
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync, openSync, closeSync, existsSync, chmodSync, chownSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomInt } from 'node:crypto';
import { stringify } from 'yaml';
import { initCa, issueNodeCert } from '../security/ca.ts';
import { generateGossipKey, writeKeyring } from '../security/gossipkey.ts';
import { apiRequest, apiStream } from '../cli/client.ts';

const REPO = resolve(new URL('../..', import.meta.url).pathname);
const CLI = join(REPO, 'src/cli/main.ts');
export const RPC_PORT = 7950;
export const GOSSIP_PORT = 7946;

export interface PoolSpec {
  name: string;
  members: string[];
  settings?: Record<string, unknown>;
}

export interface ClusterOptions {
  /** Node names, or a count (names n1..nN). */
  nodes: number | string[];
  /** Root directory (default: a new temp dir, removed by destroy()). */
  dir?: string;
  /** Pools; default one pool "demo" with every node. */
  pools?: PoolSpec[];
  /** Extra top-level or node-level YAML for one node's config (merged shallowly). */
  configFor?: (name: string) => Record<string, unknown>;
  logLevel?: string;
  /** Gossip timing (config `gossip:` section); default FAST_GOSSIP so tests detect failures in about a second. */
  gossip?: Record<string, unknown>;
  /** Admin public key files every node trusts for signed pool documents. */
  adminKeys?: string[];
  /**
   * Nodes whose agent runs as another user (e.g. nobody), to test behaviour without root: their
   * directory is handed to that user, and the cluster directory and keyring are made readable.
   * `caps` (e.g. ['chown', 'fowner']) are kept as ambient capabilities (started through
   * setpriv(1)). The harness itself must run as root then.
   */
  runAs?: Record<string, { uid: number; gid: number; caps?: string[] }>;
}

/**
 * Can an agent run as `user` from this checkout? The user must reach the Node binary and the
 * sources: a checkout below a private directory (mode 0700, e.g. a mktemp -d) is out of reach.
 */
export function canRunAgentAs(user: { uid: number; gid: number }): boolean {
  const r = spawnSync('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', 'test', '-x', process.execPath, '-a', '-r', CLI], { stdio: 'ignore' });
  return r.status === 0;
}

/** Short timers for tests on loopback: the protocol code is the real one, only the periods shrink. */
export const FAST_GOSSIP = {
  profile: 'local', probe_interval: '200ms', probe_timeout: '100ms', gossip_interval: '50ms',
  suspicion_mult: 3, push_pull_interval: '2s', reconnect_interval: '1s',
};

export interface NodeHandle {
  name: string;
  ip: string;
  rpcPort: number;
  gossipPort: number;
  dir: string;
  configPath: string;
  socketPath: string;
  logPath: string;
  proc?: ChildProcess;
  /** Resolves when the current process exits. */
  exited?: Promise<number | null>;
}

export class Cluster {
  readonly dir: string;
  readonly nodes = new Map<string, NodeHandle>();
  readonly caDir: string;
  readonly #ownsDir: boolean;
  readonly #opts: ClusterOptions;
  readonly #prefix: string;
  readonly #tag: string;
  #next = 10;
  #rules: string[][] = [];

  private constructor(opts: ClusterOptions) {
    this.#opts = opts;
    this.#ownsDir = !opts.dir;
    this.dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'multiall-cluster-'));
    this.caDir = join(this.dir, 'ca');
    this.#prefix = `127.${randomInt(1, 250)}.${randomInt(1, 250)}.`;
    this.#tag = `multiall-${this.#prefix}`;
  }

  static async create(opts: ClusterOptions): Promise<Cluster> {
    const c = new Cluster(opts);
    mkdirSync(c.dir, { recursive: true });
    await initCa(c.caDir, { commonName: 'MultiAll test CA' });
    const keyring = join(c.dir, 'keyring.json');
    const key = generateGossipKey();
    await writeKeyring(keyring, { primary: key, keys: [key] });
    if (opts.runAs !== undefined) {
      chmodSync(c.dir, 0o755);
      chmodSync(keyring, 0o644);
    }
    const names = typeof opts.nodes === 'number' ? Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`) : opts.nodes;
    for (const name of names) await c.addNode(name);
    return c;
  }

  /** Adds (but does not start) a node; with `foreignCa`, its certificate comes from another CA. */
  async addNode(name: string, opts: { foreignCa?: boolean } = {}): Promise<NodeHandle> {
    const ip = `${this.#prefix}${this.#next++}`;
    const dir = join(this.dir, name);
    const tlsDir = join(dir, 'tls');
    mkdirSync(dir, { recursive: true });
    let caDir = this.caDir;
    if (opts.foreignCa) {
      caDir = join(dir, 'foreign-ca');
      await initCa(caDir, { commonName: 'Foreign CA' });
    }
    await issueNodeCert(caDir, name, tlsDir, { ips: [ip] });
    const h: NodeHandle = {
      name, ip, rpcPort: RPC_PORT, gossipPort: GOSSIP_PORT, dir,
      configPath: join(dir, 'multiall.yaml'),
      socketPath: join(dir, 'api.sock'),
      logPath: join(dir, 'agent.log'),
    };
    this.nodes.set(name, h);
    this.writeConfig(name);
    const user = this.#opts.runAs?.[name];
    if (user !== undefined) {
      for (const p of [dir, ...readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => join(dir, f))]) chownSync(p, user.uid, user.gid);
    }
    return h;
  }

  /** (Re)writes a node's config from the cluster's current node list and pools. */
  writeConfig(name: string, extra: Record<string, unknown> = {}): void {
    const h = this.#node(name);
    const names = [...this.nodes.keys()];
    const pools = this.#opts.pools ?? [{ name: 'demo', members: names }];
    const custom = { ...this.#opts.configFor?.(name), ...extra } as Record<string, unknown>;
    const doc = {
      node: {
        name, bind: h.ip, rpc_port: h.rpcPort, gossip_port: h.gossipPort, network: 'lan1',
        data_dir: join(h.dir, 'data'),
        tls: { ca: 'tls/ca.crt', cert: 'tls/node.crt', key: 'tls/node.key' },
        gossip_keyring: '../keyring.json',
        ...(custom.node as object | undefined),
      },
      api: { socket: h.socketPath, ...(custom.api as object | undefined) },
      log: { level: this.#opts.logLevel ?? 'debug', format: 'json' },
      gossip: this.#opts.gossip ?? FAST_GOSSIP,
      ...(this.#opts.adminKeys ? { admin_keys: this.#opts.adminKeys } : {}),
      join: names.filter((n) => n !== name).slice(0, 3).map((n) => `${this.#node(n).ip}:${GOSSIP_PORT}`),
      networks: [{ name: 'lan1', relays: [] }],
      pools: pools.map((p) => ({ name: p.name, members: p.members, settings: p.settings ?? {} })),
      ...Object.fromEntries(Object.entries(custom).filter(([k]) => k !== 'node' && k !== 'api')),
    };
    writeFileSync(h.configPath, stringify(doc));
  }

  #node(name: string): NodeHandle {
    const h = this.nodes.get(name);
    if (!h) throw new Error(`harness: no node named ${name}`);
    return h;
  }

  node(name: string): NodeHandle {
    return this.#node(name);
  }

  /** Starts the agent and waits until its API answers (or it exits, which throws with its log). */
  async start(name: string, timeoutMs = 20_000): Promise<NodeHandle> {
    const h = this.#node(name);
    if (h.proc && h.proc.exitCode === null && h.proc.signalCode === null) throw new Error(`harness: ${name} is already running`);
    const fd = openSync(h.logPath, 'a');
    const argv = [process.execPath, '--no-warnings=ExperimentalWarning', CLI, '--config', h.configPath, 'agent'];
    const user = this.#opts.runAs?.[name];
    const caps = user?.caps?.map((c) => `+${c}`).join(',');
    // setpriv execs the agent (same process) with the user's ids and the ambient capabilities.
    const cmd = user === undefined ? argv : ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', ...(caps ? [`--inh-caps=${caps}`, `--ambient-caps=${caps}`] : []), '--', ...argv];
    const proc = spawn(cmd[0]!, cmd.slice(1), {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, MULTIALL_LOG_LEVEL: undefined },
    });
    closeSync(fd);
    h.proc = proc;
    h.exited = new Promise((r) => proc.once('exit', (code) => r(code)));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`harness: ${name} exited with ${proc.exitCode ?? proc.signalCode} during start:\n${this.logOf(name).slice(-3000)}`);
      }
      try {
        await apiRequest({ socketPath: h.socketPath }, 'GET', '/healthz', undefined, 1000);
        return h;
      } catch {
        if (Date.now() > deadline) throw new Error(`harness: ${name} not up after ${timeoutMs} ms:\n${this.logOf(name).slice(-3000)}`);
        await sleep(50);
      }
    }
  }

  async startAll(): Promise<void> {
    await Promise.all([...this.nodes.keys()].map((n) => this.start(n)));
  }

  /** SIGTERM and wait for a clean exit; returns the exit code. */
  async stop(name: string, timeoutMs = 15_000): Promise<number | null> {
    const h = this.#node(name);
    if (!h.proc || h.proc.exitCode !== null || h.proc.signalCode !== null) return h.proc?.exitCode ?? null;
    if (h.proc.signalCode === null) h.proc.kill('SIGCONT');
    h.proc.kill('SIGTERM');
    const code = await Promise.race([h.exited, sleep(timeoutMs).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      h.proc.kill('SIGKILL');
      throw new Error(`harness: ${name} did not stop within ${timeoutMs} ms after SIGTERM`);
    }
    return code ?? null;
  }

  async kill(name: string): Promise<void> {
    const h = this.#node(name);
    h.proc?.kill('SIGKILL');
    await h.exited;
  }

  pause(name: string): void {
    this.#node(name).proc?.kill('SIGSTOP');
  }

  resume(name: string): void {
    this.#node(name).proc?.kill('SIGCONT');
  }

  async restart(name: string): Promise<NodeHandle> {
    await this.stop(name);
    return this.start(name);
  }

  signal(name: string, sig: NodeJS.Signals): void {
    this.#node(name).proc?.kill(sig);
  }

  static canPartition(): boolean {
    if (process.getuid?.() !== 0) return false;
    try {
      execFileSync('iptables', ['-w', '-S', 'INPUT'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  }

  /** Drops every packet between the two sets (both directions) until heal(). */
  partition(a: string[], b: string[]): void {
    for (const x of a) {
      for (const y of b) {
        for (const [src, dst] of [[this.#node(x).ip, this.#node(y).ip], [this.#node(y).ip, this.#node(x).ip]] as const) {
          const rule = ['INPUT', '-s', src, '-d', dst, '-m', 'comment', '--comment', this.#tag, '-j', 'DROP'];
          execFileSync('iptables', ['-w', '-I', ...rule]);
          this.#rules.push(rule);
        }
      }
    }
  }

  heal(): void {
    for (const rule of this.#rules) {
      try {
        execFileSync('iptables', ['-w', '-D', ...rule], { stdio: 'ignore' });
      } catch {
        // already removed
      }
    }
    this.#rules = [];
  }

  api(name: string, method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<unknown> {
    return apiRequest({ socketPath: this.#node(name).socketPath }, method, path, body, timeoutMs);
  }

  /**
   * Follows a node's /v1/events stream: `onEvent` gets every event until `stop()`; `ready`
   * resolves once the agent has accepted the stream (events before it are not seen).
   */
  events(name: string, onEvent: (ev: { kind: string; at: number; data: Record<string, unknown> }) => void): { ready: Promise<void>; stop: () => void } {
    const ac = new AbortController();
    let opened!: () => void;
    const ready = new Promise<void>((r) => (opened = r));
    apiStream({ socketPath: this.#node(name).socketPath }, '/v1/events', (ev) => onEvent(ev as { kind: string; at: number; data: Record<string, unknown> }), { signal: ac.signal, onOpen: opened })
      .catch(() => undefined); // the agent went away (killed by the test): the stream just ends
    return { ready, stop: () => ac.abort() };
  }

  /** Runs the real CLI against one node; resolves with exit code and output. */
  cli(name: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const h = this.#node(name);
    return runCli(['--config', h.configPath, ...args]);
  }

  logOf(name: string): string {
    const p = this.#node(name).logPath;
    return existsSync(p) ? readFileSync(p, 'utf8') : '';
  }

  /** Parsed JSON log lines of a node. */
  logLines(name: string): Record<string, unknown>[] {
    return this.logOf(name)
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async destroy(): Promise<void> {
    this.heal();
    await Promise.all(
      [...this.nodes.values()].map(async (h) => {
        if (h.proc && h.proc.exitCode === null && h.proc.signalCode === null) {
          h.proc.kill('SIGCONT');
          h.proc.kill('SIGKILL');
          await h.exited;
        }
      }),
    );
    if (this.#ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

export function runCli(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    const p = spawn(process.execPath, ['--no-warnings=ExperimentalWarning', CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('close', (code) => resolvePromise({ code, stdout, stderr }));
    p.stdin.end(input ?? '');
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns a truthy value or the time is up (then throws `what`). */
export async function waitFor<T>(fn: () => Promise<T> | T, what: string, timeoutMs = 20_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(everyMs);
  }
}
