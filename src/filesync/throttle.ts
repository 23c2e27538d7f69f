/**
 * Token-bucket rate limiter for a tree's `bandwidth_limit`: take(n) resolves when n more bytes
 * may be sent. Burst = one second of rate, so short transfers are not slowed at all.
 */
export class Throttle {
  readonly #bps: number;
  #tokens: number;
  #last = performance.now();

  constructor(bytesPerSecond: number) {
    this.#bps = bytesPerSecond;
    this.#tokens = bytesPerSecond;
  }

  async take(n: number): Promise<void> {
    const now = performance.now();
    this.#tokens = Math.min(this.#bps, this.#tokens + ((now - this.#last) / 1000) * this.#bps);
    this.#last = now;
    this.#tokens -= n;
    if (this.#tokens < 0) await new Promise((r) => setTimeout(r, (-this.#tokens / this.#bps) * 1000));
  }
}
