import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateGossipKey, keyringAdd, keyringRemove, keyringUse, parseGossipKey, readKeyring, writeKeyring } from '../../src/security/gossipkey.ts';
import { generateToken, hashToken, verifyToken } from '../../src/security/tokens.ts';
import type { ApiToken } from '../../src/config/types.ts';

test('gossip keys: 32 random bytes in canonical base64, strict parsing', () => {
  const a = generateGossipKey();
  const b = generateGossipKey();
  assert.notEqual(a, b);
  assert.equal(parseGossipKey(a).length, 32);
  assert.throws(() => parseGossipKey(''), /gossip key is empty/);
  assert.throws(() => parseGossipKey('not base64!'), /not valid base64/);
  assert.throws(() => parseGossipKey(Buffer.alloc(16).toString('base64')), /must decode to 32 bytes .* got 16/);
  assert.throws(() => parseGossipKey(42 as unknown as string), /must be a base64 string, got number/);
});

test('keyring: atomic 0600 write, read back, rotation, and precise errors', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'multiall-kr-'));
  try {
    const path = join(dir, 'keyring.json');
    const k1 = generateGossipKey();
    const k2 = generateGossipKey();
    await writeKeyring(path, { primary: k1, keys: [k1] });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readKeyring(path), { primary: k1, keys: [k1] });
    let kr = keyringAdd(await readKeyring(path), k2);
    kr = keyringUse(kr, k2);
    assert.throws(() => keyringRemove(kr, k2), /cannot remove the primary key/);
    kr = keyringRemove(kr, k1);
    await writeKeyring(path, kr);
    assert.deepEqual(await readKeyring(path), { primary: k2, keys: [k2] });
    assert.deepEqual(await readdir(dir), ['keyring.json'], 'no temp files left behind');
    assert.throws(() => keyringUse(kr, k1), /not installed/);

    await writeFile(path, '{ nope');
    await assert.rejects(readKeyring(path), /gossip keyring file .*keyring\.json: not valid JSON/);
    await writeFile(path, JSON.stringify({ primary: k1, keys: [k2] }));
    await assert.rejects(readKeyring(path), /primary key is not listed in "keys"/);
    await writeFile(path, JSON.stringify({ primary: k1, keys: [k1, 'short'] }));
    await assert.rejects(readKeyring(path), /keys\[1\]: gossip key is not valid base64/);
    await writeFile(path, JSON.stringify({ primary: k1, keys: [k1], extra: 1 }));
    await assert.rejects(readKeyring(path), /unknown field "extra"/);
    await assert.rejects(readKeyring(join(dir, 'missing.json')), /gossip keyring file .*missing\.json: not found/);
    await assert.rejects(writeKeyring(path, { primary: 'x', keys: [] }), /"keys" must be a non-empty array/);
    assert.match(await readFile(path, 'utf8'), /extra/, 'a refused write leaves the old file alone');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('API tokens: only the hash is needed to verify; wrong or malformed never match', () => {
  const t1 = generateToken();
  const t2 = generateToken();
  assert.match(t1.secret, /^mat_[A-Za-z0-9_-]{43}$/);
  assert.equal(t1.sha256, hashToken(t1.secret));
  assert.match(t1.sha256, /^[0-9a-f]{64}$/);
  const tokens: ApiToken[] = [
    { name: 'broken', role: 'operator', sha256: 'zz' },
    { name: 'reader', role: 'read', sha256: t1.sha256 },
    { name: 'op', role: 'operator', sha256: t2.sha256.toUpperCase() },
  ];
  assert.equal(verifyToken(t1.secret, tokens)?.name, 'reader');
  assert.equal(verifyToken(t2.secret, tokens)?.name, 'op');
  assert.equal(verifyToken(t1.secret + 'x', tokens), undefined);
  assert.equal(verifyToken('', tokens), undefined);
  assert.equal(verifyToken('zz', tokens), undefined);
  assert.equal(verifyToken('x'.repeat(10_000), tokens), undefined);
  assert.equal(verifyToken(t1.secret, []), undefined);
});
