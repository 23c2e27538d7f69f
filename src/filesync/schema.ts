/**
 * The `files` settings section (zod) of a pool, to register as component 'files', and
 * resolveTrees(), which turns one pool's parsed section into the runtime TreeConfig list of one
 * node (exceptions applied, durations and rates parsed, defaults filled).
 *
 *   files:
 *     trees:
 *       - name: www
 *         path: /var/www
 *         mode: two-way                     # or { one_way_from: <pool> }
 *         exclude: ["*.log", "cache/"]      # gitignore syntax
 *         include: []                       # if non-empty, only matching paths are synced
 *         owner: preserve                   # uid/gid (applied only by root or with CAP_CHOWN + CAP_FOWNER)
 *         numeric_ids: false                # true: owners by number only (else mapped by name)
 *         permissions: preserve
 *         post_sync: [{ run: "systemctl reload nginx", timeout: 30s }]
 *         debounce: 2s
 *         scan_interval: 10m                # periodic full scan (safety net for missed events)
 *         max_delete_percent: 50
 *         bandwidth_limit: 10MB/s
 *         tombstone_min_age: 24h            # purge a delete record once every member has it...
 *         tombstone_max_age: 4320h          # ...or once this old in any case (180 days)
 *     exceptions:
 *       web3: { www: { disabled: true } }
 *       web4: { www: { path: /srv/www } }
 *
 * Fields are optional in one pool's section (another pool may provide them, see
 * config/components.ts); resolveTrees() reports a tree that ends up without `path`.
 * Depends on: zod, config/duration.ts, index/gitignore.ts.
 */
import { z } from 'zod';
import { durationSchema, parseDurationMs } from '../config/duration.ts';
import { IgnoreMatcher } from './index/gitignore.ts';
import type { TreeConfig } from './types.ts';

export const DEFAULTS = {
  debounceMs: 2000,
  scanIntervalMs: 10 * 60_000,
  maxDeletePercent: 50,
  postSyncTimeoutMs: 30_000,
  tombstoneMinAgeMs: 24 * 3600_000,
  tombstoneMaxAgeMs: 180 * 24 * 3600_000,
} as const;

const RATE = /^(\d+(?:\.\d+)?)\s*(B|KB|kB|KiB|MB|MiB|GB|GiB)\/s$/;
const RATE_UNIT: Record<string, number> = { B: 1, KB: 1e3, kB: 1e3, KiB: 1024, MB: 1e6, MiB: 1024 ** 2, GB: 1e9, GiB: 1024 ** 3 };

/** '10MB/s' → bytes per second; undefined if malformed or below 1 KB/s. */
export function parseRate(text: string): number | undefined {
  const m = RATE.exec(text.trim());
  if (!m) return undefined;
  const v = Number(m[1]) * (RATE_UNIT[m[2] ?? ''] ?? Number.NaN);
  return Number.isFinite(v) && v >= 1000 ? Math.floor(v) : undefined;
}

const patternList = z.array(z.string()).superRefine((lines, ctx) => {
  lines.forEach((l, i) => {
    try {
      new IgnoreMatcher([l]);
    } catch (e) {
      ctx.addIssue({ code: 'custom', path: [i], message: (e as Error).message });
    }
  });
});

export const TREE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const absPath = z.string().refine((p) => p.startsWith('/') && p !== '/' && !p.includes('\0') && !p.split('/').includes('..'), {
  error: (iss) => `expected an absolute directory path other than / without "..", got ${JSON.stringify(iss.input)}`,
});

export const treeSchema = z.strictObject({
  name: z.string().regex(TREE_NAME, 'tree name: 1-64 characters of A-Z a-z 0-9 . _ - (starting with a letter or digit)'),
  path: absPath.optional(),
  mode: z.union([z.literal('two-way'), z.strictObject({ one_way_from: z.string().min(1) })]).optional(),
  exclude: patternList.optional(),
  include: patternList.optional(),
  owner: z.enum(['preserve', 'ignore']).optional(),
  numeric_ids: z.boolean().optional(),
  permissions: z.enum(['preserve', 'ignore']).optional(),
  post_sync: z.array(z.strictObject({ run: z.string().min(1), timeout: durationSchema.optional() })).optional(),
  debounce: durationSchema.optional(),
  scan_interval: durationSchema.optional(),
  max_delete_percent: z.number().min(0).max(100).optional(),
  bandwidth_limit: z.string().refine((s) => parseRate(s) !== undefined, {
    error: (iss) => `expected a rate of at least 1KB/s like 500KB/s, 10MB/s, 1GiB/s, got ${JSON.stringify(iss.input)}`,
  }).optional(),
  tombstone_min_age: durationSchema.optional(),
  tombstone_max_age: durationSchema.optional(),
}).superRefine((t, ctx) => {
  const min = t.tombstone_min_age === undefined ? DEFAULTS.tombstoneMinAgeMs : parseDurationMs(t.tombstone_min_age)!;
  const max = t.tombstone_max_age === undefined ? DEFAULTS.tombstoneMaxAgeMs : parseDurationMs(t.tombstone_max_age)!;
  if (min > max) ctx.addIssue({ code: 'custom', path: ['tombstone_max_age'], message: `tombstone_max_age (${max} ms) must not be below tombstone_min_age (${min} ms)` });
});

const exceptionSchema = z.union([z.strictObject({ disabled: z.literal(true) }), z.strictObject({ path: absPath })]);

export const filesSectionSchema = z.strictObject({
  trees: z.array(treeSchema).optional(),
  exceptions: z.record(z.string().min(1), z.record(z.string().min(1), exceptionSchema)).optional(),
}).superRefine((s, ctx) => {
  const seen = new Map<string, number>();
  (s.trees ?? []).forEach((t, i) => {
    const prev = seen.get(t.name);
    if (prev !== undefined) ctx.addIssue({ code: 'custom', path: ['trees', i, 'name'], message: `duplicate tree ${JSON.stringify(t.name)} (also trees[${prev}])` });
    else seen.set(t.name, i);
  });
});

export type FilesSection = z.output<typeof filesSectionSchema>;


/**
 * The trees `node` syncs for `pool`, from that pool's (aggregated) section. Throws an Error
 * naming the tree when a required field is missing.
 */
export function resolveTrees(section: FilesSection, ctx: { node: string; pool: string }): TreeConfig[] {
  const parsed = filesSectionSchema.parse(section);
  const exc = parsed.exceptions?.[ctx.node] ?? {};
  const out: TreeConfig[] = [];
  for (const t of parsed.trees ?? []) {
    const e = exc[t.name];
    if (e !== undefined && 'disabled' in e) continue;
    const root = e !== undefined && 'path' in e ? e.path : t.path;
    if (root === undefined) throw new Error(`files.trees[${t.name}] has no path (pool ${ctx.pool})`);
    const mode = t.mode === undefined || t.mode === 'two-way' ? ('two-way' as const) : { oneWayFrom: t.mode.one_way_from };
    out.push({
      name: t.name,
      pool: ctx.pool,
      root: root.replace(/\/+$/, ''),
      mode,
      exclude: t.exclude ?? [],
      include: t.include !== undefined && t.include.length > 0 ? t.include : undefined,
      owner: t.owner ?? 'preserve',
      numericIds: t.numeric_ids ?? false,
      permissions: t.permissions ?? 'preserve',
      postSync: (t.post_sync ?? []).map((p) => ({ run: p.run, timeoutMs: p.timeout === undefined ? DEFAULTS.postSyncTimeoutMs : parseDurationMs(p.timeout)! })),
      debounceMs: t.debounce === undefined ? DEFAULTS.debounceMs : parseDurationMs(t.debounce)!,
      scanIntervalMs: t.scan_interval === undefined ? DEFAULTS.scanIntervalMs : parseDurationMs(t.scan_interval)!,
      maxDeletePercent: t.max_delete_percent ?? DEFAULTS.maxDeletePercent,
      bandwidthBps: t.bandwidth_limit === undefined ? undefined : parseRate(t.bandwidth_limit),
      tombstoneMinAgeMs: t.tombstone_min_age === undefined ? DEFAULTS.tombstoneMinAgeMs : parseDurationMs(t.tombstone_min_age)!,
      tombstoneMaxAgeMs: t.tombstone_max_age === undefined ? DEFAULTS.tombstoneMaxAgeMs : parseDurationMs(t.tombstone_max_age)!,
    });
  }
  for (const name of Object.keys(exc)) {
    if (!(parsed.trees ?? []).some((t) => t.name === name)) throw new Error(`files.exceptions.${ctx.node}.${name}: no such tree in pool ${ctx.pool}`);
  }
  return out;
}
