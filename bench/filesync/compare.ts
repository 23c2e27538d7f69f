/**
 * Side-by-side benchmark: MultiAll file sync vs rsync on data this script generates.
 *   node bench/filesync/compare.ts [scale=1] [runs=3] [peers=5]
 * MultiAll: one agent per process (bench/filesync/agent-proc.ts: real Store, RPC server and client
 * pool over loopback mTLS, watcher on, debounce 100 ms), like one agent per server. rsync: a
 * daemon on 127.0.0.1 (plain TCP, generated rsyncd.conf) and the rsync client, `-a`, no `-z`
 * (MultiAll compresses nothing either), no `--fsync` (MultiAll fsyncs every file before its
 * rename, and each directory once per batch).
 * scale 1 = 2000 small files (2 KiB, in 50 directories) + 3 large files (32 MiB). Cases:
 *   1. initial sync to an empty peer: wall time and bytes on the wire
 *   2. 1-byte edit in the middle of a large file (its mtime moved +5 s, so rsync's quick check
 *      cannot miss it): bytes and time (MultiAll: incl. the scan that finds it)
 *   3. time until a small change is visible on the peer (MultiAll: the watcher notices it;
 *      rsync: one run, i.e. the lower bound of what lsyncd achieves after its own delay)
 *   4. MultiAll only: time until a small change is visible on every one of `peers` peers
 *      (1 + peers processes, 100-file tree, 5 changes; median)
 * Bytes on the wire: rsync's own "Total bytes sent + received"; MultiAll: TCP payload (TLS
 * records, handshakes included) of every agent-to-agent connection, from `ss -ti` counters
 * (bytes_sent + bytes_received of the client end), before/after each case.
 * Each case runs `runs` times (fresh data); medians are reported. Last line: JSON.
 */
import { execFile, fork, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pseudoRandom } from '../../test/filesync/helpers.ts';
import { makePki, type Pki } from '../../test/security/pki.ts';
import type { Member } from '../../src/filesync/service.ts';

const run = promisify(execFile);
const scale = Number(process.argv[2] ?? '1');
const RUNS = Math.max(1, Number(process.argv[3] ?? '3'));
const PEERS = Math.max(1, Number(process.argv[4] ?? '5'));
const SMALL = Math.max(10, Math.round(2000 * scale));
const LARGE_MB = Math.max(1, Math.round(32 * scale));

async function generate(dir: string, small = SMALL, largeMb = LARGE_MB, large = 3): Promise<void> {
  for (let i = 0; i < small; i++) {
    const d = join(dir, `d${i % 50}`);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, `f${i}.txt`), pseudoRandom(2048, i + 1));
  }
  for (let i = 0; i < large; i++) await writeFile(join(dir, `large${i}.bin`), pseudoRandom(largeMb * 1024 * 1024, 1000 + i));
}

/** Flips the middle byte and moves the mtime 5 s ahead (same on both sides). */
async function flipMiddle(file: string): Promise<void> {
  const st = await stat(file);
  const fh = await open(file, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, Math.floor(st.size / 2));
  b[0] = b[0]! ^ 0xff;
  await fh.write(b, 0, 1, Math.floor(st.size / 2));
  await fh.close();
  await utimes(file, new Date(), new Date(st.mtimeMs + 5000));
}

const sha256 = async (file: string): Promise<string> => createHash('sha256').update(await readFile(file)).digest('hex');

function rsyncBytes(out: string): number {
  const sent = /Total bytes sent: ([\d,.]+)/.exec(out);
  const recv = /Total bytes received: ([\d,.]+)/.exec(out);
  return Number((sent?.[1] ?? '0').replace(/[,.]/g, '')) + Number((recv?.[1] ?? '0').replace(/[,.]/g, ''));
}

/** TCP payload bytes of established connections to `ports`, per connection (client end). */
async function tcpBytes(ports: number[]): Promise<Map<string, number>> {
  const filter = ports.map((p) => `dport = :${p}`).join(' or ');
  const { stdout } = await run('ss', ['-tinH', 'state', 'established', `( ${filter} )`], { maxBuffer: 1 << 24 });
  const out = new Map<string, number>();
  let key = '';
  for (const line of stdout.split('\n')) {
    const conn = /^\s*\d+\s+\d+\s+(\S+)\s+(\S+)/.exec(line);
    if (conn !== null) {
      key = `${conn[1]}>${conn[2]}`;
      continue;
    }
    const s = /bytes_sent:(\d+)/.exec(line);
    const r = /bytes_received:(\d+)/.exec(line);
    if (key !== '' && (s !== null || r !== null)) out.set(key, Number(s?.[1] ?? 0) + Number(r?.[1] ?? 0));
  }
  return out;
}

const bytesSince = (before: Map<string, number>, after: Map<string, number>): number => {
  let n = 0;
  for (const [k, v] of after) n += v - (before.get(k) ?? 0);
  return n;
};

// ------------------------------------------------------------------ agents in processes

interface Proc {
  name: string;
  root: string;
  child: ChildProcess;
  port: number;
}

class ProcCluster {
  readonly dir: string;
  readonly pki: Pki;
  readonly procs = new Map<string, Proc>();
  #members: Member[] = [];
  #seq = 0;
  readonly #tls = new Map<string, unknown>();

  private constructor(dir: string, pki: Pki) {
    this.dir = dir;
    this.pki = pki;
  }

  static async create(): Promise<ProcCluster> {
    return new ProcCluster(await mkdtemp(join(tmpdir(), 'multiall-fsbench-')), await makePki());
  }

  root(name: string): string {
    return join(this.dir, name, 'tree');
  }

  #request(p: Proc, msg: Record<string, unknown>): Promise<{ value?: unknown }> {
    const id = ++this.#seq;
    return new Promise((resolve, reject) => {
      const on = (m: { op: string; id?: number; value?: unknown }): void => {
        if (m.op === 'done' && m.id === id) {
          p.child.off('message', on);
          resolve(m);
        }
      };
      p.child.on('message', on);
      p.child.once('exit', (code) => reject(new Error(`agent ${p.name} exited (${code})`)));
      p.child.send({ ...msg, id });
    });
  }

  /** Forks the agent process and waits until it listens (process start-up is not timed). */
  async spawn(name: string): Promise<void> {
    await mkdir(this.root(name), { recursive: true });
    // FS_BENCH_PROF=<dir>: CPU profile of every agent process (node --cpu-prof).
    const prof = process.env.FS_BENCH_PROF;
    const child = fork(new URL('./agent-proc.ts', import.meta.url), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: prof === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${prof}`],
    });
    const port = await new Promise<number>((resolve) => {
      const on = (m: { op: string; port?: number }): void => {
        if (m.op === 'listening') {
          child.off('message', on);
          resolve(m.port!);
        }
      };
      child.on('message', on);
      child.send({ op: 'start', name, root: this.root(name), dbPath: join(this.dir, `${name}.db`), tls: this.#tls.get(name), tree: { debounceMs: 100 } });
    });
    this.procs.set(name, { name, root: this.root(name), child, port });
  }

  /** Makes it a member: it starts (scans) on its first member list; the others learn about it. */
  async join(name: string): Promise<void> {
    const joined = [...this.#members.map((m) => m.name), name];
    this.#members = joined.map((n) => {
      const x = this.procs.get(n)!;
      return { name: n, alive: true, address: { name: n, host: '127.0.0.1', port: x.port } };
    });
    await Promise.all(joined.map((n) => new Promise<void>((resolve) => {
      const x = this.procs.get(n)!;
      const on = (m: { op: string }): void => {
        if (m.op === 'members-ok') {
          x.child.off('message', on);
          resolve();
        }
      };
      x.child.on('message', on);
      x.child.send({ op: 'members', members: this.#members });
    })));
  }

  async start(name: string): Promise<void> {
    this.#tls.set(name, await this.pki.files(name));
    await this.spawn(name);
    await this.join(name);
  }

  async prepare(name: string): Promise<void> {
    this.#tls.set(name, await this.pki.files(name));
    await this.spawn(name);
  }

  wait(name: string, cond: Record<string, unknown>): Promise<unknown> {
    return this.#request(this.procs.get(name)!, { op: 'wait', cond });
  }

  async hash(name: string, path: string): Promise<string | null> {
    return (await this.#request(this.procs.get(name)!, { op: 'hash', path })).value as string | null;
  }

  scan(name: string): Promise<unknown> {
    return this.#request(this.procs.get(name)!, { op: 'scan' });
  }

  ports(): number[] {
    return [...this.procs.values()].map((p) => p.port);
  }

  async close(): Promise<void> {
    await Promise.all([...this.procs.values()].map((p) => new Promise<void>((resolve) => {
      p.child.once('exit', () => resolve());
      p.child.send({ op: 'stop' });
      setTimeout(() => p.child.kill('SIGKILL'), 10_000).unref();
    })));
    await this.pki.cleanup();
    await rm(this.dir, { recursive: true, force: true });
  }
}

type Result = Record<string, number>;

async function benchMultiall(): Promise<Result> {
  const c = await ProcCluster.create();
  try {
    await generate(c.root('a'));
    await c.start('a'); // scans and hashes the generated data
    const total = SMALL + 3;
    const lastHash = (await c.hash('a', 'large2.bin'))!;
    await c.prepare('b');
    let before = await tcpBytes(c.ports());
    let t = performance.now();
    await c.join('b');
    await c.wait('b', { kind: 'hash', path: 'large2.bin', hash: lastHash });
    await c.wait('b', { kind: 'entries', n: total + 50 });
    const initialMs = performance.now() - t;
    const initialBytes = bytesSince(before, await tcpBytes(c.ports()));

    const file = join(c.root('a'), 'large1.bin');
    await flipMiddle(file);
    const want = await sha256(file);
    before = await tcpBytes(c.ports());
    t = performance.now();
    await c.scan('a');
    await c.wait('b', { kind: 'hash', path: 'large1.bin', hash: want });
    const editMs = performance.now() - t;
    const editBytes = bytesSince(before, await tcpBytes(c.ports()));

    t = performance.now();
    await writeFile(join(c.root('a'), 'd1', 'f1.txt'), 'small change');
    await c.wait('b', { kind: 'content', path: 'd1/f1.txt', text: 'small change' });
    const smallChangeMs = performance.now() - t;
    return { initialMs, initialBytes, editMs, editBytes, smallChangeMs };
  } finally {
    await c.close();
  }
}

/** Time until a small change on `a` is visible on every peer (median of 5 changes). */
async function benchFanout(peers: number): Promise<number[]> {
  const c = await ProcCluster.create();
  const names = Array.from({ length: peers }, (_, i) => `p${i + 1}`);
  try {
    await generate(c.root('a'), 100, 1, 0);
    await c.start('a');
    for (const n of names) await c.start(n);
    for (const n of names) await c.wait(n, { kind: 'entries', n: 150 });
    const out: number[] = [];
    for (let k = 0; k < 5; k++) {
      const text = `change ${k}`;
      const t = performance.now();
      await writeFile(join(c.root('a'), 'd3', 'f3.txt'), text);
      await Promise.all(names.map((n) => c.wait(n, { kind: 'content', path: 'd3/f3.txt', text })));
      out.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 300));
    }
    return out;
  } finally {
    await c.close();
  }
}

async function benchRsync(): Promise<Result> {
  const base = await mkdtemp(join(tmpdir(), 'multiall-rsbench-'));
  const src = join(base, 'rsync-src');
  const dst = join(base, 'rsync-dst');
  await mkdir(src, { recursive: true });
  await mkdir(dst, { recursive: true });
  await generate(src);
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = join(base, 'rsyncd.conf');
  await writeFile(conf, `port = ${port}\naddress = 127.0.0.1\nuse chroot = no\npid file = ${join(base, 'rsyncd.pid')}\n[m]\n  path = ${dst}\n  read only = no\n  uid = ${process.getuid?.() ?? 0}\n  gid = ${process.getgid?.() ?? 0}\n`);
  const daemon = spawn('rsync', ['--daemon', '--no-detach', `--config=${conf}`], { stdio: 'ignore' });
  try {
    const end = Date.now() + 10_000;
    while (!(await run('rsync', [`rsync://127.0.0.1:${port}/`]).then(() => true, () => false))) {
      if (Date.now() > end) throw new Error('rsync daemon did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
    const url = `rsync://127.0.0.1:${port}/m/`;
    let t = performance.now();
    const r1 = await run('rsync', ['-a', '--stats', `${src}/`, url], { maxBuffer: 1 << 24 });
    const initialMs = performance.now() - t;
    await flipMiddle(join(src, 'large1.bin'));
    t = performance.now();
    const r2 = await run('rsync', ['-a', '--no-whole-file', '--stats', `${src}/`, url], { maxBuffer: 1 << 24 });
    const editMs = performance.now() - t;
    if ((await sha256(join(src, 'large1.bin'))) !== (await sha256(join(dst, 'large1.bin')))) throw new Error('rsync did not transfer the edit');
    await writeFile(join(src, 'd1', 'f1.txt'), 'small change');
    t = performance.now();
    await run('rsync', ['-a', `${src}/`, url]);
    const smallChangeMs = performance.now() - t;
    return { initialMs, initialBytes: rsyncBytes(r1.stdout), editMs, editBytes: rsyncBytes(r2.stdout), smallChangeMs };
  } finally {
    daemon.kill();
    await rm(base, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const medians = (rs: Result[]): Result => Object.fromEntries(Object.keys(rs[0]!).map((k) => [k, Math.round(median(rs.map((r) => r[k]!)))]));

const ours: Result[] = [];
const theirs: Result[] = [];
for (let i = 0; i < RUNS; i++) {
  ours.push(await benchMultiall());
  try {
    theirs.push(await benchRsync());
  } catch (e) {
    console.error(`rsync side skipped: ${(e as Error).message}`);
  }
  console.error(`run ${i + 1}/${RUNS}: multiall ${JSON.stringify(ours.at(-1))} rsync ${JSON.stringify(theirs.at(-1) ?? null)}`);
}
const fanout: number[] = [];
for (let i = 0; i < RUNS; i++) fanout.push(...(await benchFanout(PEERS)));
const m = medians(ours);
const r = theirs.length > 0 ? medians(theirs) : null;
const ratio = (k: string): number | null => (r === null || !r[k] ? null : Math.round((m[k]! / r[k]!) * 100) / 100);
console.log(`data: ${SMALL} × 2 KiB + 3 × ${LARGE_MB} MiB; medians of ${RUNS} runs`);
console.table({ multiall: m, rsync: r });
console.log(`small change visible on all ${PEERS} peers: median ${Math.round(median(fanout))} ms, max ${Math.round(Math.max(...fanout))} ms (${fanout.length} changes)`);
console.log(JSON.stringify({
  bench: 'filesync', scale, runs: RUNS, smallFiles: SMALL, largeMiB: LARGE_MB, multiall: m, rsync: r,
  ratio: { initialMs: ratio('initialMs'), initialBytes: ratio('initialBytes'), editMs: ratio('editMs'), editBytes: ratio('editBytes'), smallChangeMs: ratio('smallChangeMs') },
  fanout: { peers: PEERS, medianMs: Math.round(median(fanout)), maxMs: Math.round(Math.max(...fanout)), samples: fanout.length },
}));
