/**
 * Lifeguard local health awareness (memberlist awareness.go). A score 0..max-1 that rises when
 * this member shows signs of being the slow one (expected nacks missing, having to refute a
 * suspicion about itself) and falls on successful probes. Probe interval and timeouts are
 * multiplied by (score+1), so a degraded member slows down instead of accusing healthy peers.
 * External penalties (e.g. event-loop lag) add to the score without being decayed by probes.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

export class Awareness {
  readonly #max: number;
  #score = 0;
  #external = 0;

  constructor(maxMultiplier: number) {
    this.#max = maxMultiplier;
  }

  /** Effective health score (0 = healthy). */
  get score(): number {
    return Math.min(this.#max - 1, this.#score + this.#external);
  }

  applyDelta(delta: number): void {
    this.#score = Math.max(0, Math.min(this.#max - 1, this.#score + delta));
  }

  /** Penalty from outside the protocol (0..max-1), e.g. from event-loop lag. */
  setExternal(penalty: number): void {
    this.#external = Math.max(0, Math.min(this.#max - 1, Math.floor(penalty)));
  }

  scale(ms: number): number {
    return ms * (this.score + 1);
  }
}

/** Map event-loop lag to a penalty: one point per probeTimeout/2 of lag (bounded by the score). */
export function lagPenalty(lagMs: number, probeTimeout: number): number {
  if (!(lagMs > 0)) return 0;
  return Math.floor(lagMs / Math.max(1, probeTimeout / 2));
}

/** Samples real event-loop delay (p99 over each window) and feeds it to an Awareness. */
export class EventLoopLagMonitor {
  readonly #h: ReturnType<typeof monitorEventLoopDelay>;
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(awareness: Pick<Awareness, 'setExternal'>, probeTimeout: number, windowMs = 1000) {
    this.#h = monitorEventLoopDelay({ resolution: 20 });
    this.#h.enable();
    this.#timer = setInterval(() => {
      const p99ms = this.#h.percentile(99) / 1e6;
      awareness.setExternal(lagPenalty(p99ms, probeTimeout));
      this.#h.reset();
    }, windowMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#h.disable();
  }
}
