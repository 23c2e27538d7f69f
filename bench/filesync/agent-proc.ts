/**
 * One agent's file sync in a process of its own, forked by compare.ts (like a real deployment:
 * one agent per server; the sender and the receiver do not share an event loop or a libuv
 * thread pool). Real Store, RpcServer and RpcClientPool over mTLS on 127.0.0.1. Controlled over
 * the IPC channel:
 *   {op: 'start', name, root, dbPath, tls: TlsFiles, tree, trace?} → {op: 'listening', port}
 *   {op: 'members', members}  (first one starts the service)     → {op: 'members-ok'}
 *   {op: 'wait', id, cond}  polls local state every 5 ms (20 ms: entries) → {op: 'done', id}
 *   {op: 'scan', id}                                               → {op: 'done', id}
 *   {op: 'cpu', id}  CPU time (user + system, all threads) used so far, ms  → {op: 'done', id, value}
 *   {op: 'timeline', id}  debug log records since the last call (with `trace`) → {op: 'done', id, value}
 *   {op: 'stop'}                                                   → exits
 * cond: {kind: 'entries', n} (live entries ≥ n), {kind: 'synced', n, peer} (that, and a catch-up
 * with `peer` has completed: its applies ended with the directory fsyncs and the index saved),
 * {kind: 'hashes', files: [[path, hash]…]} (index
 * records have those hashes), {kind: 'content', path, text} (file on disk has that content).
 * With `trace`, the agent logs at debug level into memory, time-stamped on the shared clock
 * (performance.timeOrigin + now(), ms): the bench builds the initial sync's timeline from it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { tuneRuntime } from '../../src/agent/runtime.ts';
import { RpcServer } from '../../src/rpc/server.ts';
import { RpcClientPool } from '../../src/rpc/client.ts';
import { Store } from '../../src/state/store.ts';
import { MIGRATIONS } from '../../src/state/migrations.ts';
import { FileSyncService, type Member } from '../../src/filesync/service.ts';
import { loadTlsMaterial } from '../../src/security/tls.ts';
import type { TlsFiles } from '../../src/config/types.ts';
import type { TreeConfig } from '../../src/filesync/types.ts';
import { treeConfig } from '../../test/filesync/cluster.ts';

type Cond = { kind: 'entries'; n: number } | { kind: 'synced'; n: number; peer: string } | { kind: 'hashes'; files: [string, string][] } | { kind: 'content'; path: string; text: string };
type Msg =
  | { op: 'start'; name: string; root: string; dbPath: string; tls: TlsFiles; tree: Partial<TreeConfig>; trace?: boolean }
  | { op: 'members'; members: Member[] }
  | { op: 'wait'; id: number; cond: Cond }
  | { op: 'hash'; id: number; path: string }
  | { op: 'scan'; id: number }
  | { op: 'timeline'; id: number }
  | { op: 'cpu'; id: number }
  | { op: 'stop' };

tuneRuntime(); // as `multiall agent` does

let trace: Record<string, unknown>[] = [];
const traceLogger = (): Logger => pino({ level: 'debug', timestamp: () => `,"time":${(performance.timeOrigin + performance.now()).toFixed(2)}` }, {
  write: (line: string) => void trace.push(JSON.parse(line) as Record<string, unknown>),
});
const send = (m: unknown): void => void process.send?.(m);
let members: Member[] = [];
let svc: FileSyncService | undefined;
let root = '';
let stopAll: (() => Promise<void>) | undefined;

async function holds(c: Cond): Promise<boolean> {
  if (svc === undefined) return false;
  if (c.kind === 'entries') return svc.status('www')[0]!.entries >= c.n;
  if (c.kind === 'synced') {
    const st = svc.status('www')[0]!;
    return st.entries >= c.n && st.peers.some((p) => p.peer === c.peer && p.lastSyncAt !== null);
  }
  if (c.kind === 'hashes') return c.files.every(([path, hash]) => svc!.tree('www').record(path)?.hash === hash);
  return (await readFile(join(root, c.path), 'utf8').catch(() => null)) === c.text;
}

process.on('message', (raw) => {
  const m = raw as Msg;
  void (async () => {
    switch (m.op) {
      case 'start': {
        root = m.root;
        const logger = m.trace === true ? traceLogger() : pino({ level: process.env.FS_TEST_LOG ?? 'silent' });
        const store = new Store(m.dbPath, MIGRATIONS);
        const tls = await loadTlsMaterial(m.tls);
        const server = new RpcServer({ tls, host: '127.0.0.1', port: 0, logger });
        const pool = new RpcClientPool({ tls, logger });
        svc = new FileSyncService({
          node: m.name, store, rpc: server, peers: pool, logger, watch: true, antiEntropyMs: 60_000, rpcTimeoutMs: 60_000,
          members: () => members,
        }, [treeConfig(m.root, m.tree)]);
        const { port } = await server.listen();
        const s = svc;
        stopAll = async () => {
          await s.stop();
          await pool.close();
          await server.close({ graceMs: 1000 });
          store.close();
        };
        send({ op: 'listening', port });
        break;
      }
      case 'members': {
        const first = members.length === 0;
        members = m.members;
        if (first) await svc!.start();
        svc!.onMembersChanged();
        send({ op: 'members-ok' });
        break;
      }
      case 'wait': {
        // status() walks the index: polled less often than a single record.
        const every = m.cond.kind === 'entries' || m.cond.kind === 'synced' ? 20 : 5;
        while (!(await holds(m.cond))) await new Promise((r) => setTimeout(r, every));
        send({ op: 'done', id: m.id });
        break;
      }
      case 'hash':
        send({ op: 'done', id: m.id, value: svc?.tree('www').record(m.path)?.hash ?? null });
        break;
      case 'cpu': {
        const u = process.cpuUsage();
        send({ op: 'done', id: m.id, value: (u.user + u.system) / 1000 });
        break;
      }
      case 'timeline':
        send({ op: 'done', id: m.id, value: trace });
        trace = [];
        break;
      case 'scan':
        await svc!.scanNow('www');
        send({ op: 'done', id: m.id });
        break;
      case 'stop':
        await stopAll?.();
        process.exit(0);
    }
  })().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
});
