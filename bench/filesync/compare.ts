/**
 * Side-by-side benchmark: MultiAll file sync vs rsync on data this script generates.
 *   node bench/filesync/compare.ts [scale=1] [runs=3] [peers=5] [options]
 * Options: --preset issue (the issue's data set: 10,000 small files + 20 × 50 MB), --small N,
 * --large N, --large-mb N (override the scale), --initial-only (skip the edit, small-change and
 * fan-out cases), --timeline (print when each step of MultiAll's initial sync happened),
 * --no-hold (leave the VM's free page reporting alone: see holdFreedMemory()).
 * MultiAll: one agent per process (bench/filesync/agent-proc.ts: real Store, RPC server and client
 * pool over loopback mTLS, watcher on, debounce 100 ms), like one agent per server. rsync: a
 * daemon on 127.0.0.1 (plain TCP, generated rsyncd.conf) and the rsync client, `-a`, no `-z`
 * (MultiAll compresses nothing either), no `--fsync` (MultiAll fsyncs every file before its
 * rename, and each directory once per batch); `rsync -a --fsync` (durability like MultiAll's)
 * and `rsync -a` over ssh (encrypted like MultiAll, as between servers; a throwaway sshd on
 * 127.0.0.1, skipped without openssh-server) are reported as more initial-sync columns.
 * scale 1 = 2000 small files (2 KiB, in 50 directories) + 3 large files (32 MiB). Cases:
 *   1. initial sync to an empty peer: wall time and bytes on the wire
 *   2. 1-byte edit in the middle of a large file (its mtime moved +5 s, so rsync's quick check
 *      cannot miss it): bytes and time (MultiAll: incl. the scan that finds it)
 *   3. time until a small change is visible on the peer (MultiAll: the watcher notices it;
 *      rsync: one run, i.e. the lower bound of what lsyncd achieves after its own delay)
 *   4. MultiAll only: time until a small change is visible on every one of `peers` peers
 *      (1 + peers processes, 100-file tree, 5 changes; median)
 * Every timed initial sync starts after a `sync` (the generated data's dirty pages written back),
 * so neither side pays for the other's or the generator's writeback, and with warm memory for
 * its page cache (see settle()), so neither side pays the VM host's page faults the other did not.
 * Bytes on the wire: rsync's own "Total bytes sent + received"; MultiAll: TCP payload (TLS
 * records, handshakes included) of every agent-to-agent connection, from `ss -ti` counters
 * (bytes_sent + bytes_received of the client end), before/after each case.
 * Each case runs `runs` times (fresh data); medians are reported. Last line: JSON.
 */
import { execFile, fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { benchArgs, numberArg, usageError } from '../args.ts';
import { startRsyncDaemon } from './rsyncd.ts';
import { startSshd, type SshServer } from './sshd.ts';
import { holdFreedMemory, settle } from './memory.ts';
import { largeData } from './data.ts';
import { median } from '../stats.ts';
import { pseudoRandom } from '../../test/filesync/helpers.ts';
import { makePki, type Pki } from '../../test/security/pki.ts';
import type { Member } from '../../src/filesync/service.ts';

const run = promisify(execFile);
const USAGE = 'node bench/filesync/compare.ts [scale=1] [runs=3] [peers=5] [--preset issue] [--small N] [--large N] [--large-mb N] [--initial-only] [--timeline] [--no-hold]';
const { values: opt, positionals } = benchArgs({
  allowPositionals: true,
  options: {
    preset: { type: 'string' }, small: { type: 'string' }, large: { type: 'string' }, 'large-mb': { type: 'string' },
    'initial-only': { type: 'boolean', default: false }, timeline: { type: 'boolean', default: false }, 'no-hold': { type: 'boolean', default: false },
  },
}, USAGE);
if (opt.preset !== undefined && opt.preset !== 'issue') usageError(`unknown --preset ${JSON.stringify(opt.preset)} (known: issue)`, USAGE);
const issue = opt.preset === 'issue';
const scale = numberArg('scale', positionals[0] ?? '1', USAGE, { min: 0.01, fraction: true });
const RUNS = numberArg('runs', positionals[1] ?? '3', USAGE, { min: 1 });
const PEERS = numberArg('peers', positionals[2] ?? '5', USAGE, { min: 1 });
const SMALL = numberArg('--small', opt.small ?? String(issue ? 10_000 : Math.max(10, Math.round(2000 * scale))), USAGE, { min: 10 });
// The edit case uses large1.bin.
const LARGE = numberArg('--large', opt.large ?? String(issue ? 20 : 3), USAGE, { min: 2 });
/** Size of a large file: the issue's "50 MB" is 50,000,000 bytes; the scale gives MiB. */
const LARGE_BYTES = opt['large-mb'] !== undefined ? numberArg('--large-mb', opt['large-mb'], USAGE, { min: 0.005, fraction: true }) * 1_000_000 : issue ? 50_000_000 : Math.max(1, Math.round(32 * scale)) * 1024 * 1024;
const INITIAL_ONLY = opt['initial-only'];


async function generate(dir: string, small = SMALL, largeBytes = LARGE_BYTES, large = LARGE): Promise<void> {
  for (let i = 0; i < small; i++) {
    const d = join(dir, `d${i % 50}`);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, `f${i}.txt`), pseudoRandom(2048, i + 1));
  }
  for (let i = 0; i < large; i++) await writeFile(join(dir, `large${i}.bin`), largeData(largeBytes, 1000 + i));
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
      const exit = (code: number | null): void => reject(new Error(`agent ${p.name} exited (${code})`));
      const on = (m: { op: string; id?: number; value?: unknown }): void => {
        if (m.op === 'done' && m.id === id) {
          p.child.off('message', on);
          p.child.off('exit', exit);
          resolve(m);
        }
      };
      p.child.on('message', on);
      p.child.once('exit', exit);
      p.child.send({ ...msg, id });
    });
  }

  /** Forks the agent process and waits until it listens (process start-up is not timed). */
  async spawn(name: string, trace = false): Promise<void> {
    await mkdir(this.root(name), { recursive: true });
    // FS_BENCH_PROF=<dir>: CPU profile of every agent process (node --cpu-prof).
    const prof = process.env.FS_BENCH_PROF;
    const child = fork(new URL('./agent-proc.ts', import.meta.url), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [...(prof === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${prof}`]), ...(process.env.FS_BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? [])],
    });
    const port = await new Promise<number>((resolve) => {
      const on = (m: { op: string; port?: number }): void => {
        if (m.op === 'listening') {
          child.off('message', on);
          resolve(m.port!);
        }
      };
      child.on('message', on);
      child.send({ op: 'start', name, root: this.root(name), dbPath: join(this.dir, `${name}.db`), tls: this.#tls.get(name), tree: { debounceMs: 100 }, trace });
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

  async prepare(name: string, trace = false): Promise<void> {
    this.#tls.set(name, await this.pki.files(name));
    await this.spawn(name, trace);
  }

  async cpu(name: string): Promise<number> {
    return (await this.#request(this.procs.get(name)!, { op: 'cpu' })).value as number;
  }

  async timeline(name: string): Promise<Record<string, unknown>[]> {
    return (await this.#request(this.procs.get(name)!, { op: 'timeline' })).value as Record<string, unknown>[];
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

/** Same clock in every process: ms since the epoch, sub-ms resolution. */
const now = (): number => performance.timeOrigin + performance.now();

/** Milestones of one initial sync, ms after the join, from the receiver's debug log. */
function milestones(log: Record<string, unknown>[], t0: number, endMs: number): Result {
  const at = (msg: string, pick: 'first' | 'last' = 'first', ok: (r: Record<string, unknown>) => boolean = () => true): number => {
    const hits = log.filter((r) => r.msg === msg && ok(r));
    const r = pick === 'first' ? hits[0] : hits.at(-1);
    return r === undefined ? NaN : Math.round((r.time as number) - t0);
  };
  const large = (r: Record<string, unknown>): boolean => r.files === 1 && (r.bytes as number) >= LARGE_BYTES;
  return {
    firstContact: at('catch-up: comparing summaries'),
    summary: at('catch-up: summary received'),
    firstEntriesPage: at('catch-up: entries page received'),
    lastEntriesPage: at('catch-up: entries page received', 'last'),
    firstFetchOpened: at('fetch: stream opened'),
    firstStreamDone: at('fetch: stream done'),
    smallDone: at('fetch: stream done', 'last', (r) => !large(r)),
    largeDone: at('fetch: stream done', 'last', large),
    contentDone: at('apply: content done', 'last'),
    indexSaved: at('apply: index saved', 'last'),
    end: Math.round(endMs),
  };
}
const timelines: Result[] = [];

if (!opt['no-hold']) holdFreedMemory();
/** Bytes of the generated data set. */
const DATA_BYTES = SMALL * 2048 + LARGE * LARGE_BYTES;
const WARM_BYTES = Math.round(DATA_BYTES * 1.25) + (64 << 20);

async function benchMultiall(): Promise<Result> {
  const c = await ProcCluster.create();
  try {
    await generate(c.root('a'));
    await c.start('a'); // scans and hashes the generated data
    const total = SMALL + LARGE;
    const large: [string, string][] = [];
    for (let i = 0; i < LARGE; i++) large.push([`large${i}.bin`, (await c.hash('a', `large${i}.bin`))!]);
    await c.prepare('b', opt.timeline);
    await settle(WARM_BYTES);
    let before = await tcpBytes(c.ports());
    const cpu0 = [await c.cpu('a'), await c.cpu('b')];
    const t0 = now();
    let t = performance.now();
    await c.join('b');
    await c.wait('b', { kind: 'hashes', files: large });
    // Every entry (+ the directories) in the index and the catch-up over: its applies ended with
    // the directory fsyncs and the index saved in the Store.
    await c.wait('b', { kind: 'synced', n: total + Math.min(50, SMALL), peer: 'a' });
    const initialMs = performance.now() - t;
    const initialBytes = bytesSince(before, await tcpBytes(c.ports()));
    // CPU time of the sender and the receiver process (all threads) during the initial sync.
    const initialCpuSender = (await c.cpu('a')) - cpu0[0]!;
    const initialCpuReceiver = (await c.cpu('b')) - cpu0[1]!;
    if (opt.timeline) {
      const log = await c.timeline('b');
      timelines.push(milestones(log, t0, initialMs));
      // FS_BENCH_TIMELINE_DUMP=<file>: the raw records too (time made relative to the join).
      const dump = process.env.FS_BENCH_TIMELINE_DUMP;
      if (dump !== undefined) await writeFile(dump, log.map((r) => JSON.stringify({ ...r, time: Math.round((r.time as number) - t0) })).join('\n'));
    }
    if (INITIAL_ONLY) return { initialMs, initialBytes, initialCpuSender, initialCpuReceiver };

    const file = join(c.root('a'), 'large1.bin');
    await flipMiddle(file);
    const want = await sha256(file);
    before = await tcpBytes(c.ports());
    t = performance.now();
    await c.scan('a');
    await c.wait('b', { kind: 'hashes', files: [['large1.bin', want]] });
    const editMs = performance.now() - t;
    const editBytes = bytesSince(before, await tcpBytes(c.ports()));

    t = performance.now();
    await writeFile(join(c.root('a'), 'd1', 'f1.txt'), 'small change');
    await c.wait('b', { kind: 'content', path: 'd1/f1.txt', text: 'small change' });
    const smallChangeMs = performance.now() - t;
    return { initialMs, initialBytes, initialCpuSender, initialCpuReceiver, editMs, editBytes, smallChangeMs };
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
  const dstFsync = join(base, 'rsync-dst-fsync');
  const dstSsh = join(base, 'rsync-dst-ssh');
  for (const d of [src, dst, dstFsync, dstSsh]) await mkdir(d, { recursive: true });
  await generate(src);
  const daemon = await startRsyncDaemon(base, { m: dst, f: dstFsync });
  let sshd: SshServer | null = null;
  try {
    sshd = await startSshd(base).catch((e: unknown) => {
      console.error(`rsync over ssh skipped: ${(e as Error).message}`);
      return null;
    });
    const url = daemon.url('m');
    await settle(WARM_BYTES);
    let t = performance.now();
    const r1 = await run('rsync', ['-a', '--stats', `${src}/`, url], { maxBuffer: 1 << 24 });
    const initialMs = performance.now() - t;
    // Durability like MultiAll's (every file fsynced): a reference column, not the target.
    await settle(WARM_BYTES);
    t = performance.now();
    await run('rsync', ['-a', '--fsync', `${src}/`, daemon.url('f')], { maxBuffer: 1 << 24 });
    const initialFsyncMs = performance.now() - t;
    // Encrypted like MultiAll's mTLS, the way rsync runs between servers: a reference column too.
    const ssh: Result = {};
    if (sshd !== null) {
      await settle(WARM_BYTES);
      t = performance.now();
      await run('rsync', ['-a', '-e', sshd.rsh, `${src}/`, sshd.target(dstSsh)], { maxBuffer: 1 << 24 });
      ssh.initialSshMs = performance.now() - t;
    }
    const initial = { initialMs, initialBytes: rsyncBytes(r1.stdout), initialFsyncMs, ...ssh };
    if (INITIAL_ONLY) return initial;
    await flipMiddle(join(src, 'large1.bin'));
    t = performance.now();
    const r2 = await run('rsync', ['-a', '--no-whole-file', '--stats', `${src}/`, url], { maxBuffer: 1 << 24 });
    const editMs = performance.now() - t;
    if ((await sha256(join(src, 'large1.bin'))) !== (await sha256(join(dst, 'large1.bin')))) throw new Error('rsync did not transfer the edit');
    await writeFile(join(src, 'd1', 'f1.txt'), 'small change');
    t = performance.now();
    await run('rsync', ['-a', `${src}/`, url]);
    const smallChangeMs = performance.now() - t;
    return { ...initial, editMs, editBytes: rsyncBytes(r2.stdout), smallChangeMs };
  } finally {
    sshd?.stop();
    daemon.stop();
    await rm(base, { recursive: true, force: true });
  }
}

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
if (!INITIAL_ONLY) for (let i = 0; i < RUNS; i++) fanout.push(...(await benchFanout(PEERS)));
const m = medians(ours);
const r = theirs.length > 0 ? medians(theirs) : null;
/** Our median of `k` (default: the same key) over rsync's median of `theirsKey`. */
const ratio = (theirsKey: string, k = theirsKey): number | null => (r === null || !r[theirsKey] ? null : Math.round((m[k]! / r[theirsKey]!) * 100) / 100);
console.log(`data: ${SMALL} × 2 KiB + ${LARGE} × ${LARGE_BYTES} B; medians of ${RUNS} runs; load average ${(await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')}`);
console.table({ multiall: m, rsync: r });
if (timelines.length > 0) {
  console.log('initial sync timeline (ms after the join, receiver\'s log; median of runs):');
  console.table(medians(timelines));
}
if (fanout.length > 0) console.log(`small change visible on all ${PEERS} peers: median ${Math.round(median(fanout))} ms, max ${Math.round(Math.max(...fanout))} ms (${fanout.length} changes)`);
console.log(JSON.stringify({
  bench: 'filesync', scale, runs: RUNS, smallFiles: SMALL, largeFiles: LARGE, largeBytes: LARGE_BYTES, multiall: m, rsync: r,
  ratio: {
    initialMs: ratio('initialMs'), initialVsFsyncMs: ratio('initialFsyncMs', 'initialMs'), initialVsSshMs: ratio('initialSshMs', 'initialMs'),
    initialBytes: ratio('initialBytes'), editMs: ratio('editMs'), editBytes: ratio('editBytes'), smallChangeMs: ratio('smallChangeMs'),
  },
  ...(fanout.length > 0 ? { fanout: { peers: PEERS, medianMs: Math.round(median(fanout)), maxMs: Math.round(Math.max(...fanout)), samples: fanout.length } } : {}),
}));
