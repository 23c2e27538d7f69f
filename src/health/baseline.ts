/**
 * Baselines: the rules that apply to one node, computed from the `health` settings of its pools
 * and the per-server exceptions.
 *
 * - `parseHealthSettings(section)` validates one (already aggregated) section.
 * - `mergePoolSections([{ pool, section }])` unions the sections of every pool a node belongs to:
 *   rules by name (the same name with a different definition in two pools is an error naming
 *   both), exceptions per node and rule (conflicting values are errors), the smallest interval
 *   and timeout (checking more often is the safe side of a disagreement), flap settings must agree.
 * - `rulesForNode(node, settings)` applies that node's exceptions (change threshold, for,
 *   recover, then; or disable) and fills in each rule's interval and timeout.
 */
import { healthSectionSchema, poolHealthSectionSchema, exceptionProblem, type HealthSettings, type RuleException } from './schema.ts';
import { thresholdValue } from './rules.ts';
import type { Rule } from './types.ts';

export interface BaselineProblem {
  path: string; // dotted, e.g. "health.exceptions.web3.disk-root"
  message: string;
}

export class BaselineError extends Error {
  readonly problems: BaselineProblem[];

  constructor(problems: BaselineProblem[]) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
    this.name = 'BaselineError';
    this.problems = problems;
  }
}

function dotted(prefix: string, path: readonly PropertyKey[]): string {
  return [prefix, ...path.map((k) => (typeof k === 'number' ? `[${k}]` : String(k)))].join('.').replace(/\.\[/g, '[');
}

export function parseHealthSettings(section: unknown, prefix = 'health', schema = healthSectionSchema): HealthSettings {
  const r = schema.safeParse(section ?? {});
  if (!r.success) throw new BaselineError(r.error.issues.map((i) => ({ path: dotted(prefix, i.path), message: i.message })));
  return r.data;
}

/** Union of the health sections of several pools (see header). */
export function mergePoolSections(sections: { pool: string; section: unknown }[]): HealthSettings {
  const problems: BaselineProblem[] = [];
  const parsed: { pool: string; s: HealthSettings }[] = [];
  for (const { pool, section } of sections) {
    try {
      parsed.push({ pool, s: parseHealthSettings(section, `pools.${pool}.health`, poolHealthSectionSchema) });
    } catch (e) {
      if (e instanceof BaselineError) problems.push(...e.problems); else throw e;
    }
  }
  if (problems.length) throw new BaselineError(problems);
  const rules = new Map<string, { rule: Rule; pool: string }>();
  const exceptions: Record<string, Record<string, RuleException & { pool?: string }>> = {};
  let interval: number | undefined;
  let timeout: number | undefined;
  let flap: HealthSettings['flap'] | undefined;
  let flapPool = '';
  for (const { pool, s } of parsed) {
    interval = interval === undefined ? s.interval : Math.min(interval, s.interval);
    if (s.timeout !== undefined) timeout = timeout === undefined ? s.timeout : Math.min(timeout, s.timeout);
    if (flap === undefined) { flap = s.flap; flapPool = pool; } else if (JSON.stringify(flap) !== JSON.stringify(s.flap)) {
      problems.push({ path: `pools.${pool}.health.flap`, message: `differs from pool ${flapPool}'s flap settings` });
    }
    for (const r of s.rules) {
      const prev = rules.get(r.name);
      if (!prev) rules.set(r.name, { rule: r, pool });
      else if (JSON.stringify(prev.rule) !== JSON.stringify(r)) {
        problems.push({ path: `pools.${pool}.health.rules.${r.name}`, message: `rule ${JSON.stringify(r.name)} is defined differently in pool ${prev.pool} (${prev.rule.source}) and pool ${pool} (${r.source})` });
      }
    }
    for (const [node, per] of Object.entries(s.exceptions)) {
      const into = (exceptions[node] ??= {});
      for (const [name, ex] of Object.entries(per)) {
        const prev = into[name];
        if (prev && JSON.stringify({ ...prev, pool: undefined }) !== JSON.stringify({ ...ex, pool: undefined })) {
          problems.push({ path: `pools.${pool}.health.exceptions.${node}.${name}`, message: `conflicts with pool ${prev.pool ?? '?'}'s exception for the same node and rule` });
        } else into[name] = { ...ex, pool };
      }
    }
  }
  if (problems.length) throw new BaselineError(problems);
  // Exceptions must name a rule of the union (a pool may except a rule another pool defines).
  const clean: HealthSettings['exceptions'] = {};
  for (const [node, per] of Object.entries(exceptions)) {
    clean[node] = {};
    for (const [name, { pool, ...ex }] of Object.entries(per)) {
      const r = rules.get(name);
      const path = `pools.${pool ?? '?'}.health.exceptions.${node}.${name}`;
      if (!r) { problems.push({ path, message: `unknown rule ${JSON.stringify(name)}; known rules: ${[...rules.keys()].join(', ') || '(none)'}` }); continue; }
      const p = exceptionProblem(r.rule, ex);
      if (p) problems.push({ path: `${path}.${p.key}`, message: p.message });
      (clean[node] as Record<string, RuleException>)[name] = ex;
    }
  }
  if (problems.length) throw new BaselineError(problems);
  const out: HealthSettings = {
    interval: interval ?? 10_000,
    flap: flap ?? { window: 20, high: 50, low: 25 },
    rules: [...rules.values()].map((v) => v.rule),
    exceptions: clean,
  };
  if (timeout !== undefined) out.timeout = timeout;
  return out;
}

/** Default check timeout when neither the rule nor the section sets one. */
export function defaultTimeout(intervalMs: number, sectionTimeout?: number): number {
  return sectionTimeout ?? Math.min(intervalMs, 10_000);
}

/**
 * The rules that apply to `node`: exceptions applied, disabled rules dropped, and every rule's
 * `everyMs` / `timeoutMs` filled in. Exceptions for other nodes are ignored.
 */
export function rulesForNode(node: string, settings: HealthSettings): Rule[] {
  const mine = settings.exceptions[node] ?? {};
  const known = new Set(settings.rules.map((r) => r.name));
  const unknown = Object.keys(mine).filter((n) => !known.has(n));
  if (unknown.length) {
    throw new BaselineError(unknown.map((n) => ({ path: `health.exceptions.${node}.${n}`, message: `unknown rule ${JSON.stringify(n)}` })));
  }
  const out: Rule[] = [];
  for (const base of settings.rules) {
    const ex = mine[base.name];
    const r: Rule = structuredClone(base);
    if (ex) {
      if (ex.disabled) continue;
      const p = exceptionProblem(base, ex);
      if (p) throw new BaselineError([{ path: `health.exceptions.${node}.${base.name}.${p.key}`, message: p.message }]);
      if (ex.threshold !== undefined && r.condition.type === 'compare') {
        const v = thresholdValue(ex.threshold, r.condition.unit);
        if (v.ok) { r.condition.value = v.value; r.condition.text = String(ex.threshold); }
      }
      if (ex.for !== undefined) r.forCycles = ex.for;
      if (ex.recover !== undefined) r.recoverCycles = ex.recover;
      if (ex.then !== undefined) r.then = ex.then;
      r.source += ` [exception for ${node}: ${JSON.stringify(ex)}]`;
    }
    r.everyMs ??= settings.interval;
    r.timeoutMs ??= defaultTimeout(r.everyMs, settings.timeout);
    out.push(r);
  }
  return out;
}
