/**
 * The floor under a large-file transfer with MultiAll's parts on this machine, next to rsync:
 *   node bench/filesync/tls-floor.ts [runs=5] [--mb 1000] [--no-hold]
 * One file of `mb` MB (incompressible, in the page cache) goes from one process to another:
 *   rsync   `rsync -a` to an rsync daemon on 127.0.0.1 (plain TCP), as compare.ts runs it
 *   rsync-ssh  `rsync -a` over ssh to a throwaway sshd on 127.0.0.1: rsync encrypted, as between
 *           servers (skipped without openssh-server)
 *   tls     one TLS 1.3 connection with the agents' settings and certificates (mutual, pool CA);
 *           the sender writes 256 KiB pieces of 4 MiB reads, the receiver reads into one reused
 *           buffer (as the agent's RPC client does) and drops the bytes: Node.js's TLS, nothing more
 *   sha     the same, the receiver hashing every byte with SHA-256 (what MultiAll verifies with)
 *   write   the same, the receiver also writing the bytes to a file and fsyncing it
 * Each end is a process of its own (sender, receiver), as with two agents. Reported per mode:
 * wall time, CPU time of both ends (user + system, all threads), ratio to rsync. Medians of `runs`;
 * the last line is JSON. What it shows: how much of compare.ts's large-file time is the floor
 * of Node.js TLS (+ SHA-256, + a durable write) on this machine, not MultiAll's own code.
 */
import { execFile, fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { createServer, connect, type ConnectionOptions } from 'node:tls';
import type { OnReadOpts } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { benchArgs, numberArg } from '../args.ts';
import { makePki } from '../../test/security/pki.ts';
import { clientTlsOptions, serverTlsOptions, type TlsMaterial } from '../../src/security/tls.ts';
import { holdFreedMemory, settle } from './memory.ts';
import { startRsyncDaemon } from './rsyncd.ts';
import { startSshd, type SshServer } from './sshd.ts';
import { largeData } from './data.ts';
import { median } from '../stats.ts';

const run = promisify(execFile);
type Mode = 'tls' | 'sha' | 'write';
const MODES: Mode[] = ['tls', 'sha', 'write'];
interface Sample { ms: number; cpuMs: number }
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Child roles (forked by the main script below): the sender serves `file` to one connection. */
async function sender(file: string, tls: TlsMaterial): Promise<void> {
  const server = createServer(serverTlsOptions(tls), (socket) => {
    const fd = openSync(file, 'r');
    const cpu0 = cpuMs();
    const pump = (): void => {
      for (;;) {
        const buf = Buffer.allocUnsafe(4 << 20); // a fresh buffer: queued pieces keep theirs
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n === 0) {
          closeSync(fd);
          socket.end(() => process.send?.({ cpuMs: cpuMs() - cpu0 }));
          return;
        }
        let ok = true;
        for (let off = 0; off < n; off += 256 << 10) ok = socket.write(buf.subarray(off, Math.min(n, off + (256 << 10))));
        if (!ok) return void socket.once('drain', pump);
      }
    };
    pump();
  });
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as { port: number }).port }));
}

async function receiver(port: number, mode: Mode, out: string, tls: TlsMaterial): Promise<void> {
  const sha = createHash('sha256');
  const fd = mode === 'write' ? openSync(out, 'w') : -1;
  let got = 0;
  const t0 = performance.now();
  const cpu0 = cpuMs();
  const onread: OnReadOpts = {
    buffer: Buffer.allocUnsafe(64 * 1024),
    callback: (n, buf) => {
      const b = (buf as Buffer).subarray(0, n);
      got += n;
      if (mode !== 'tls') sha.update(b);
      if (fd >= 0) writeSync(fd, b);
      return true;
    },
  };
  const options: ConnectionOptions & { onread: OnReadOpts } = { ...clientTlsOptions(tls, 'sender'), host: '127.0.0.1', port, onread };
  const socket = connect(options);
  await once(socket, 'end');
  if (mode !== 'tls') sha.digest();
  if (fd >= 0) {
    fsyncSync(fd);
    closeSync(fd);
  }
  process.send?.({ ms: performance.now() - t0, cpuMs: cpuMs() - cpu0, bytes: got });
  socket.destroy();
}

const role = process.argv[2];
if (role === '--sender' || role === '--receiver') {
  const tls = JSON.parse(process.env.FLOOR_TLS!) as TlsMaterial;
  if (role === '--sender') await sender(process.argv[3]!, tls);
  else await receiver(Number(process.argv[3]), process.argv[4] as Mode, process.argv[5]!, tls);
} else {
  const USAGE = 'node bench/filesync/tls-floor.ts [runs=5] [--mb 1000] [--no-hold]';
  const { values: opt, positionals } = benchArgs({ allowPositionals: true, options: { mb: { type: 'string', default: '1000' }, 'no-hold': { type: 'boolean', default: false } } }, USAGE);
  const RUNS = numberArg('runs', positionals[0] ?? '5', USAGE, { min: 1 });
  const BYTES = numberArg('--mb', opt.mb, USAGE, { min: 1 }) * 1_000_000;
  if (!opt['no-hold']) holdFreedMemory();
  const base = await mkdtemp(join(tmpdir(), 'multiall-tlsfloor-'));
  const pki = await makePki();
  const cleanup = async (): Promise<void> => {
    await rm(base, { recursive: true, force: true });
    await pki.cleanup();
  };
  try {
    const src = join(base, 'src');
    const dst = join(base, 'dst');
    await mkdir(src);
    await mkdir(dst);
    const file = join(src, 'large.bin');
    await writeFile(file, largeData(BYTES, 1));
    const tlsOf = async (name: string): Promise<TlsMaterial> => {
      const f = await pki.files(name);
      const [ca, cert, key] = await Promise.all([readFile(f.ca, 'utf8'), readFile(f.cert, 'utf8'), readFile(f.key, 'utf8')]);
      return { ca, cert, key, nodeName: name, notAfter: new Date(), files: f };
    };
    const [sendTls, recvTls] = [await tlsOf('sender'), await tlsOf('receiver')];
    const daemon = await startRsyncDaemon(base, { m: dst });
    const sshd: SshServer | null = await startSshd(base).catch((e: unknown) => {
      console.error(`rsync over ssh skipped: ${(e as Error).message}`);
      return null;
    });
    const rows = ['rsync', ...(sshd === null ? [] : ['rsync-ssh']), ...MODES];
    const samples: Record<string, { ms: number[]; cpuMs: number[] }> = Object.fromEntries(rows.map((k) => [k, { ms: [], cpuMs: [] }]));
    const record = (k: string, s: Sample): void => {
      samples[k]!.ms.push(s.ms);
      samples[k]!.cpuMs.push(s.cpuMs);
    };
    try {
      // CPU of the client (`time`: rsync and its ssh) and of the server's process for this
      // connection (reaped by then).
      const rsyncRun = async (row: string, args: string[], server: { childCpuMs(): number }): Promise<void> => {
        await rm(join(dst, 'large.bin'), { force: true });
        await settle(BYTES * 1.25);
        const serverCpu0 = server.childCpuMs();
        const t = performance.now();
        const r = await run('/usr/bin/time', ['-f', '%U %S', 'rsync', '-a', ...args]);
        const ms = performance.now() - t;
        await new Promise((res) => setTimeout(res, 200));
        const [u, s] = r.stderr.trim().split('\n').at(-1)!.split(' ').map(Number);
        record(row, { ms, cpuMs: (u! + s!) * 1000 + server.childCpuMs() - serverCpu0 });
      };
      for (let i = 0; i < RUNS; i++) {
        await rsyncRun('rsync', [`${src}/`, daemon.url('m')], daemon);
        if (sshd !== null) await rsyncRun('rsync-ssh', ['-e', sshd.rsh, `${src}/`, sshd.target(dst)], sshd);
        for (const mode of MODES) {
          const out = join(dst, `tls-${mode}.bin`);
          await rm(out, { force: true });
          await settle(BYTES * 1.25);
          record(mode, await tlsRun(file, mode, out, sendTls, recvTls));
          await rm(out, { force: true });
        }
        console.log(`run ${i + 1}/${RUNS}: ${Object.entries(samples).map(([k, v]) => `${k} ${Math.round(v.ms.at(-1)!)} ms`).join(', ')}`);
      }
    } finally {
      sshd?.stop();
      daemon.stop();
    }
    const med = (xs: number[]): number => Math.round(median(xs));
    const rsyncMs = med(samples.rsync!.ms);
    const table = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, { ms: med(v.ms), cpuMs: med(v.cpuMs), ratio: Math.round((med(v.ms) / rsyncMs) * 100) / 100 }]));
    console.log(`one file of ${BYTES / 1e6} MB; medians of ${RUNS} runs; CPU = both ends, all threads (rsync: its client, its ssh, and the server's connection process)`);
    console.table(table);
    console.log(JSON.stringify({ bench: 'filesync-tls-floor', mb: BYTES / 1e6, runs: RUNS, ...table }));
  } finally {
    await cleanup();
  }
}

/** One TLS transfer: a sender and a receiver process; wall time at the receiver, CPU of both. */
async function tlsRun(file: string, mode: Mode, out: string, sendTls: TlsMaterial, recvTls: TlsMaterial): Promise<Sample> {
  const self = new URL(import.meta.url);
  const env = (tls: TlsMaterial): NodeJS.ProcessEnv => ({ ...process.env, FLOOR_TLS: JSON.stringify(tls) });
  const s = fork(self, ['--sender', file], { env: env(sendTls) });
  try {
    const [{ port }] = (await once(s, 'message')) as [{ port: number }];
    const sentCpu = once(s, 'message') as Promise<[{ cpuMs: number }]>;
    const r = fork(self, ['--receiver', String(port), mode, out], { env: env(recvTls) });
    const [got] = (await once(r, 'message')) as [{ ms: number; cpuMs: number; bytes: number }];
    const [{ cpuMs: senderCpu }] = await sentCpu;
    r.kill();
    const size = (await stat(file)).size;
    if (got.bytes !== size) throw new Error(`receiver got ${got.bytes} of ${size} bytes (${mode})`);
    return { ms: got.ms, cpuMs: got.cpuMs + senderCpu };
  } finally {
    s.kill();
  }
}
