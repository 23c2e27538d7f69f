import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pack } from 'msgpackr';
import { BinParts, encodeFrame, encodeFrameParts, FrameDecoder, validateMessage, type Message } from '../../src/rpc/frame.ts';
import { ProtocolError, RpcError } from '../../src/rpc/errors.ts';

const MAX = 4096;

const id = fc.integer({ min: 1, max: 0xffff_ffff });
const body = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string(), fc.integer(), fc.array(fc.integer(), { maxLength: 5 })), { maxKeys: 5, noNullPrototype: true }),
);
const NP = { noNullPrototype: true } as const;
const method = fc.stringMatching(/^[A-Za-z0-9_.:/-]{1,40}$/);
const message: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ t: fc.constant('req' as const), id, method, body }, NP),
  fc.record({ t: fc.constant('req' as const), id, method, body, stream: fc.constant(true as const) }, NP),
  fc.record({ t: fc.constant('res' as const), id, body }, NP),
  fc.record({ t: fc.constant('data' as const), id, body }, NP),
  fc.record({ t: fc.constant('err' as const), id, code: fc.stringMatching(/^[a-z_]{1,20}$/), message: fc.string({ maxLength: 100 }) }, NP),
  fc.record({ t: fc.constantFrom('end' as const, 'cancel' as const, 'ping' as const, 'pong' as const), id }, NP),
  fc.record({ t: fc.constant('hello' as const), v: fc.integer({ min: 1, max: 3 }), node: fc.stringMatching(/^[a-z0-9]{1,20}$/) }, NP),
);

/** Split buf at the given cut points (sorted, deduplicated, in range). */
function chunk(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

/** Feed chunks; return messages or the ProtocolError. Any other exception fails the property. */
function feed(dec: FrameDecoder, chunks: Buffer[]): { msgs: Message[]; error?: ProtocolError } {
  const msgs: Message[] = [];
  for (const c of chunks) {
    try {
      msgs.push(...dec.push(c).map((f) => f.msg));
    } catch (err) {
      if (err instanceof ProtocolError) return { msgs, error: err };
      throw err;
    }
    assert.ok(dec.bufferedBytes <= 4 + MAX, `buffered ${dec.bufferedBytes} > limit`);
  }
  return { msgs };
}

test('valid frames survive any chunking', () => {
  fc.assert(
    fc.property(fc.array(message, { minLength: 1, maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (msgs, cuts) => {
      const wire = Buffer.concat(msgs.map((m) => encodeFrame(m, MAX)));
      const dec = new FrameDecoder({ maxFrameBytes: MAX });
      const { msgs: got, error } = feed(dec, chunk(wire, cuts));
      assert.equal(error, undefined);
      assert.deepEqual(got, msgs);
      assert.equal(dec.bufferedBytes, 0);
      dec.end();
    }),
    { numRuns: 300 },
  );
});

/**
 * Feeds chunks as a socket with a reused read buffer does (tls.connect's onread): each chunk is
 * copied into one shared buffer, pushed as transient, and the buffer is then overwritten, so a
 * decoder or message still pointing into it would show garbage by the end.
 */
function feedTransient(dec: FrameDecoder, chunks: Buffer[], reused: Buffer): { msgs: Message[]; error?: ProtocolError } {
  const msgs: Message[] = [];
  for (const c of chunks) {
    for (let off = 0; off < c.length || off === 0; off += reused.length) {
      const n = c.copy(reused, 0, off, Math.min(c.length, off + reused.length));
      try {
        msgs.push(...dec.push(reused.subarray(0, n), true).map((f) => f.msg));
      } catch (err) {
        if (err instanceof ProtocolError) return { msgs, error: err };
        throw err;
      }
      reused.fill(0xa5);
      assert.ok(dec.bufferedBytes <= 4 + dec.maxFrameBytes, `buffered ${dec.bufferedBytes} > limit`);
      if (c.length === 0) break;
    }
  }
  return { msgs };
}

test('transient chunks (a reused read buffer): the same messages, nothing points into the buffer', () => {
  fc.assert(
    fc.property(fc.array(message, { minLength: 1, maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), fc.integer({ min: 1, max: 512 }), (msgs, cuts, bufSize) => {
      const wire = Buffer.concat(msgs.map((m) => encodeFrame(m, MAX)));
      const dec = new FrameDecoder({ maxFrameBytes: MAX });
      const { msgs: got, error } = feedTransient(dec, chunk(wire, cuts), Buffer.alloc(bufSize));
      assert.equal(error, undefined);
      assert.deepEqual(got, msgs);
      assert.equal(dec.bufferedBytes, 0);
      dec.end();
    }),
    { numRuns: 300 },
  );
  // Bulk data frames (binary bodies of 64 KiB and more, framed by hand) arriving in TLS-record-sized reads.
  const big = 1 << 20;
  const bodies = [70_000, 65_536, 300_000, 5].map((n, i) => Buffer.alloc(n, i + 1));
  const bulk: Message[] = bodies.map((b, i) => ({ t: 'data', id: i + 1, body: b }));
  const wire = Buffer.concat(bulk.map((m) => encodeFrame(m, big)));
  for (const bufSize of [16_384, 65_536, 1_000]) {
    const { msgs: got, error } = feedTransient(new FrameDecoder({ maxFrameBytes: big }), chunk(wire, [3, 70_010, 70_011, 200_000]), Buffer.alloc(bufSize));
    assert.equal(error, undefined);
    assert.deepEqual(got.map((m) => (m as { body: Buffer }).body), bodies);
  }
});

test('transient chunks of random bytes: messages or ProtocolError only, memory bounded', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 10 }), fc.integer({ min: 1, max: 256 }), (bytes, cuts, bufSize) => {
      const dec = new FrameDecoder({ maxFrameBytes: MAX });
      const { error } = feedTransient(dec, chunk(Buffer.from(bytes), cuts), Buffer.alloc(bufSize));
      if (error) assert.throws(() => dec.push(Buffer.from([0]), true), ProtocolError, 'decoder stays failed');
    }),
    { numRuns: 2000 },
  );
});

test('random bytes give messages or ProtocolError, never another exception, memory bounded', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 10 }), (bytes, cuts) => {
      const dec = new FrameDecoder({ maxFrameBytes: MAX });
      const { error } = feed(dec, chunk(Buffer.from(bytes), cuts));
      if (error) assert.throws(() => dec.push(Buffer.from([0])), ProtocolError, 'decoder stays failed');
    }),
    { numRuns: 2000 },
  );
});

test('valid frames with corrupted bytes or random bodies: messages or ProtocolError only', () => {
  fc.assert(
    fc.property(fc.array(message, { minLength: 1, maxLength: 5 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 6 }), (msgs, flips, cuts) => {
      const wire = Buffer.concat(msgs.map((m) => encodeFrame(m, MAX)));
      for (const [at, v] of flips) wire[at % wire.length] = v;
      feed(new FrameDecoder({ maxFrameBytes: MAX }), chunk(wire, cuts));
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), (bytes) => {
      const hdr = Buffer.alloc(4);
      hdr.writeUInt32BE(bytes.length);
      feed(new FrameDecoder({ maxFrameBytes: MAX }), [hdr, Buffer.from(bytes)]);
    }),
    { numRuns: 3000 },
  );
});

test('random msgpack values in well-formed frames: valid messages or bad_shape', () => {
  fc.assert(
    fc.property(fc.oneof(fc.anything(), fc.record({ t: fc.constantFrom('req', 'res', 'err', 'data', 'end', 'hello', 'x'), id: fc.anything(), method: fc.anything(), code: fc.anything(), message: fc.anything(), v: fc.anything(), node: fc.anything(), stream: fc.anything() }, { requiredKeys: ['t'] })), (value) => {
      let payload: Buffer;
      try {
        payload = pack(value);
      } catch {
        return; // not encodable: nothing to test
      }
      if (payload.length === 0 || payload.length > MAX) return;
      const hdr = Buffer.alloc(4);
      hdr.writeUInt32BE(payload.length);
      const dec = new FrameDecoder({ maxFrameBytes: MAX });
      const { msgs, error } = feed(dec, [hdr, payload]);
      if (error) assert.match(error.reason, /^(bad_shape|bad_msgpack)$/);
      else {
        assert.equal(msgs.length, 1);
        assert.deepEqual(validateMessage(msgs[0]), msgs[0]);
      }
    }),
    { numRuns: 2000 },
  );
});

test('hostile lengths are refused from the header alone', () => {
  fc.assert(
    fc.property(fc.integer({ min: MAX + 1, max: 0xffff_ffff }), (len) => {
      const dec = new FrameDecoder({ maxFrameBytes: MAX });
      const hdr = Buffer.alloc(4);
      hdr.writeUInt32BE(len);
      assert.throws(() => dec.push(hdr), (e: unknown) => e instanceof ProtocolError && e.reason === 'frame_too_large');
      assert.equal(dec.bufferedBytes, 0);
    }),
  );
  const dec = new FrameDecoder({ maxFrameBytes: MAX });
  assert.throws(() => dec.push(Buffer.alloc(4)), (e: unknown) => e instanceof ProtocolError && e.reason === 'empty_frame');
});

test('truncated streams are reported at end(); trailing bytes inside a frame are bad_msgpack', () => {
  fc.assert(
    fc.property(message, fc.nat(), (m, cut) => {
      const wire = encodeFrame(m, MAX);
      const at = 1 + (cut % (wire.length - 1));
      const dec = new FrameDecoder({ maxFrameBytes: MAX });
      assert.deepEqual(dec.push(wire.subarray(0, at)), []);
      assert.throws(() => dec.end(), (e: unknown) => e instanceof ProtocolError && e.reason === 'truncated');
    }),
  );
  const inner = pack({ t: 'ping', id: 1 });
  const padded = Buffer.concat([inner, Buffer.from([0xc0])]);
  const hdr = Buffer.alloc(4);
  hdr.writeUInt32BE(padded.length);
  assert.throws(() => new FrameDecoder().push(Buffer.concat([hdr, padded])), (e: unknown) => e instanceof ProtocolError && e.reason === 'bad_msgpack');
});

test('a body dribbled one byte at a time is assembled, not kept as thousands of chunks', () => {
  const big: Message = { t: 'data', id: 7, body: Buffer.alloc(3000, 0xab) };
  const wire = encodeFrame(big, MAX);
  const dec = new FrameDecoder({ maxFrameBytes: MAX });
  const got: Message[] = [];
  for (let i = 0; i < wire.length; i++) got.push(...dec.push(wire.subarray(i, i + 1)).map((f) => f.msg));
  assert.deepEqual(got, [big]);
});

test('specific wrong shapes name the problem', () => {
  const cases: [unknown, RegExp][] = [
    [[1, 2], /must be a map/],
    [{ t: 'req', id: 0, method: 'a' }, /id 0 is reserved/],
    [{ t: 'req', id: 1, method: 'bad method' }, /req.method contains characters/],
    [{ t: 'req', id: 1, method: 'x'.repeat(129) }, /1\.\.128/],
    [{ t: 'req', id: 1, method: 'a', stream: 'yes' }, /stream must be a boolean/],
    [{ t: 'res', id: -1 }, /id must be an integer/],
    [{ t: 'res', id: 2 ** 32 }, /id must be an integer/],
    [{ t: 'err', id: 1, code: 'x', message: 'm'.repeat(5000) }, /at most 4096/],
    [{ t: 'nope', id: 1 }, /unknown message kind "nope"/],
    [{ id: 1 }, /"t" must be a string/],
  ];
  for (const [v, re] of cases) assert.throws(() => validateMessage(v), (e: unknown) => e instanceof ProtocolError && re.test(e.message), JSON.stringify(v)?.slice(0, 60));
});

test('encodeFrame refuses a message over the limit', () => {
  assert.throws(() => encodeFrame({ t: 'data', id: 1, body: Buffer.alloc(MAX) }, MAX), (e: unknown) => e instanceof RpcError && e.code === 'too_large');
});

test('__proto__ keys in a body do not touch prototypes', () => {
  const raw = Buffer.from([0x83, 0xa1, 0x74, 0xa3, 0x72, 0x65, 0x73, 0xa2, 0x69, 0x64, 0x01, 0xa4, 0x62, 0x6f, 0x64, 0x79, 0x81, 0xa9, ...Buffer.from('__proto__'), 0x81, 0xa1, 0x78, 0x01]);
  const hdr = Buffer.alloc(4);
  hdr.writeUInt32BE(raw.length);
  const [f] = new FrameDecoder().push(Buffer.concat([hdr, raw]));
  assert.ok(f);
  assert.equal(({} as Record<string, unknown>).x, undefined);
  assert.equal(Object.getPrototypeOf(f.msg), Object.prototype);
});

test('bulk binary data frames (written without msgpackr) decode like any other frame, and are bounded the same', () => {
  fc.assert(
    fc.property(id, fc.integer({ min: 64 * 1024, max: 300 * 1024 }), fc.nat(), fc.array(fc.nat(), { maxLength: 10 }), (i, n, seed, cuts) => {
      const data = Buffer.alloc(n, seed & 0xff);
      data[n - 1] = 7;
      const msg: Message = { t: 'data', id: i, body: data };
      const wire = encodeFrame(msg, 1 << 20);
      const dec = new FrameDecoder({ maxFrameBytes: 1 << 20 });
      const msgs = chunk(wire, cuts).flatMap((c) => dec.push(c).map((f) => f.msg));
      assert.deepEqual(msgs, [msg]);
      dec.end();
      // The same message as msgpackr's general encoding of it gives.
      const general = pack(msg);
      const head = Buffer.alloc(4);
      head.writeUInt32BE(general.length);
      assert.deepEqual(new FrameDecoder({ maxFrameBytes: 1 << 20 }).push(Buffer.concat([head, general])).map((f) => f.msg), msgs);
    }),
    { numRuns: 40 },
  );
  // Too large for the frame limit: the general path refuses it, as before.
  assert.throws(() => encodeFrame({ t: 'data', id: 1, body: Buffer.alloc(70 * 1024) }, 64 * 1024), RpcError);
});

test('a BinParts body is framed as one binary of its parts, above and below the bulk size', () => {
  for (const n of [10, 200 * 1024]) {
    const head = Buffer.from([1, 2, 3]);
    const data = Buffer.alloc(n, 9);
    const frames = new FrameDecoder({ maxFrameBytes: 1 << 20 }).push(encodeFrame({ t: 'data', id: 5, body: new BinParts([head, data]) }, 1 << 20));
    assert.deepEqual(frames.map((f) => f.msg), [{ t: 'data', id: 5, body: Buffer.concat([head, data]) }]);
  }
});

test('encodeFrameParts: a bulk body is sent from its own memory after a header; small ones as one frame', () => {
  const max = 1 << 20;
  const head = Buffer.from([1, 2, 3]);
  const data = Buffer.alloc(200 * 1024, 9);
  const parts = encodeFrameParts({ t: 'data', id: 5, body: new BinParts([head, data]) }, max);
  assert.equal(parts.length, 3);
  assert.equal(parts[1], head, 'the caller\'s buffers themselves, not copies');
  assert.equal(parts[2], data);
  assert.deepEqual(Buffer.concat(parts), encodeFrame({ t: 'data', id: 5, body: Buffer.concat([head, data]) }, max));
  const frames = new FrameDecoder({ maxFrameBytes: max }).push(Buffer.concat(parts));
  assert.deepEqual(frames.map((f) => f.msg), [{ t: 'data', id: 5, body: Buffer.concat([head, data]) }]);
  for (const msg of [{ t: 'data', id: 1, body: Buffer.alloc(100) }, { t: 'res', id: 1, body: Buffer.alloc(100_000) }] as Message[]) {
    assert.deepEqual(encodeFrameParts(msg, max), [encodeFrame(msg, max)]);
  }
});
