import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { signDocument, verifyDocument, generateAdminKey, loadTrustedKey, canonicalJson, compareDocuments } from '../../src/pooldefs/document.ts';
import { PoolDefinitions } from '../../src/pooldefs/manager.ts';
import { openStore } from '../../src/state/store.ts';
import { EventBus } from '../../src/events/bus.ts';
import { silentLogger } from '../../src/log/logger.ts';

const admin = generateAdminKey();
const trusted = [loadTrustedKey(admin.publicPem)];
const doc = (version: number, members = ['a', 'b']) =>
  signDocument({ kind: 'multiall.pools/v1', version, issuedAt: new Date(0).toISOString(), pools: [{ name: 'web', members, settings: { tags: { role: 'web' } } }] }, admin.privatePem);

test('canonical JSON ignores key order', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } }), canonicalJson({ a: { c: null, d: [1, { x: 1, y: 2 }] }, b: 1 }));
});

test('a signed document verifies; tampering, untrusted signers and junk are refused', () => {
  const d = doc(1);
  assert.equal(verifyDocument(d, trusted).ok, true);
  const tampered = { ...d, pools: [{ ...d.pools[0], members: ['a', 'b', 'evil'] }] };
  assert.match((verifyDocument(tampered, trusted) as { reason: string }).reason, /bad signature/);
  const other = generateAdminKey();
  const foreign = signDocument({ kind: 'multiall.pools/v1', version: 9, issuedAt: '', pools: [] }, other.privatePem);
  assert.match((verifyDocument(foreign, trusted) as { reason: string }).reason, /untrusted key/);
  const { signature: _s, ...unsigned } = d;
  assert.match((verifyDocument(unsigned, trusted) as { reason: string }).reason, /malformed.*signature/);
  fc.assert(fc.property(fc.anything(), (x) => verifyDocument(x, trusted).ok === false));
});

test('same version, different content: every member orders them the same way', () => {
  const a = doc(5, ['a']);
  const b = doc(5, ['b']);
  assert.equal(Math.sign(compareDocuments(a, b)), -Math.sign(compareDocuments(b, a)));
  assert.notEqual(compareDocuments(a, b), 0);
});

test('manager adopts newer documents only, persists them, and publishes pools.updated', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pooldefs-'));
  const store = openStore(dir);
  const bus = new EventBus();
  const seen: number[] = [];
  bus.on('pools.updated', (e) => seen.push(e.data.version));
  const m = new PoolDefinitions({ store, trusted, logger: silentLogger(), bus, fetchFrom: async () => undefined });
  assert.equal(m.offer(doc(2), 'x').accepted, true);
  assert.equal(m.offer(doc(1), 'x').accepted, false);
  assert.equal(m.offer(doc(2), 'x').reason, 'already current');
  assert.equal(m.offer({ junk: true }, 'x').accepted, false);
  assert.deepEqual(seen, [2]);
  assert.equal(m.refused, 2);
  store.close();
  const reopened = new PoolDefinitions({ store: openStore(dir), trusted, logger: silentLogger(), bus, fetchFrom: async () => undefined });
  assert.equal(reopened.current()?.version, 2);
});

test('a newer digest from a peer triggers a fetch; an older one does not', async () => {
  const store = openStore(mkdtempSync(join(tmpdir(), 'pooldefs-')));
  const fetched: string[] = [];
  const m = new PoolDefinitions({ store, trusted, logger: silentLogger(), bus: new EventBus(), fetchFrom: async (p) => { fetched.push(p); return doc(3); } });
  await m.onPeerDigest('p1', { v: 3, h: 'ffff' });
  assert.equal(m.current()?.version, 3);
  await m.onPeerDigest('p2', { v: 2, h: 'ffff' });
  assert.deepEqual(fetched, ['p1']);
  store.close();
});
