/**
 * Test cluster for the networked file sync: N nodes in one process, each with its own Store,
 * real RpcServer + RpcClientPool on 127.0.0.1 (own port, own certificate from a test pool CA)
 * and its own tree root in a temp dir. Membership is a shared table the test edits (alive flag,
 * addresses); nodes can be stopped and restarted on the same state database and root.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { RpcServer } from '../../src/rpc/server.ts';
import { RpcClientPool, type PeerAddress } from '../../src/rpc/client.ts';
import { EventBus, type BusEvent } from '../../src/events/bus.ts';
import type { TlsMaterial } from '../../src/security/tls.ts';
import { Store } from '../../src/state/store.ts';
import { MIGRATIONS } from '../../src/state/migrations.ts';
import { FileSyncService, type Member } from '../../src/filesync/service.ts';
import type { TreeConfig } from '../../src/filesync/types.ts';
import type { OwnerNames } from '../../src/filesync/owners.ts';
import { makePki, type Pki } from '../security/pki.ts';

export const logger = pino({ level: process.env.FS_TEST_LOG ?? 'silent' });

export interface TestNode {
  name: string;
  root: string;
  dbPath: string;
  tls: TlsMaterial;
  svc: FileSyncService;
  store: Store;
  server: RpcServer;
  pool: RpcClientPool;
  events: BusEvent[];
  running: boolean;
}

export interface Cluster {
  dir: string;
  pki: Pki;
  nodes: Map<string, TestNode>;
  members: Map<string, Member & { pools: string[] }>;
  node(name: string): TestNode;
  start(name: string): Promise<TestNode>;
  stop(name: string): Promise<void>;
  close(): Promise<void>;
}

export interface ClusterOptions {
  names: string[];
  tree?: Partial<TreeConfig>;
  watch?: boolean;
  pool?: string;
  /** Per node: its owner names (default: the system's). */
  ownerNames?: Record<string, OwnerNames>;
}

export function treeConfig(root: string, over: Partial<TreeConfig> = {}): TreeConfig {
  return {
    name: 'www', pool: 'web', root, mode: 'two-way', exclude: [], owner: 'preserve', numericIds: false, permissions: 'preserve', postSync: [],
    debounceMs: 100, scanIntervalMs: 3_600_000, maxDeletePercent: 50, tombstoneMinAgeMs: 24 * 3600_000, tombstoneMaxAgeMs: 180 * 24 * 3600_000, ...over,
  };
}

export async function makeCluster(opts: ClusterOptions): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'multiall-fsnet-'));
  const pki = await makePki();
  const nodes = new Map<string, TestNode>();
  const members = new Map<string, Member & { pools: string[] }>();
  const poolName = opts.pool ?? 'web';
  const tls = new Map<string, TlsMaterial>();
  for (const n of opts.names) {
    tls.set(n, await pki.node(n));
    members.set(n, { name: n, alive: false, pools: [poolName] });
  }
  const c: Cluster = {
    dir, pki, nodes, members,
    node(name) {
      const n = nodes.get(name);
      if (n === undefined) throw new Error(`no node ${name}`);
      return n;
    },
    async start(name) {
      const root = join(dir, name, 'tree');
      const dbPath = join(dir, `${name}.db`);
      const { mkdir } = await import('node:fs/promises');
      await mkdir(join(dir, name), { recursive: true });
      const store = new Store(dbPath, MIGRATIONS);
      const t = tls.get(name)!;
      const bus = new EventBus();
      const events: BusEvent[] = [];
      bus.onAny((e) => events.push(e));
      const server = new RpcServer({ tls: t, host: '127.0.0.1', port: 0, logger });
      const pool = new RpcClientPool({ tls: t, logger });
      const svc = new FileSyncService({
        node: name, store, rpc: server, peers: pool, bus, logger, watch: opts.watch ?? true, antiEntropyMs: 2000, rpcTimeoutMs: 20_000,
        ...(opts.ownerNames?.[name] ? { ownerNames: opts.ownerNames[name] } : {}),
        members: (p) => [...members.values()].filter((m) => m.pools.includes(p)).map((m) => ({ name: m.name, alive: m.alive, ...(m.address ? { address: m.address } : {}) })),
      }, [treeConfig(root, opts.tree)]);
      const { port } = await server.listen();
      const address: PeerAddress = { name, host: '127.0.0.1', port };
      const node: TestNode = { name, root, dbPath, tls: t, svc, store, server, pool, events, running: true };
      nodes.set(name, node);
      members.set(name, { ...members.get(name)!, alive: true, address });
      await svc.start();
      for (const other of nodes.values()) if (other.running) other.svc.onMembersChanged();
      return node;
    },
    async stop(name) {
      const n = c.node(name);
      if (!n.running) return;
      n.running = false;
      members.set(name, { ...members.get(name)!, alive: false });
      for (const other of nodes.values()) if (other.running) other.svc.onMembersChanged();
      await n.svc.stop();
      await n.pool.close();
      await n.server.close({ graceMs: 1000 });
      n.store.close();
    },
    async close() {
      for (const n of nodes.values()) await c.stop(n.name);
      await pki.cleanup();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return c;
}

/** Polls `cond` until it holds or the deadline passes (no timing assertions: only a bound). */
export async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < end) {
    try {
      if (await cond()) return;
    } catch (e) {
      lastErr = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ''}`);
}
