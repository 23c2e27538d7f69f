/**
 * Vivaldi network coordinates, a port of hashicorp/serf's `coordinate` package (client.go,
 * coordinate.go, config.go): every member keeps a point in an 8-dimensional Euclidean space plus
 * a non-Euclidean "height" (its access-link latency), so that the distance between two members'
 * coordinates estimates the round-trip time between them without ever measuring that pair.
 *
 * Updated from RTT samples of direct probes (Memberlist: the acker piggybacks its coordinate on
 * the ack, like memberlist's PingDelegate). Units are seconds internally, as in serf.
 *
 * Public interface: CoordinateClient (update, coordinate, forget), distance(a, b) (seconds),
 * encodeCoordinate/decodeCoordinate (fixed 45-byte wire form, strict), defaultCoordinateConfig().
 * Depends on nothing.
 */

export interface CoordinateConfig {
  /** Euclidean dimensions (serf: 8). */
  dimensionality: number;
  /** Upper bound (and initial value) of the error estimate (serf: 1.5). */
  vivaldiErrorMax: number;
  /** Weight of a sample in the error estimate (serf: 0.25). */
  vivaldiCE: number;
  /** Weight of a sample in the position update (serf: 0.25). */
  vivaldiCC: number;
  /** Samples in the adjustment window (serf: 20; 0 disables the adjustment term). */
  adjustmentWindowSize: number;
  /** Minimum height, seconds (serf: 10 µs). */
  heightMin: number;
  /** Samples per peer in the median latency filter (serf: 3). */
  latencyFilterSize: number;
  /** Gravity towards the origin keeps coordinates from drifting away together (serf: 150 s). */
  gravityRho: number;
}

export function defaultCoordinateConfig(): CoordinateConfig {
  return {
    dimensionality: 8, vivaldiErrorMax: 1.5, vivaldiCE: 0.25, vivaldiCC: 0.25,
    adjustmentWindowSize: 20, heightMin: 10e-6, latencyFilterSize: 3, gravityRho: 150,
  };
}

export interface Coordinate {
  vec: number[];
  error: number;
  adjustment: number;
  height: number;
}

const ZERO_THRESHOLD = 1e-6;
/** serf refuses RTT samples above this (seconds). */
export const MAX_RTT_S = 10;

export function newCoordinate(cfg: CoordinateConfig = defaultCoordinateConfig()): Coordinate {
  return { vec: new Array<number>(cfg.dimensionality).fill(0), error: cfg.vivaldiErrorMax, adjustment: 0, height: cfg.heightMin };
}

export function cloneCoordinate(c: Coordinate): Coordinate {
  return { vec: [...c.vec], error: c.error, adjustment: c.adjustment, height: c.height };
}

export function isValidCoordinate(c: Coordinate): boolean {
  return c.vec.every(Number.isFinite) && Number.isFinite(c.error) && Number.isFinite(c.adjustment) && Number.isFinite(c.height);
}

function magnitude(v: number[]): number {
  let s = 0;
  for (const x of v) s += x * x;
  return Math.sqrt(s);
}

function diff(a: number[], b: number[]): number[] {
  return a.map((x, i) => x - (b[i] ?? 0));
}

/** Distance without the adjustment terms (serf rawDistanceTo), seconds. */
export function rawDistance(a: Coordinate, b: Coordinate): number {
  return magnitude(diff(a.vec, b.vec)) + a.height + b.height;
}

/** Estimated RTT between the owners of two coordinates, seconds (serf DistanceTo). */
export function distance(a: Coordinate, b: Coordinate): number {
  const d = rawDistance(a, b);
  const adjusted = d + a.adjustment + b.adjustment;
  return adjusted > 0 ? adjusted : d;
}

/** Unit vector from b to a and the distance; a random direction when they coincide. */
function unitVectorAt(a: number[], b: number[], rand: () => number): [number[], number] {
  const r = diff(a, b);
  const mag = magnitude(r);
  if (mag > ZERO_THRESHOLD) return [r.map((x) => x / mag), mag];
  const rr = r.map(() => rand() - 0.5);
  const m2 = magnitude(rr);
  if (m2 > ZERO_THRESHOLD) return [rr.map((x) => x / m2), 0];
  const unit = new Array<number>(r.length).fill(0);
  unit[0] = 1;
  return [unit, 0];
}

function applyForce(cfg: CoordinateConfig, c: Coordinate, force: number, other: Coordinate, rand: () => number): Coordinate {
  const [unit, mag] = unitVectorAt(c.vec, other.vec, rand);
  const ret = cloneCoordinate(c);
  ret.vec = ret.vec.map((x, i) => x + (unit[i] as number) * force);
  if (mag > ZERO_THRESHOLD) ret.height = Math.max(cfg.heightMin, ((ret.height + other.height) * force) / mag + ret.height);
  return ret;
}

export class CoordinateError extends Error {
  override name = 'CoordinateError';
}

/** One member's Vivaldi state (serf coordinate.Client). */
export class CoordinateClient {
  readonly config: CoordinateConfig;
  #coord: Coordinate;
  readonly #origin: Coordinate;
  readonly #adjSamples: number[];
  #adjIndex = 0;
  readonly #latency = new Map<string, number[]>();
  readonly #rand: () => number;
  /** Times the coordinate became invalid (NaN/∞) and was reset. */
  resets = 0;
  updates = 0;

  constructor(config: Partial<CoordinateConfig> = {}, rand: () => number = Math.random) {
    this.config = { ...defaultCoordinateConfig(), ...config };
    if (!Number.isInteger(this.config.dimensionality) || this.config.dimensionality < 1 || this.config.dimensionality > 16) {
      throw new CoordinateError(`dimensionality must be 1..16, got ${this.config.dimensionality}`);
    }
    this.#coord = newCoordinate(this.config);
    this.#origin = newCoordinate(this.config);
    this.#adjSamples = new Array<number>(this.config.adjustmentWindowSize).fill(0);
    this.#rand = rand;
  }

  coordinate(): Coordinate {
    return cloneCoordinate(this.#coord);
  }

  /** Replace our coordinate (e.g. restored from a snapshot). */
  setCoordinate(c: Coordinate): void {
    this.#check(c);
    this.#coord = cloneCoordinate(c);
  }

  /** Forget a peer's latency samples (it left or was reaped). */
  forget(node: string): void {
    this.#latency.delete(node);
  }

  /** Estimated RTT from us to the owner of `other`, seconds. */
  distanceTo(other: Coordinate): number {
    return distance(this.#coord, other);
  }

  #check(c: Coordinate): void {
    if (c.vec.length !== this.config.dimensionality) throw new CoordinateError(`dimensionality mismatch: ${c.vec.length} != ${this.config.dimensionality}`);
    if (!isValidCoordinate(c)) throw new CoordinateError('invalid coordinate (NaN or infinite component)');
  }

  /** Median of the last few samples for this peer: one slow ack must not fling us away. */
  #filter(node: string, rtt: number): number {
    let s = this.#latency.get(node);
    if (!s) {
      s = [];
      this.#latency.set(node, s);
    }
    s.push(rtt);
    if (s.length > this.config.latencyFilterSize) s.shift();
    const sorted = [...s].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)] as number;
  }

  #updateVivaldi(other: Coordinate, rtt: number): void {
    const cfg = this.config;
    const dist = distance(this.#coord, other);
    rtt = Math.max(rtt, ZERO_THRESHOLD);
    const wrongness = Math.abs(dist - rtt) / rtt;
    const totalError = Math.max(this.#coord.error + other.error, ZERO_THRESHOLD);
    const weight = this.#coord.error / totalError;
    this.#coord.error = Math.min(cfg.vivaldiErrorMax, cfg.vivaldiCE * weight * wrongness + this.#coord.error * (1 - cfg.vivaldiCE * weight));
    const force = cfg.vivaldiCC * weight * (rtt - dist);
    this.#coord = applyForce(cfg, this.#coord, force, other, this.#rand);
  }

  #updateAdjustment(other: Coordinate, rtt: number): void {
    const w = this.config.adjustmentWindowSize;
    if (w === 0) return;
    this.#adjSamples[this.#adjIndex] = rtt - rawDistance(this.#coord, other);
    this.#adjIndex = (this.#adjIndex + 1) % w;
    let sum = 0;
    for (const x of this.#adjSamples) sum += x;
    this.#coord.adjustment = sum / (2 * w);
  }

  #updateGravity(): void {
    const dist = distance(this.#origin, this.#coord);
    const force = -1 * (dist / this.config.gravityRho) ** 2;
    this.#coord = applyForce(this.config, this.#coord, force, this.#origin, this.#rand);
  }

  /**
   * One RTT sample (seconds) to `node`, whose coordinate is `other`. Returns our new coordinate.
   * Throws CoordinateError for an invalid coordinate or an RTT outside [0, 10 s] (serf's checks).
   */
  update(node: string, other: Coordinate, rttSeconds: number): Coordinate {
    this.#check(other);
    if (!Number.isFinite(rttSeconds) || rttSeconds < 0 || rttSeconds > MAX_RTT_S) {
      throw new CoordinateError(`round trip time ${rttSeconds}s is not within 0..${MAX_RTT_S}s`);
    }
    const rtt = this.#filter(node, rttSeconds);
    this.#updateVivaldi(other, rtt);
    this.#updateAdjustment(other, rtt);
    this.#updateGravity();
    if (!isValidCoordinate(this.#coord)) {
      this.resets++;
      this.#coord = newCoordinate(this.config);
    }
    this.updates++;
    return this.coordinate();
  }
}

// ---------------------------------------------------------------- wire form

/** Wire form: version byte (1) + 8 × float32 vec + error + adjustment + height, big-endian. */
export const COORDINATE_WIRE_VERSION = 1;
export const WIRE_DIMENSIONS = 8;
export const COORDINATE_BYTES = 1 + 4 * (WIRE_DIMENSIONS + 3);
/** Bounds a decoded coordinate must satisfy (seconds): anything beyond is nonsense or hostile. */
export const COORDINATE_BOUNDS = { component: 100, error: 1.5, adjustment: 10, height: 10 } as const;

/** Fixed-size encoding; the coordinate must have WIRE_DIMENSIONS dimensions. */
export function encodeCoordinate(c: Coordinate): Uint8Array {
  if (c.vec.length !== WIRE_DIMENSIONS) throw new CoordinateError(`only ${WIRE_DIMENSIONS}-dimensional coordinates travel on the wire`);
  const out = new Uint8Array(COORDINATE_BYTES);
  const dv = new DataView(out.buffer);
  out[0] = COORDINATE_WIRE_VERSION;
  let o = 1;
  const b = COORDINATE_BOUNDS;
  const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));
  for (const x of c.vec) {
    dv.setFloat32(o, clamp(x, -b.component, b.component));
    o += 4;
  }
  dv.setFloat32(o, clamp(c.error, 0, b.error));
  dv.setFloat32(o + 4, clamp(c.adjustment, -b.adjustment, b.adjustment));
  dv.setFloat32(o + 8, clamp(c.height, 0, b.height));
  return out;
}

/** Strict decoder: returns the coordinate, or a string saying what is wrong. */
export function decodeCoordinate(b: Uint8Array): Coordinate | string {
  if (b.length !== COORDINATE_BYTES) return `expected ${COORDINATE_BYTES} bytes, got ${b.length}`;
  if (b[0] !== COORDINATE_WIRE_VERSION) return `unknown coordinate version ${String(b[0])}`;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const bd = COORDINATE_BOUNDS;
  const vec: number[] = [];
  let o = 1;
  for (let i = 0; i < WIRE_DIMENSIONS; i++, o += 4) {
    const x = dv.getFloat32(o);
    if (!Number.isFinite(x) || Math.abs(x) > bd.component) return `vec[${i}] out of range`;
    vec.push(x);
  }
  const error = dv.getFloat32(o);
  const adjustment = dv.getFloat32(o + 4);
  const height = dv.getFloat32(o + 8);
  if (!Number.isFinite(error) || error < 0 || error > bd.error) return 'error out of range';
  if (!Number.isFinite(adjustment) || Math.abs(adjustment) > bd.adjustment) return 'adjustment out of range';
  if (!Number.isFinite(height) || height < 0 || height > bd.height) return 'height out of range';
  return { vec, error, adjustment, height };
}
