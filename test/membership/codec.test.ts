import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError, decode, encode, encodeCompound, type CoordEntry, type Message } from '../../src/membership/messages.ts';
import { Keyring, KeyringError, ENCRYPTION_OVERHEAD } from '../../src/membership/keyring.ts';
import { randomBytes } from 'node:crypto';
import { Packr } from 'msgpackr';

const samples: Message[] = [
  { type: 'ping', seq: 1, target: 'n1', sourceName: 'n0', sourceAddr: '10.0.0.1:7946' },
  { type: 'indirectPing', seq: 4294967295, target: 'n2', targetAddr: '[::1]:7946', nack: true, sourceName: 'n0', sourceAddr: '10.0.0.1:7946' },
  { type: 'ack', seq: 7 },
  { type: 'nack', seq: 8 },
  { type: 'suspect', incarnation: 3, node: 'n1', from: 'n0' },
  { type: 'alive', incarnation: 9, node: 'n1', addr: '10.0.0.2:7946', meta: new Uint8Array([1, 2, 3]), maint: 'kernel upgrade' },
  { type: 'alive', incarnation: 1, node: 'n1', addr: '10.0.0.2:7946', meta: new Uint8Array(), maint: null },
  { type: 'dead', incarnation: 2, node: 'n1', from: 'n1' },
  { type: 'ppDigest', join: true, hashes: new Uint32Array([0, 1, 0xffffffff, 77]), userHash: 0 },
  {
    type: 'ppDiff', rows: [{ name: 'a', addr: 'h:1', meta: new Uint8Array([9]), maint: null, incarnation: 4, state: 0 }], buckets: [2, 3],
    digests: [{ name: 'b', incarnation: 7, state: 1, hash: 0xdeadbeef, coordSeq: 0 }, { name: 'c', incarnation: 1, state: 3, hash: 5, coordSeq: 12 }],
    userKeys: [{ from: 'a', id: 2 ** 50 }],
  },
  {
    type: 'ppRows', rows: [{ name: 'a', addr: 'h:1', meta: new Uint8Array([9]), maint: 'disk', incarnation: 4, state: 2 }], coords: [],
    want: ['b', 'c'], wantCoords: ['d'], user: [{ type: 'user', from: 'a', id: 9, topic: 't', data: new Uint8Array([0xc0]) }], wantUser: [{ from: 'e', id: 1 }],
  },
  { type: 'err', message: 'nope' },
  { type: 'user', from: 'n1', id: 2 ** 52 + 3, topic: 'deploy.done', data: new Uint8Array([0x81, 0xa1, 0x6b, 1]) },
];

function normalize(m: Message): unknown {
  return JSON.parse(JSON.stringify(m, (_k, v: unknown) => (v instanceof Uint8Array ? [...v] : v)));
}

/** Truncate a valid message at `pos`, or set the byte there to `val`: decoding may only fail with DecodeError. */
function decodeMangled(src: Uint8Array, pos: number, val: number, truncate: boolean): void {
  const b = Uint8Array.from(src);
  const p = pos % b.length;
  const data = truncate ? b.subarray(0, p) : (b[p] = val, b);
  try {
    decode(data);
  } catch (e) {
    if (!(e instanceof DecodeError)) throw e;
  }
}

test('codec: every message type round-trips, alone and in a compound', () => {
  for (const m of samples) assert.deepEqual(normalize(decode(encode(m))[0] as Message), normalize(m));
  const parts = samples.slice(0, 8).map(encode);
  const back = decode(encodeCompound(parts));
  assert.deepEqual(back.map(normalize), samples.slice(0, 8).map(normalize));
});

test('codec: precise typed errors for bad input', () => {
  assert.throws(() => decode(new Uint8Array()), (e: unknown) => e instanceof DecodeError && e.code === 'empty');
  assert.throws(() => decode(new Uint8Array([42, 0x90])), (e: unknown) => e instanceof DecodeError && e.code === 'unknown_type');
  const ping = encode(samples[0] as Message);
  assert.throws(() => decode(ping.subarray(0, ping.length - 2)), (e: unknown) => e instanceof DecodeError && e.code === 'malformed');
  // A suspect whose incarnation is a string names the field.
  const bad = new Uint8Array([3, 0x93, 0xa1, 0x31, 0xa1, 0x61, 0xa1, 0x62]);
  assert.throws(() => decode(bad), /suspect\.incarnation/);
  const c = encodeCompound([encode(samples[2] as Message), encode(samples[3] as Message)]);
  assert.throws(() => decode(c.subarray(0, c.length - 1)), /runs past the end/);
  assert.throws(() => decode(encodeCompound([c, c])), (e: unknown) => e instanceof DecodeError && e.code === 'nested_compound');
});

test('codec fuzz: random bytes never throw anything but DecodeError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
    try {
      decode(bytes);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
    }
  }), { numRuns: 3000 });
});

test('codec fuzz: truncations and bit flips of valid packets never throw anything but DecodeError', () => {
  const valid = [...samples.map(encode), encodeCompound(samples.slice(0, 8).map(encode))];
  fc.assert(fc.property(fc.nat(valid.length - 1), fc.nat(), fc.nat(255), fc.boolean(), (which, pos, val, truncate) => {
    decodeMangled(valid[which] as Uint8Array, pos, val, truncate);
  }), { numRuns: 5000 });
});

test('keyring: encrypt/decrypt, rotation, tamper and wrong key rejected', () => {
  const k1 = randomBytes(32).toString('base64');
  const k2 = randomBytes(32).toString('base64');
  const a = new Keyring([k1]);
  const b = new Keyring([k1]);
  const plain = new Uint8Array([1, 2, 3, 4]);
  const ct = a.encrypt(plain);
  assert.equal(ct.length, plain.length + ENCRYPTION_OVERHEAD);
  assert.deepEqual([...(b.decrypt(ct) ?? [])], [1, 2, 3, 4]);
  // Label is authenticated data: a different label fails.
  const lab = a.encrypt(plain, Buffer.from('prod'));
  assert.equal(b.decrypt(lab, Buffer.from('staging')), null);
  assert.notEqual(b.decrypt(lab, Buffer.from('prod')), null);
  // Tampering with any byte fails authentication.
  for (const i of [0, 1, 13, ct.length - 1]) {
    const t = Uint8Array.from(ct);
    t[i] = (t[i] as number) ^ 1;
    assert.equal(b.decrypt(t), null, `flip at ${i}`);
  }
  // Rotation: install k2 everywhere, switch primary, remove k1.
  a.install(k2);
  b.install(k2);
  a.use(k2);
  assert.equal(a.list().primary, k2);
  assert.notEqual(b.decrypt(a.encrypt(plain)), null, 'b decrypts with secondary key');
  assert.throws(() => a.remove(k2), /primary/);
  a.remove(k1);
  assert.deepEqual(a.list().keys, [k2]);
  const c = new Keyring([k1]);
  assert.equal(c.decrypt(a.encrypt(plain)), null, 'old-key-only ring cannot read');
  assert.throws(() => new Keyring(['short']), KeyringError);
  assert.throws(() => new Keyring([Buffer.alloc(16).toString('base64')]), /32 bytes/);
  assert.throws(() => a.use(randomBytes(32).toString('base64')), /not installed/);
});

test('keyring fuzz: random data never decrypts and never throws', () => {
  const ring = new Keyring([randomBytes(32).toString('base64')]);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
    assert.equal(ring.decrypt(bytes), null);
  }), { numRuns: 1000 });
});

test('codec: push/pull digest messages refuse malformed fields precisely', () => {
  const packr = new Packr({ useRecords: false });
  const msg = (type: number, body: unknown): Uint8Array => Uint8Array.from([type, ...packr.pack(body)]);
  // 3 hashes: not a power of two; 0 bytes: no bucket.
  assert.throws(() => decode(msg(12, [false, new Uint8Array(12), 0])), /ppDigest\.hashes: 12 bytes is not 4 × a power of two/);
  assert.throws(() => decode(msg(12, [false, new Uint8Array(0), 0])), /ppDigest\.hashes/);
  assert.throws(() => decode(msg(12, [false, new Uint8Array(4 * 8192), 0])), /ppDigest\.hashes: larger than/);
  assert.throws(() => decode(msg(12, [false, new Uint8Array(4), -1])), /ppDigest\.userHash/);
  assert.throws(() => decode(msg(13, [[], [5000], [], null])), /ppDiff\.buckets\[0\]: bucket 5000 out of range/);
  assert.throws(() => decode(msg(13, [[], [], [['b', 1, 0, 2 ** 32, 0]], null])), /ppDiff\.digests\[0\]\.hash/);
  assert.throws(() => decode(msg(13, [[], [], [['b', 1, 4, 1, 0]], null])), /ppDiff\.digests\[0\]\.state: unknown state 4/);
  assert.throws(() => decode(msg(13, [[], [], [], [['a']]])), /ppDiff\.userKeys\[0\]: expected 2 fields/);
  assert.throws(() => decode(msg(14, [[], [], ['ok', 7], [], [], []])), /ppRows\.want\[1\]: expected a string/);
  assert.throws(() => decode(msg(14, [[['a', 'h:1', new Uint8Array(), null, 1]], [], [], [], [], []])), /ppRows\.rows\[0\]: expected 6 or 8 fields/);
  assert.throws(() => decode(msg(14, [[], [], [], [], [['a', 1, '', new Uint8Array()]], []])), /ppRows\.user\[0\]\.topic: must not be empty/);
  assert.throws(() => decode(msg(15, ['a', 1, 't', new Uint8Array(2000)])), /user\.data: larger than 1400 bytes/);
  assert.throws(() => decode(msg(6, [false, []])), (e: unknown) => e instanceof DecodeError && e.code === 'unknown_type', 'the retired full-state type 6');
});

test('codec fuzz: random well-formed push/pull and user messages round-trip; mangled ones only give DecodeError', () => {
  const name = fc.string({ minLength: 1, maxLength: 12 });
  const rowArb = fc.record({
    name, addr: fc.string({ minLength: 1, maxLength: 20 }), meta: fc.uint8Array({ maxLength: 40 }),
    maint: fc.option(fc.string({ maxLength: 10 }), { nil: null }), incarnation: fc.nat(), state: fc.constantFrom(0, 1, 2, 3) as fc.Arbitrary<0 | 1 | 2 | 3>,
  });
  const digestArb = fc.record({ name, incarnation: fc.nat(), state: fc.constantFrom(0, 1, 2, 3) as fc.Arbitrary<0 | 1 | 2 | 3>, hash: fc.nat({ max: 0xffffffff }), coordSeq: fc.nat() });
  const keyArb = fc.record({ from: name, id: fc.nat() });
  const userArb = fc.record({ type: fc.constant('user' as const), from: name, id: fc.nat(), topic: fc.string({ minLength: 1, maxLength: 64 }), data: fc.uint8Array({ maxLength: 50 }) });
  const msgArb: fc.Arbitrary<Message> = fc.oneof(
    fc.record({ type: fc.constant('ppDigest' as const), join: fc.boolean(), hashes: fc.integer({ min: 0, max: 6 }).chain((k) => fc.uint32Array({ minLength: 2 ** k, maxLength: 2 ** k })), userHash: fc.nat({ max: 0xffffffff }) }),
    fc.record({
      type: fc.constant('ppDiff' as const), rows: fc.array(rowArb, { maxLength: 5 }), buckets: fc.array(fc.nat({ max: 4095 }), { maxLength: 5 }), digests: fc.array(digestArb, { maxLength: 5 }),
      userKeys: fc.option(fc.array(keyArb, { maxLength: 3 }), { nil: null }),
    }),
    fc.record({
      type: fc.constant('ppRows' as const), rows: fc.array(rowArb, { maxLength: 5 }), coords: fc.constant<CoordEntry[]>([]), want: fc.array(name, { maxLength: 5 }), wantCoords: fc.array(name, { maxLength: 5 }),
      user: fc.array(userArb, { maxLength: 3 }), wantUser: fc.array(keyArb, { maxLength: 3 }),
    }),
    userArb,
  );
  fc.assert(fc.property(msgArb, fc.nat(), fc.nat(255), fc.boolean(), (m, pos, val, truncate) => {
    const enc = encode(m);
    assert.deepEqual(normalize(decode(enc)[0] as Message), normalize(m));
    decodeMangled(enc, pos, val, truncate);
  }), { numRuns: 3000 });
});
