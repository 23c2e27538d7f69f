/**
 * Vivaldi coordinates (serf's algorithm): convergence on synthetic latency matrices by direct
 * update calls, serf's input checks, and the strict 45-byte wire form (fuzzed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  COORDINATE_BOUNDS, COORDINATE_BYTES, CoordinateClient, CoordinateError, decodeCoordinate, distance, encodeCoordinate, newCoordinate,
  type Coordinate,
} from '../../src/membership/coordinate.ts';
import { DecodeError, decode, encode, type Message } from '../../src/membership/messages.ts';
import { seededRandom } from '../../src/membership/sim.ts';

/** Runs `rounds` rounds in which every node samples one random other node. Returns the clients. */
function simulate(n: number, rtt: (i: number, j: number) => number, rounds: number, seed = 1, noise = 0): CoordinateClient[] {
  const rand = seededRandom(seed);
  const clients = Array.from({ length: n }, (_, i) => new CoordinateClient({}, seededRandom(seed * 31 + i)));
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < n; i++) {
      let j = Math.floor(rand() * (n - 1));
      if (j >= i) j++;
      const sample = rtt(i, j) * (1 + noise * (rand() * 2 - 1));
      (clients[i] as CoordinateClient).update(`n${j}`, (clients[j] as CoordinateClient).coordinate(), sample);
    }
  }
  return clients;
}

/** Relative errors |estimate − truth| / truth over all pairs, sorted. */
function relErrors(clients: CoordinateClient[], rtt: (i: number, j: number) => number): number[] {
  const errs: number[] = [];
  for (let i = 0; i < clients.length; i++) {
    for (let j = i + 1; j < clients.length; j++) {
      const est = distance((clients[i] as CoordinateClient).coordinate(), (clients[j] as CoordinateClient).coordinate());
      errs.push(Math.abs(est - rtt(i, j)) / rtt(i, j));
    }
  }
  return errs.sort((a, b) => a - b);
}

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] as number;

test('vivaldi: a new coordinate is the origin with maximal error', () => {
  const c = new CoordinateClient();
  const x = c.coordinate();
  assert.equal(x.vec.length, 8);
  assert.ok(x.vec.every((v) => v === 0));
  assert.equal(x.error, 1.5);
  assert.equal(x.height, 10e-6);
});

test('vivaldi: converges on a synthetic matrix of points in a plane with access-link heights', () => {
  // 24 nodes at random positions in a 100 ms × 100 ms square, each with a 1–6 ms access link.
  const rand = seededRandom(7);
  const pts = Array.from({ length: 24 }, () => ({ x: rand() * 0.1, y: rand() * 0.1, h: 0.001 + rand() * 0.005 }));
  const rtt = (i: number, j: number) => {
    const a = pts[i] as { x: number; y: number; h: number };
    const b = pts[j] as { x: number; y: number; h: number };
    return Math.hypot(a.x - b.x, a.y - b.y) + a.h + b.h;
  };
  const before = relErrors(Array.from({ length: 24 }, () => new CoordinateClient()), rtt);
  const clients = simulate(24, rtt, 400, 3, 0.05);
  const errs = relErrors(clients, rtt);
  assert.ok(pct(before, 0.5) > 0.9, `untrained median error ${pct(before, 0.5)}`);
  if (process.env.SHOW) console.log("median", pct(errs, 0.5), "p90", pct(errs, 0.9), "before", pct(before, 0.5));
  assert.ok(pct(errs, 0.5) < 0.1, `median relative error ${pct(errs, 0.5).toFixed(3)}`);
  assert.ok(pct(errs, 0.9) < 0.25, `90th percentile relative error ${pct(errs, 0.9).toFixed(3)}`);
  // The error estimate came down from ErrorMax along with the real error.
  for (const c of clients) assert.ok(c.coordinate().error < 0.5, `error estimate ${c.coordinate().error}`);
});

test('vivaldi: two data centres (2 ms inside, 80 ms between) separate cleanly', () => {
  const dc = (i: number) => (i < 8 ? 0 : 1);
  const rtt = (i: number, j: number) => (dc(i) === dc(j) ? 0.002 : 0.08);
  const clients = simulate(16, rtt, 300, 5, 0.1);
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 16; j++) {
      if (i === j) continue;
      const est = distance((clients[i] as CoordinateClient).coordinate(), (clients[j] as CoordinateClient).coordinate());
      if (dc(i) === dc(j)) assert.ok(est < 0.015, `same DC ${i}-${j}: ${est * 1000} ms`);
      else assert.ok(est > 0.06 && est < 0.1, `across DCs ${i}-${j}: ${est * 1000} ms`);
    }
  }
});

test('vivaldi: the latency filter takes the median, so one outlier sample barely moves us', () => {
  const a = new CoordinateClient({}, seededRandom(1));
  const other: Coordinate = { ...newCoordinate(), vec: [0.01, 0, 0, 0, 0, 0, 0, 0], error: 0.1 };
  for (let i = 0; i < 50; i++) a.update('b', other, 0.01);
  const settled = distance(a.coordinate(), other);
  a.update('b', other, 5); // one 5 s outlier among 10 ms samples
  assert.ok(Math.abs(distance(a.coordinate(), other) - settled) < 0.002, `moved to ${distance(a.coordinate(), other)}`);
});

test("vivaldi: serf's input checks (dimensions, NaN, RTT range) and reset on invalid state", () => {
  const a = new CoordinateClient();
  assert.throws(() => a.update('b', { ...newCoordinate(), vec: [0, 0] }, 0.01), CoordinateError);
  assert.throws(() => a.update('b', { ...newCoordinate(), height: Number.NaN }, 0.01), CoordinateError);
  assert.throws(() => a.update('b', newCoordinate(), -1), CoordinateError);
  assert.throws(() => a.update('b', newCoordinate(), 11), CoordinateError);
  assert.throws(() => new CoordinateClient({ dimensionality: 0 }), CoordinateError);
  // Zero RTT is allowed (clamped to 1 µs), as in serf.
  a.update('b', newCoordinate(), 0);
  assert.ok(a.coordinate().vec.every(Number.isFinite));
});

test('coordinate wire form: round trip within float32 precision, fixed size', () => {
  const c: Coordinate = { vec: [0.001, -0.02, 0.3, 0, 1e-5, -1e-6, 0.05, 0.0001], error: 0.42, adjustment: -0.0003, height: 0.00012 };
  const b = encodeCoordinate(c);
  assert.equal(b.length, COORDINATE_BYTES);
  const d = decodeCoordinate(b);
  assert.ok(typeof d !== 'string', String(d));
  for (let i = 0; i < 8; i++) assert.ok(Math.abs((d.vec[i] as number) - (c.vec[i] as number)) < 1e-7);
  assert.ok(Math.abs(d.error - c.error) < 1e-6 && Math.abs(d.height - c.height) < 1e-8 && Math.abs(d.adjustment - c.adjustment) < 1e-8);
  // Out-of-range values are clamped on encode, never sent as nonsense.
  const clamped = decodeCoordinate(encodeCoordinate({ vec: [1e9, 0, 0, 0, 0, 0, 0, 0], error: 9, adjustment: -99, height: 50 }));
  assert.ok(typeof clamped !== 'string');
  assert.equal(clamped.vec[0], COORDINATE_BOUNDS.component);
  assert.equal(clamped.error, COORDINATE_BOUNDS.error);
});

test('coordinate decoder: precise refusals', () => {
  const good = encodeCoordinate(newCoordinate());
  assert.match(String(decodeCoordinate(good.subarray(0, 44))), /expected 45 bytes/);
  const v2 = Uint8Array.from(good);
  v2[0] = 2;
  assert.match(String(decodeCoordinate(v2)), /version 2/);
  const nan = Uint8Array.from(good);
  new DataView(nan.buffer).setFloat32(1, Number.NaN);
  assert.match(String(decodeCoordinate(nan)), /vec\[0\]/);
  const negH = Uint8Array.from(good);
  new DataView(negH.buffer).setFloat32(41, -1);
  assert.match(String(decodeCoordinate(negH)), /height/);
});

test('coordinate decoder fuzz: any bytes give a bounded, finite coordinate or a reason, never an exception', () => {
  const check = (bytes: Uint8Array) => {
    const r = decodeCoordinate(bytes);
    if (typeof r === 'string') return;
    assert.equal(r.vec.length, 8);
    for (const x of r.vec) assert.ok(Number.isFinite(x) && Math.abs(x) <= COORDINATE_BOUNDS.component);
    assert.ok(r.error >= 0 && r.error <= COORDINATE_BOUNDS.error && r.height >= 0 && r.height <= COORDINATE_BOUNDS.height);
    assert.ok(Math.abs(r.adjustment) <= COORDINATE_BOUNDS.adjustment);
    // Anything accepted is usable: distances stay finite.
    assert.ok(Number.isFinite(distance(r, newCoordinate())));
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), (b) => check(b)), { numRuns: 2000 });
  // Same size with a valid version byte: exercises the float checks.
  fc.assert(fc.property(fc.uint8Array({ minLength: COORDINATE_BYTES - 1, maxLength: COORDINATE_BYTES - 1 }), (b) => check(Uint8Array.from([1, ...b]))), { numRuns: 5000 });
});

const coordMsgs: Message[] = [
  { type: 'ack', seq: 7, coord: { vec: [0.001, 0, 0, 0, 0, 0, 0, 0.002], error: 0.5, adjustment: 0, height: 0.0001 } },
  { type: 'coord', node: 'n3', seq: 12, coord: newCoordinate() },
  {
    type: 'ppRows', rows: [
      { name: 'a', addr: 'h:1', meta: new Uint8Array([9]), maint: null, incarnation: 4, state: 0, coordSeq: 3, coord: newCoordinate() },
      { name: 'b', addr: 'h:2', meta: new Uint8Array(), maint: null, incarnation: 1, state: 0 },
    ],
    coords: [{ node: 'c', seq: 9, coord: newCoordinate() }], want: [], wantCoords: [], user: [], wantUser: [],
  },
];

test('codec: ack with coordinate, coord gossip and push/pull rows with coordinates round-trip', () => {
  for (const m of coordMsgs) {
    const [back] = decode(encode(m));
    assert.equal(back?.type, m.type);
    assert.equal(JSON.stringify(encode(back as Message)), JSON.stringify(encode(m)));
  }
  assert.ok(encode(coordMsgs[0] as Message).length < 64, 'an ack with a coordinate stays small');
});

test('codec fuzz: bit flips and truncations of coordinate-carrying messages only give DecodeError', () => {
  const valid = coordMsgs.map(encode);
  fc.assert(fc.property(fc.nat(valid.length - 1), fc.nat(), fc.nat(255), fc.boolean(), (which, pos, val, truncate) => {
    const src = valid[which] as Uint8Array;
    const b = truncate ? src.subarray(0, pos % src.length) : Uint8Array.from(src);
    if (!truncate) b[pos % b.length] = val;
    try {
      for (const m of decode(b)) if (m.type === 'ack' && m.coord) assert.ok(Number.isFinite(distance(m.coord, newCoordinate())));
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
    }
  }), { numRuns: 5000 });
});
