/**
 * Parsing of the value forms used in rules: durations (500ms, 10s, 2m, 1h, 1d), sizes (B, KB,
 * MB, GB, TB — binary multiples, as Monit and df -h use; KiB… accepted as synonyms), percentages
 * (0–100%), plain numbers and integers. Every parser returns a value or an error message that says
 * what form was expected.
 */
import type { UnitKind } from './types.ts';

export type Parsed = { ok: true; value: number } | { ok: false; expected: string };

const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_B: Record<string, number> = {
  b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4,
  kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4,
};

const NUM = /^(\d+(?:\.\d+)?)([a-zA-Z%]*)$/;

export const EXPECTED: Record<UnitKind, string> = {
  percent: 'a percentage like 90%',
  number: 'a number like 4 or 0.5',
  integer: 'a whole number like 200',
  duration: 'a duration like 500ms, 10s, 2m, 1h',
  size: 'a size like 512KB, 100MB, 1GB',
};

export function parseValue(text: string, unit: UnitKind): Parsed {
  const m = NUM.exec(text);
  const bad: Parsed = { ok: false, expected: EXPECTED[unit] };
  if (!m) return bad;
  const n = Number(m[1]);
  const suffix = (m[2] ?? '').toLowerCase();
  switch (unit) {
    case 'percent':
      if (suffix !== '%' || n > 100) return bad;
      return { ok: true, value: n };
    case 'number':
      return suffix === '' ? { ok: true, value: n } : bad;
    case 'integer':
      return suffix === '' && Number.isInteger(n) ? { ok: true, value: n } : bad;
    case 'duration': {
      const f = DURATION_MS[suffix];
      return f === undefined ? bad : { ok: true, value: n * f };
    }
    case 'size': {
      const f = SIZE_B[suffix];
      return f === undefined ? bad : { ok: true, value: Math.round(n * f) };
    }
  }
}

/** Duration for options (every/timeout): must be > 0. */
export function parseDuration(text: string): Parsed {
  const p = parseValue(text, 'duration');
  if (p.ok && p.value <= 0) return { ok: false, expected: 'a duration greater than zero like 10s' };
  return p;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  return Number.isInteger(s) ? `${s}s` : `${s.toFixed(1)}s`;
}

export function formatSize(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)}${units[i]}`;
}
