/**
 * Side-by-side benchmark: MultiAll file sync (two in-process agents over loopback mTLS) vs
 * rsync (daemon on 127.0.0.1, plain TCP, generated rsyncd.conf) on data this script generates.
 *   node bench/filesync/compare.ts [scale=1]
 * scale 1 = 2000 small files (2 KiB) + 3 large files (32 MiB). Cases:
 *   1. initial sync: wall time and bytes on the wire
 *   2. 1-byte edit in the middle of a large file: bytes on the wire and time
 *   3. time until a small change is visible on the peer (MultiAll: watcher, debounce 100 ms;
 *      rsync: one run, i.e. the lower bound of what lsyncd achieves after its own delay)
 * Prints a final JSON line {"bench":"filesync",...}. Needs rsync in PATH.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeCluster, waitFor } from '../../test/filesync/cluster.ts';
import { pseudoRandom } from '../../test/filesync/helpers.ts';

const run = promisify(execFile);
const scale = Number(process.argv[2] ?? '1');
const SMALL = Math.max(10, Math.round(2000 * scale));
const LARGE_MB = Math.max(1, Math.round(32 * scale));

async function generate(dir: string): Promise<void> {
  for (let i = 0; i < SMALL; i++) {
    const d = join(dir, `d${i % 50}`);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, `f${i}.txt`), pseudoRandom(2048, i + 1));
  }
  for (let i = 0; i < 3; i++) await writeFile(join(dir, `large${i}.bin`), pseudoRandom(LARGE_MB * 1024 * 1024, 1000 + i));
}

async function flipMiddle(file: string): Promise<void> {
  const size = (await stat(file)).size;
  const fh = await open(file, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, Math.floor(size / 2));
  b[0] = b[0]! ^ 0xff;
  await fh.write(b, 0, 1, Math.floor(size / 2));
  await fh.close();
}

function rsyncBytes(out: string): number {
  const sent = /Total bytes sent: ([\d,.]+)/.exec(out);
  const recv = /Total bytes received: ([\d,.]+)/.exec(out);
  return Number((sent?.[1] ?? '0').replace(/[,.]/g, '')) + Number((recv?.[1] ?? '0').replace(/[,.]/g, ''));
}

async function benchRsync(base: string): Promise<Record<string, number>> {
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
    await waitFor('rsync daemon', async () => (await run('rsync', [`rsync://127.0.0.1:${port}/`]).then(() => true, () => false)), 10_000);
    const url = `rsync://127.0.0.1:${port}/m/`;
    let t = performance.now();
    const r1 = await run('rsync', ['-a', '--stats', `${src}/`, url], { maxBuffer: 1 << 24 });
    const initialMs = performance.now() - t;
    await flipMiddle(join(src, 'large1.bin'));
    t = performance.now();
    const r2 = await run('rsync', ['-a', '--no-whole-file', '--stats', `${src}/`, url], { maxBuffer: 1 << 24 });
    const editMs = performance.now() - t;
    await writeFile(join(src, 'd1', 'f1.txt'), 'small change');
    t = performance.now();
    await run('rsync', ['-a', `${src}/`, url]);
    const smallMs = performance.now() - t;
    return { initialMs, initialBytes: rsyncBytes(r1.stdout), editMs, editBytes: rsyncBytes(r2.stdout), smallChangeMs: smallMs };
  } finally {
    daemon.kill();
  }
}

async function benchMultiall(): Promise<{ result: Record<string, number>; base: string; close: () => Promise<void> }> {
  const c = await makeCluster({ names: ['a', 'b'], watch: true, tree: { debounceMs: 100 } });
  const aRoot = join(c.dir, 'a', 'tree');
  await mkdir(aRoot, { recursive: true });
  await generate(aRoot);
  const total = SMALL + 3;
  const a = await c.start('a'); // scans and hashes the generated data
  const wire = (): number => {
    const s = a.svc.status('www')[0]!.bytes;
    return s.sent + s.sigReceived;
  };
  const synced = (path: string): boolean => c.node('b').svc.tree('www').record(path)?.hash === a.svc.tree('www').record(path)?.hash;
  let t = performance.now();
  await c.start('b');
  await waitFor('initial sync', () => c.node('b').svc.status('www')[0]!.entries >= total + 50 && synced('large2.bin'), 600_000);
  const initialMs = performance.now() - t;
  const initialBytes = wire();
  const w0 = wire();
  await flipMiddle(join(aRoot, 'large1.bin'));
  t = performance.now();
  await a.svc.scanNow('www');
  await waitFor('edit synced', () => synced('large1.bin'), 120_000);
  const editMs = performance.now() - t;
  const editBytes = wire() - w0;
  t = performance.now();
  await writeFile(join(aRoot, 'd1', 'f1.txt'), 'small change');
  await waitFor('small change visible', async () => (await readFile(join(c.node('b').root, 'd1', 'f1.txt'), 'utf8').catch(() => '')) === 'small change', 60_000);
  const smallMs = performance.now() - t;
  return { result: { initialMs, initialBytes, editMs, editBytes, smallChangeMs: smallMs }, base: c.dir, close: () => c.close() };
}

const m = await benchMultiall();
let r: Record<string, number> | null = null;
try {
  r = await benchRsync(m.base);
} catch (e) {
  console.error(`rsync side skipped: ${(e as Error).message}`);
}
await m.close();
const round = (o: Record<string, number> | null): Record<string, number> | null => (o === null ? null : Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v)])));
const ratio = (k: string): number | null => (r === null || !r[k] ? null : Math.round((m.result[k]! / r[k]!) * 100) / 100);
console.log(`data: ${SMALL} × 2 KiB + 3 × ${LARGE_MB} MiB`);
console.table({ multiall: round(m.result), rsync: round(r) });
console.log(JSON.stringify({
  bench: 'filesync', scale, smallFiles: SMALL, largeMiB: LARGE_MB, multiall: round(m.result), rsync: round(r),
  ratio: { initialMs: ratio('initialMs'), initialBytes: ratio('initialBytes'), editMs: ratio('editMs'), editBytes: ratio('editBytes'), smallChangeMs: ratio('smallChangeMs') },
}));
