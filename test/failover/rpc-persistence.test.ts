// RPC decoding (fuzzed), peer authentication in Failover.handleRpc, and durable votes in the
// real SQLite store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { BadRequestError, METHODS, parseRequest } from '../../src/failover/messages.ts';
import { Failover } from '../../src/failover/failover.ts';
import { StorePersistence, storeHistorySink } from '../../src/failover/persistence.ts';
import { openStore } from '../../src/state/store.ts';
import { silentLogger } from '../../src/log/logger.ts';
import type { Clock } from '../../src/failover/types.ts';
import { service } from './sim.ts';

test('fuzz: parseRequest accepts valid bodies and throws only BadRequestError otherwise', () => {
  fc.assert(fc.property(fc.constantFrom(...METHODS, 'failover.nope', ''), fc.anything(), (method, body) => {
    try {
      parseRequest(method, body);
    } catch (e) {
      assert.ok(e instanceof BadRequestError, String(e));
    }
  }), { numRuns: 3000 });
  assert.throws(() => parseRequest('failover.vote', { pool: 'p', service: 'vip', term: -1, candidate: 'a' }), /failover\.vote: bad body: term: /);
  assert.throws(() => parseRequest('failover.heartbeat', { pool: 'p', service: 'vip', term: 1, master: 'a', extra: 1 }), /Unrecognized key/);
  assert.throws(() => parseRequest('failover.x', {}), /unknown failover method "failover.x"/);
});

/** A clock that only moves when told (no timers fire: the test drives requests directly). */
function manualClock(start: number): Clock & { t: number } {
  const c = { t: start, now: () => c.t, setTimer: () => ({ _timer: null }), clearTimer: () => {} };
  return c;
}

function make(dir: string, clock: Clock) {
  const store = openStore(dir);
  const fo = new Failover({
    node: 'c', pool: 'p', services: [service({ voters: ['a', 'b', 'c'] })], clock,
    transport: { call: () => Promise.reject(new Error('no network in this test')) },
    view: { self: 'c', members: () => ['a', 'b', 'c'].map((name) => ({ name, alive: true, healthy: true, maintenance: false })) },
    persistence: new StorePersistence(store), history: storeHistorySink(store), logger: silentLogger(),
  });
  fo.start();
  return { store, fo };
}

test('handleRpc authenticates the peer and names what is wrong', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fo-rpc-'));
  const { store, fo } = make(dir, manualClock(1000));
  try {
    const vote = { pool: 'p', service: 'vip', term: 1, candidate: 'a' };
    await assert.rejects(fo.handleRpc('failover.vote', vote, 'b'), /b asked for a vote on behalf of a/);
    await assert.rejects(fo.handleRpc('failover.vote', vote, 'mallory'), /mallory is neither a voter nor a member of pool p/);
    await assert.rejects(fo.handleRpc('failover.vote', { ...vote, pool: 'q' }, 'a'), /pool q is not served/);
    await assert.rejects(fo.handleRpc('failover.vote', { ...vote, service: 'db' }, 'a'), /unknown service "db" in pool p \(known: vip\)/);
    await assert.rejects(fo.handleRpc('failover.heartbeat', { pool: 'p', service: 'vip', term: 1, master: 'a' }, 'b'), /b sent a heartbeat on behalf of a/);
  } finally {
    await fo.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('votes survive a restart in the SQLite store: no second vote in the same term', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fo-store-'));
  try {
    const clock = manualClock(1000);
    let { store, fo } = make(dir, clock);
    const ask = (cand: string, term: number) => fo.handleRpc('failover.vote', { pool: 'p', service: 'vip', term, candidate: cand }, cand) as Promise<{ granted: boolean; reason: string }>;
    clock.t += 5000; // past the start-up quiet period
    assert.equal((await ask('a', 3)).granted, true);
    // Simulated crash right after answering: no stop(), just close the database and reopen.
    store.close();
    ({ store, fo } = make(dir, clock));
    clock.t += 5000;
    const again = await ask('b', 3);
    assert.equal(again.granted, false);
    assert.match(again.reason, /already voted for a in term 3/);
    assert.equal(fo.status()[0]!.term, 3);
    clock.t += 3000; // b is ranked 2nd (a wins the name tie-break): its turn comes one lease later
    const b4 = await ask('b', 4);
    assert.equal(b4.granted, true, `a new term allows a new vote: ${b4.reason}`);
    await fo.stop();
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
