/**
 * The `health` settings section (zod), for registration with the config component
 * (`registerComponentSchema('health', healthSectionSchema)`). Parsing the section parses every
 * rule (text or structured form) and checks exceptions against the rule names, so a bad rule is
 * refused when the configuration is loaded, not when the check first runs.
 *
 *   health:
 *     interval: 10s            # default cycle length
 *     timeout: 5s              # default check timeout (else min(interval, 10s))
 *     flap: { window: 20, high: 50, low: 25 }
 *     rules:
 *       - "load 1m > 8 for 3 cycles then warning"                 # name derived: load-1m
 *       - { name: disk-root, rule: "disk / usage > 90% for 3 cycles then critical" }
 *       - { name: api, kind: http, params: { url: "http://127.0.0.1:8080/health" }, metric: status, op: "!=", threshold: 200, then: critical }
 *     exceptions:
 *       web3: { disk-root: { threshold: 95 } }
 *       db1: { api: { disabled: true } }
 */
import { z } from 'zod';
import { RuleSyntaxError, parseRule, structuredRuleSchema, thresholdValue } from './rules.ts';
import type { Rule } from './types.ts';
import { parseDuration } from './units.ts';

const duration = z.string().transform((s, ctx) => {
  const p = parseDuration(s);
  if (!p.ok) { ctx.addIssue({ code: 'custom', message: `expected ${p.expected}, got ${JSON.stringify(s)}` }); return z.NEVER; }
  return p.value;
});

const textRuleObject = z.strictObject({ name: z.string().min(1), rule: z.string().min(1) });

/** One entry of `rules`: a text rule, `{ name, rule }`, or the structured form. */
export const ruleEntrySchema = z.unknown().transform((v, ctx): Rule => {
  const text = (src: string, name?: string): Rule => {
    try {
      return parseRule(src, name);
    } catch (e) {
      if (!(e instanceof RuleSyntaxError)) throw e;
      ctx.addIssue({ code: 'custom', path: typeof v === 'string' ? [] : ['rule'], message: `${JSON.stringify(src)}: ${e.message}` });
      return z.NEVER as never;
    }
  };
  if (typeof v === 'string') return text(v);
  if (typeof v === 'object' && v !== null && 'rule' in v) {
    const r = textRuleObject.safeParse(v);
    if (!r.success) { forward(ctx, r.error.issues); return z.NEVER; }
    return text(r.data.rule, r.data.name);
  }
  if (typeof v !== 'object' || v === null) {
    ctx.addIssue({ code: 'custom', message: 'expected a rule string, { name, rule } or { kind, params, metric, op, threshold, then, ... }' });
    return z.NEVER;
  }
  const r = structuredRuleSchema.safeParse(v);
  if (!r.success) { forward(ctx, r.error.issues); return z.NEVER; }
  return r.data;
});

function forward(ctx: z.RefinementCtx, issues: readonly z.core.$ZodIssue[]): void {
  for (const i of issues) ctx.addIssue({ code: 'custom', path: i.path.map((k) => (typeof k === 'symbol' ? String(k) : k)), message: i.message });
}

export const exceptionSchema = z.strictObject({
  /** New threshold for a compare rule: number in the metric's unit, or a string with unit. */
  threshold: z.union([z.number(), z.string()]).optional(),
  disabled: z.boolean().optional(),
  for: z.number().int().min(1).optional(),
  recover: z.number().int().min(1).optional(),
  then: z.enum(['warning', 'critical']).optional(),
}).refine((o) => Object.keys(o).length > 0, { message: 'expected at least one of threshold, disabled, for, recover, then' });

export type RuleException = z.infer<typeof exceptionSchema>;

export const flapSchema = z.strictObject({
  /** Results kept (state changes are counted between consecutive results). */
  window: z.number().int().min(5).max(100).default(20),
  /** Weighted % of state changes at or above which a check starts flapping. */
  high: z.number().min(1).max(100).default(50),
  /** Below this it stops flapping. */
  low: z.number().min(0).max(100).default(25),
}).refine((f) => f.low < f.high, { message: 'flap.low must be below flap.high' });

const sectionObject = z.strictObject({
  interval: duration.default(10_000),
  timeout: duration.optional(),
  flap: flapSchema.default({ window: 20, high: 50, low: 25 }),
  rules: z.array(ruleEntrySchema).default([]),
  exceptions: z.record(z.string().min(1), z.record(z.string().min(1), exceptionSchema)).default({}),
});

type Section = z.output<typeof sectionObject>;

function validateSection(s: Section, ctx: z.RefinementCtx, checkExceptions: boolean): void {
  const byName = new Map<string, number>();
  s.rules.forEach((r, i) => {
    const prev = byName.get(r.name);
    if (prev !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['rules', i], message: `duplicate rule name ${JSON.stringify(r.name)} (also rules[${prev}]); give one an explicit name` });
    } else byName.set(r.name, i);
  });
  if (!checkExceptions) return;
  for (const [node, perRule] of Object.entries(s.exceptions)) {
    for (const [name, ex] of Object.entries(perRule)) {
      const idx = byName.get(name);
      const path = ['exceptions', node, name];
      if (idx === undefined) {
        ctx.addIssue({ code: 'custom', path, message: `unknown rule ${JSON.stringify(name)}; known rules: ${[...byName.keys()].join(', ') || '(none)'}` });
        continue;
      }
      const problem = exceptionProblem(s.rules[idx] as Rule, ex);
      if (problem) ctx.addIssue({ code: 'custom', path: [...path, problem.key], message: problem.message });
    }
  }
}

/** The aggregated `health` section of one node: exceptions must name rules of this section. */
export const healthSectionSchema = sectionObject.superRefine((s, ctx) => validateSection(s, ctx, true));

/** One pool's section: its exceptions may name rules that another pool defines (checked after merging). */
export const poolHealthSectionSchema = sectionObject.superRefine((s, ctx) => validateSection(s, ctx, false));

export type HealthSettings = z.output<typeof healthSectionSchema>;
export type FlapSettings = z.output<typeof flapSchema>;

/** Why an exception cannot apply to a rule, or undefined. */
export function exceptionProblem(rule: Rule, ex: RuleException): { key: string; message: string } | undefined {
  if (ex.threshold !== undefined) {
    if (rule.condition.type !== 'compare') return { key: 'threshold', message: `rule ${JSON.stringify(rule.name)} (${rule.source}) has no numeric threshold` };
    const v = thresholdValue(ex.threshold, rule.condition.unit);
    if (!v.ok) return { key: 'threshold', message: v.message };
  }
  if (ex.then !== undefined && rule.then === 'nagios') return { key: 'then', message: `rule ${JSON.stringify(rule.name)} takes its status from the plugin exit code` };
  return undefined;
}
