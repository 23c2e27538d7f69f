// The etcd election backend against a real etcd (/usr/bin/etcd, Debian package etcd-server),
// started per file on 127.0.0.1 with a throwaway data dir. Three Failover instances (a, b, c) in
// this process, each reaching etcd through its own TCP proxy, so that one instance's etcd
// traffic can be blackholed (a stalled master) while the others keep theirs. Every claim record
// goes through the history checker (one process, one clock: local time = real time).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { Failover } from '../../src/failover/failover.ts';
import { resolveFailover } from '../../src/failover/schema.ts';
import { MemoryPersistence } from '../../src/failover/persistence.ts';
import { checkHistory, claimIntervals } from '../../src/failover/history-checker.ts';
import { etcdKeys } from '../../src/failover/etcd-election.ts';
import { silentLogger } from '../../src/log/logger.ts';
import type { ActionExecutor, ActionOutcome } from '../../src/failover/actions.ts';
import type { ClaimRecord } from '../../src/failover/election.ts';
import type { PoolMember } from '../../src/failover/types.ts';

const ETCD = '/usr/bin/etcd';
const skip = existsSync(ETCD) ? false : `${ETCD} not found: install the Debian package etcd-server (.ci/run does)`;
const NODES = ['a', 'b', 'c'];

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 40_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`gave up waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

class EtcdServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'multiall-etcd-'));
  clientPort = 0;
  peerPort = 0;
  #proc: ChildProcess | null = null;

  get url(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  async start(): Promise<void> {
    if (this.#proc !== null && this.#proc.exitCode === null) return;
    if (this.clientPort === 0) { this.clientPort = await freePort(); this.peerPort = await freePort(); }
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const p = spawn(ETCD, [
      '--name', 't', '--data-dir', join(this.dir, 'data'),
      '--listen-client-urls', this.url, '--advertise-client-urls', this.url,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `t=${peer}`,
      '--log-level', 'error',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
    this.#proc = p;
    await until('etcd to answer /health', async () => {
      if (p.exitCode !== null) throw new Error(`etcd exited with ${p.exitCode}: ${stderr}`);
      try {
        const r = await fetch(`${this.url}/health`);
        return r.ok && ((await r.json()) as { health?: string }).health === 'true';
      } catch {
        return false;
      }
    }, 30_000);
  }

  async stop(): Promise<void> {
    const p = this.#proc;
    this.#proc = null;
    if (p === null || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A TCP proxy to etcd whose traffic can be blackholed (nothing forwarded, nothing refused). */
class Proxy {
  readonly #server: Server;
  readonly #conns = new Set<[Socket, Socket]>();
  #paused = false;
  port = 0;
  constructor(target: () => number) {
    this.#server = createServer((client) => {
      const upstream = connect(target(), '127.0.0.1');
      const pair: [Socket, Socket] = [client, upstream];
      this.#conns.add(pair);
      const close = (): void => { client.destroy(); upstream.destroy(); this.#conns.delete(pair); };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
      client.pipe(upstream);
      upstream.pipe(client);
      if (this.#paused) { client.pause(); upstream.pause(); }
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.port = (this.#server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  pause(): void {
    this.#paused = true;
    for (const [a, b] of this.#conns) { a.unpipe(b); b.unpipe(a); a.pause(); b.pause(); }
  }

  resume(): void {
    this.#paused = false;
    for (const [a, b] of this.#conns) { a.pipe(b); b.pipe(a); a.resume(); b.resume(); }
  }

  async close(): Promise<void> {
    for (const [a, b] of this.#conns) { a.destroy(); b.destroy(); }
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}

class Recorder implements ActionExecutor {
  readonly log: string[] = [];
  command(_a: unknown, command: string): Promise<ActionOutcome> {
    this.log.push(command);
    return Promise.resolve({ ok: true, detail: 'recorded' });
  }
  floatingIp(op: 'add' | 'del', address: string): Promise<ActionOutcome> {
    this.log.push(`floating_ip ${op} ${address}`);
    return Promise.resolve({ ok: true, detail: 'recorded' });
  }
}

const etcd = new EtcdServer();
const proxies = new Map<string, Proxy>();

before(async () => {
  if (skip) return;
  await etcd.start();
  for (const n of NODES) {
    const p = new Proxy(() => etcd.clientPort);
    await p.listen();
    proxies.set(n, p);
  }
});

after(async () => {
  await Promise.all([...proxies.values()].map((p) => p.close()));
  await etcd.destroy();
});

/** Three Failovers for pool `pool`, service vip, etcd backend, lease_ttl 2s. */
function cluster(pool: string, over: Record<string, unknown> = {}): {
  fo: Map<string, Failover>; actions: Recorder; claims: ClaimRecord[]; members: Map<string, PoolMember>;
  masters: () => string[]; check: () => void; stopAll: () => Promise<void>;
} {
  const members = new Map(NODES.map((n) => [n, { name: n, alive: true, healthy: true, maintenance: false }]));
  const actions = new Recorder();
  const claims: ClaimRecord[] = [];
  const fo = new Map<string, Failover>();
  for (const n of NODES) {
    const services = resolveFailover({
      services: [{
        name: 'vip',
        priority: { a: 200, b: 150, c: 100 },
        backend: { etcd: { endpoints: [proxies.get(n)!.url], prefix: '/test/', lease_ttl: '2s' } },
        actions: {
          standby_to_master: [{ run: 'up %NODE% %TERM% prev=%PREVIOUS_MASTER%' }],
          master_to_standby: [{ run: 'down %NODE% new=%MASTER%' }],
        },
        ...over,
      }],
    }, NODES);
    fo.set(n, new Failover({
      node: n, pool, services,
      transport: { call: (peer, method, body) => fo.get(peer)!.handleRpc(method, body, n) },
      view: { self: n, members: () => [...members.values()].map((m) => ({ ...m })) },
      persistence: new MemoryPersistence(),
      logger: silentLogger(),
      executor: actions,
      trace: (r) => claims.push(r),
    }));
  }
  const masters = (): string[] => NODES.filter((n) => fo.get(n)!.isMasterNow('vip'));
  return {
    fo, actions, claims, members, masters,
    check: () => {
      const { intervals, violations } = claimIntervals(claims, (_node, t) => t);
      const r = checkHistory(intervals, violations);
      assert.deepEqual(r.violations, []);
    },
    // Standbys first, each leaving the view as membership would report it, then the master
    // (which then has nobody to hand over to, so it resigns).
    stopAll: async () => {
      for (const n of [...NODES].sort((x, y) => Number(fo.get(x)!.isMasterNow('vip')) - Number(fo.get(y)!.isMasterNow('vip')))) {
        members.get(n)!.alive = false;
        await fo.get(n)!.stop();
      }
    },
  };
}

async function masterKey(pool: string): Promise<{ value: string; createRevision: number } | null> {
  const c = new Etcd3({ hosts: etcd.url });
  try {
    const r = await c.get(etcdKeys('/test/', pool, 'vip').master).exec();
    const kv = r.kvs[0];
    return kv === undefined ? null : { value: kv.value.toString(), createRevision: Number(kv.create_revision) };
  } finally {
    c.close();
  }
}

test('one master is elected (the highest priority); fencing token = create revision; stopping it hands over', { skip }, async () => {
  const t = cluster('p1', { preempt: 'nopreempt' });
  try {
    for (const f of t.fo.values()) f.start();
    await until('a master', () => t.masters().length === 1);
    assert.deepEqual(t.masters(), ['a']);
    const a = t.fo.get('a')!;
    const token = a.fencingToken('vip');
    const key = await masterKey('p1');
    assert.deepEqual(key, { value: 'a', createRevision: token });
    await until('standbys know the master', () => ['b', 'c'].every((n) => t.fo.get(n)!.status()[0]!.master === 'a'));
    assert.equal(t.fo.get('b')!.fencingToken('vip'), null);
    assert.equal(t.fo.get('b')!.status()[0]!.role, 'standby');

    // Stop a: it hands over to the best other member (b), whose token is larger.
    await a.stop();
    t.members.get('a')!.alive = false;
    await until('b master', () => t.masters().join() === 'b');
    const tb = t.fo.get('b')!.fencingToken('vip')!;
    assert.ok(tb > token!, `token ${tb} > ${token}`);
    assert.deepEqual(await masterKey('p1'), { value: 'b', createRevision: tb });
    await t.fo.get('b')!.idle();
    assert.deepEqual(t.actions.log, [`up a ${token} prev=`, 'down a new=b', `up b ${tb} prev=a`]);
    t.check();
  } finally {
    await t.stopAll();
  }
});

test('master stalled (its etcd traffic blackholed): it demotes itself before the next term starts', { skip }, async () => {
  const t = cluster('p2', { preempt: 'nopreempt' });
  try {
    for (const f of t.fo.values()) f.start();
    await until('a master', () => t.masters().join() === 'a');
    const ta = t.fo.get('a')!.fencingToken('vip')!;
    await until('a renewed its lease', () => t.claims.some((r) => r.kind === 'lease' && r.node === 'a'));

    proxies.get('a')!.pause();
    await until('a new master', () => t.masters().length === 1 && t.masters()[0] !== 'a');
    const [m] = t.masters();
    const tm = t.fo.get(m!)!.fencingToken('vip')!;
    assert.ok(tm > ta);
    assert.equal(t.fo.get('a')!.isMasterNow('vip'), false);
    const demote = t.claims.find((r) => r.kind === 'demote' && r.node === 'a');
    const next = t.claims.find((r) => r.kind === 'master' && r.node === m);
    assert.ok(demote && next, 'demote and master records');
    assert.ok(demote.at < next.at, `a demoted (${demote.at}) before ${m} became master (${next.at})`);
    assert.match((demote as { reason: string }).reason, /lease lost/);
    t.check();

    // Back in touch: a learns the new master and stays standby (nopreempt).
    proxies.get('a')!.resume();
    await until('a sees the new master', () => t.fo.get('a')!.status()[0]!.master === m);
    assert.deepEqual(t.masters(), [m]);
    await Promise.all([...t.fo.values()].map((f) => f.idle()));
    assert.ok(t.actions.log.includes('down a new='), t.actions.log.join('\n'));
    assert.ok(t.actions.log.includes(`up ${m} ${tm} prev=a`), t.actions.log.join('\n'));
    t.check();
  } finally {
    proxies.get('a')!.resume();
    await t.stopAll();
  }
});

test('preempt: a higher-priority member that becomes eligible gets the role by handover', { skip }, async () => {
  const t = cluster('p3');
  try {
    t.members.get('a')!.maintenance = true;
    for (const f of t.fo.values()) f.start();
    await until('b master', () => t.masters().join() === 'b');
    const tb = t.fo.get('b')!.fencingToken('vip')!;
    t.members.get('a')!.maintenance = false;
    await until('a master', () => t.masters().join() === 'a');
    assert.ok(t.fo.get('a')!.fencingToken('vip')! > tb);
    await Promise.all([...t.fo.values()].map((f) => f.idle()));
    const i = t.actions.log.indexOf('down b new=a');
    assert.ok(i >= 0 && i < t.actions.log.findIndex((l) => l.startsWith('up a ')), t.actions.log.join('\n'));
    // switchTo from a standby is forwarded to the master.
    await until('c knows the master', () => t.fo.get('c')!.status()[0]!.master === 'a');
    const r = await t.fo.get('c')!.switchTo('vip', 'b');
    assert.equal(r.ok, true, r.detail);
    await until('b master again', () => t.masters().join() === 'b');
    t.check();
  } finally {
    await t.stopAll();
  }
});

test('etcd down: the master demotes within the lease and nobody is master; etcd back: election resumes', { skip }, async () => {
  const t = cluster('p4');
  try {
    for (const f of t.fo.values()) f.start();
    await until('a master', () => t.masters().join() === 'a');
    const ta = t.fo.get('a')!.fencingToken('vip')!;
    await etcd.stop();
    const stoppedAt = performance.now();
    await until('no master', () => t.masters().length === 0 && NODES.every((n) => t.fo.get(n)!.status()[0]!.role !== 'master'));
    const demote = t.claims.find((r) => r.kind === 'demote' && r.node === 'a');
    assert.ok(demote, 'a recorded its demotion');
    // Stays so while etcd is down (a claim needs etcd): watch for two more lease lengths.
    await new Promise((r) => setTimeout(r, 4000));
    assert.deepEqual(t.masters(), []);
    assert.equal(t.claims.filter((r) => r.kind === 'master' && r.at > stoppedAt).length, 0);

    await etcd.start();
    await until('a master again', () => t.masters().length === 1, 60_000);
    const [m] = t.masters();
    assert.ok(t.fo.get(m!)!.fencingToken('vip')! > ta);
    t.check();
  } finally {
    if (etcd.clientPort !== 0) await etcd.start().catch(() => undefined);
    await t.stopAll();
  }
});
