/**
 * The default clock: performance.now() (monotonic, not stepped by NTP or an admin changing the
 * date, which matters for leases) and Node timers.
 *
 * Public interface: realClock.
 * Depends on: ./types.ts.
 */
import type { Clock } from './types.ts';

export function realClock(): Clock {
  return {
    now: () => performance.now(),
    setTimer: (ms, fn) => {
      const t = setTimeout(fn, Math.max(0, ms));
      // Lease and heartbeat timers must not keep a stopping process alive.
      t.unref();
      return { _timer: t };
    },
    clearTimer: (h) => clearTimeout(h._timer as ReturnType<typeof setTimeout>),
  };
}
