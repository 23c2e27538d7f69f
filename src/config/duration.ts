/** Durations in config files: '500ms' | '3s' | '2m' | '1h' (decimals allowed) → milliseconds. */
import { z } from 'zod';

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The duration in ms; undefined if malformed or zero. */
export function parseDurationMs(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? Number.NaN);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

/** zod schema for a duration string greater than zero (output: the string as written). */
export const durationSchema = z.string().refine((s) => parseDurationMs(s) !== undefined, {
  error: (iss) => `expected a duration greater than zero like 500ms, 3s, 2m, 1h, got ${JSON.stringify(iss.input)}`,
});
