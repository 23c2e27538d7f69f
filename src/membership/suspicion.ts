/**
 * Lifeguard dynamic suspicion (memberlist suspicion.go). A suspicion timer starts at `max` and
 * shrinks towards `min` as independent members confirm the suspicion:
 *   timeout(n) = max − log(n+1)/log(k+1) · (max − min)
 * where n = confirmations so far and k = confirmations expected. A member that really is down
 * gets declared dead sooner; one suspected by a lone (maybe slow) member gets more time to refute.
 */
import type { Clock, TimerHandle } from './clock.ts';

export function suspicionRemaining(n: number, k: number, elapsed: number, min: number, max: number): number {
  const frac = k > 0 ? Math.log(n + 1) / Math.log(k + 1) : 1;
  const raw = max - frac * (max - min);
  const timeout = Math.max(min, Math.floor(raw));
  return timeout - elapsed;
}

export class Suspicion {
  readonly #clock: Clock;
  readonly #k: number;
  readonly #min: number;
  readonly #max: number;
  readonly #start: number;
  readonly #confirmers = new Set<string>();
  readonly #onTimeout: (confirmations: number) => void;
  #n = 0;
  #timer: TimerHandle | null;
  #fired = false;

  /**
   * `from` is the first accuser (does not count as a confirmation); k = expected confirmations
   * (0 disables shrinking, so the timer is just min).
   */
  constructor(clock: Clock, from: string, k: number, min: number, max: number, onTimeout: (confirmations: number) => void) {
    this.#clock = clock;
    this.#k = k;
    this.#min = min;
    this.#max = k < 1 ? min : max;
    this.#start = clock.now();
    this.#confirmers.add(from);
    this.#onTimeout = onTimeout;
    this.#timer = clock.setTimer(this.#max, () => this.#fire());
  }

  get confirmations(): number {
    return this.#n;
  }

  /** Current total timeout (ms from start). */
  get timeout(): number {
    return suspicionRemaining(this.#n, this.#k, 0, this.#min, this.#max);
  }

  /** Returns true if `from` is a new independent confirmation (then re-gossip it). */
  confirm(from: string): boolean {
    if (this.#fired || this.#n >= this.#k) return false;
    if (this.#confirmers.has(from)) return false;
    this.#confirmers.add(from);
    this.#n++;
    const remaining = suspicionRemaining(this.#n, this.#k, this.#clock.now() - this.#start, this.#min, this.#max);
    if (this.#timer) this.#clock.clearTimer(this.#timer);
    this.#timer = this.#clock.setTimer(Math.max(0, remaining), () => this.#fire());
    return true;
  }

  stop(): void {
    if (this.#timer) this.#clock.clearTimer(this.#timer);
    this.#timer = null;
    this.#fired = true;
  }

  #fire(): void {
    if (this.#fired) return;
    this.#fired = true;
    this.#timer = null;
    this.#onTimeout(this.#n);
  }
}
