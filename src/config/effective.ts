/**
 * A node's effective settings: the aggregation of every pool it is a member of, plus its override.
 *
 * - Objects merge key by key.
 * - A leaf (scalar, or a list that is not a list of named objects) set by several pools must be
 *   equal in all of them (then its source is the first of those pools in file order); different
 *   values are a `SettingConflict`, never settled silently, unless the node's override sets that
 *   path: the override wins (source: override).
 * - A list whose items are all objects with a string `name` merges by name: each named item is a
 *   sub-object, so conflicts are per field. Its path step is `[name=<name>]`
 *   (e.g. `health.checks[name=http].interval`).
 * - Values of different kinds at one path (a mapping in one pool, a number in another) conflict.
 * - The override merges the same way, and wins wherever it sets a leaf; where it sets a mapping
 *   (or named list) and the pools set something of another kind, the override replaces it.
 * - A conflicting path is left out of `settings` and `values`, and listed in `conflicts`.
 */
import type { ComponentSettings, Config, EffectiveConfig, EffectiveValue, SettingConflict, ValueSource } from './types.ts';
import { keySegment } from './paths.ts';

interface Contribution {
  value: unknown;
  source: ValueSource;
}

interface Acc {
  values: EffectiveValue[];
  conflicts: SettingConflict[];
}

type Merged = { set: true; value: unknown } | { set: false };

type Kind = 'object' | 'named' | 'empty-list' | 'leaf';

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && [Object.prototype, null].includes(Object.getPrototypeOf(v));

function kindOf(v: unknown): Kind {
  if (isPlainObject(v)) return 'object';
  if (Array.isArray(v)) {
    if (v.length === 0) return 'empty-list';
    if (v.every((item) => isPlainObject(item) && typeof item.name === 'string')) return 'named';
  }
  return 'leaf';
}

/** Structural equality of plain data (what YAML and zod produce). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    return ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

const childPath = (path: string, key: string): string => (path === '' ? keySegment(key).replace(/^\./, '') : path + keySegment(key));

const itemPath = (path: string, name: string): string =>
  `${path}[name=${/^[A-Za-z0-9_.:/-]+$/.test(name) ? name : JSON.stringify(name)}]`;

function leaf(path: string, value: unknown, source: ValueSource, acc: Acc): Merged {
  acc.values.push({ path, value: structuredClone(value), source });
  return { set: true, value: structuredClone(value) };
}

function merge(path: string, pools: Contribution[], override: Contribution | undefined, acc: Acc): Merged {
  if (override !== undefined) {
    const ok = kindOf(override.value);
    if (ok === 'object') {
      const compatible = pools.every((c) => kindOf(c.value) === 'object');
      return mergeObject(path, compatible ? pools : [], override, acc);
    }
    if (ok === 'named') {
      const compatible = pools.every((c) => ['named', 'empty-list'].includes(kindOf(c.value)));
      return mergeNamed(path, compatible ? pools : [], override, acc);
    }
    return leaf(path, override.value, override.source, acc);
  }
  if (pools.length === 0) return { set: false };
  const kinds = pools.map((c) => kindOf(c.value));
  if (kinds.every((k) => k === 'object')) return mergeObject(path, pools, undefined, acc);
  if (kinds.includes('named') && kinds.every((k) => k === 'named' || k === 'empty-list')) return mergeNamed(path, pools, undefined, acc);
  const first = pools[0] as Contribution;
  if (pools.every((c) => deepEqual(c.value, first.value))) return leaf(path, first.value, first.source, acc);
  acc.conflicts.push({ path, values: pools.map((c) => ({ value: structuredClone(c.value), source: c.source })) });
  return { set: false };
}

function mergeObject(path: string, pools: Contribution[], override: Contribution | undefined, acc: Acc): Merged {
  const keys: string[] = [];
  const seen = new Set<string>();
  for (const c of [...pools, ...(override ? [override] : [])]) {
    for (const k of Object.keys(c.value as Record<string, unknown>)) {
      if (!seen.has(k)) {
        seen.add(k);
        keys.push(k);
      }
    }
  }
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const sub = (c: Contribution): Contribution | undefined => {
      const obj = c.value as Record<string, unknown>;
      return Object.hasOwn(obj, key) && obj[key] !== undefined ? { value: obj[key], source: c.source } : undefined;
    };
    const subPools = pools.map(sub).filter((c): c is Contribution => c !== undefined);
    const subOverride = override ? sub(override) : undefined;
    if (subPools.length === 0 && subOverride === undefined) continue;
    const m = merge(childPath(path, key), subPools, subOverride, acc);
    if (m.set) Object.defineProperty(out, key, { value: m.value, enumerable: true, writable: true, configurable: true });
  }
  return { set: true, value: out };
}

function mergeNamed(path: string, pools: Contribution[], override: Contribution | undefined, acc: Acc): Merged {
  const order: string[] = [];
  const byName = new Map<string, { pools: Contribution[]; override?: Contribution }>();
  const entry = (name: string) => {
    let e = byName.get(name);
    if (e === undefined) {
      e = { pools: [] };
      byName.set(name, e);
      order.push(name);
    }
    return e;
  };
  for (const c of pools) {
    for (const item of c.value as Record<string, unknown>[]) entry(item.name as string).pools.push({ value: item, source: c.source });
  }
  if (override) {
    for (const item of override.value as Record<string, unknown>[]) entry(item.name as string).override = { value: item, source: override.source };
  }
  const out: unknown[] = [];
  for (const name of order) {
    const e = byName.get(name) as { pools: Contribution[]; override?: Contribution };
    const m = merge(itemPath(path, name), e.pools, e.override, acc);
    if (m.set) out.push(m.value);
  }
  return { set: true, value: out };
}

/** The aggregated settings of `nodeName`: every pool it is a member of (file order) plus its override. */
export function effectiveConfig(config: Config, nodeName: string): EffectiveConfig {
  const pools = config.pools.filter((p) => p.members.includes(nodeName));
  const override = Object.hasOwn(config.overrides, nodeName) ? config.overrides[nodeName] : undefined;
  const acc: Acc = { values: [], conflicts: [] };
  const merged = mergeObject(
    '',
    pools.map((p) => ({ value: p.settings, source: { kind: 'pool', pool: p.name } })),
    override ? { value: override.settings, source: { kind: 'override', node: nodeName } } : undefined,
    acc,
  );
  const byPath = (a: { path: string }, b: { path: string }): number => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  return {
    node: nodeName,
    pools: pools.map((p) => p.name),
    settings: (merged.set ? merged.value : {}) as ComponentSettings,
    values: acc.values.sort(byPath),
    conflicts: acc.conflicts.sort(byPath),
  };
}
