/**
 * The `failover` settings section of a pool, and its resolution into ResolvedService values.
 *
 *   failover:
 *     services:
 *     backend: builtin                        # default for the pool's services (default builtin)
 *       # or: { etcd: { endpoints: [http://10.0.0.5:2379], prefix: /multiall/, lease_ttl: 3s,
 *       #               tls: { ca: /etc/etcd/ca.pem, cert: /etc/etcd/client.pem, key: /etc/etcd/client.key } } }
 *       - name: vip
 *         backend: ...                        # per service, overrides the section's
 *         priority: { web1: 150, web2: 100 }   # default 100; 0 = never master
 *         preempt: preempt | nopreempt | { after: 30s }   # default preempt
 *         voters: [web1, web2, web3]          # default: the pool's members
 *         witness: arb1                       # third voter, never master; required with 2 voters
 *         lease: 3s                           # default 3s
 *         heartbeat: 1s                       # default 1s
 *         actions:
 *           standby_to_master:
 *             - { floating_ip: { address: 10.9.0.100/24, interface: eth0 } }
 *             - { run: "systemctl start app --term %TERM%", timeout: 10s, on_failure: retry, retries: 2 }
 *           master_to_standby: [...]
 *           to_fault: [...]
 *           health_changed: [...]
 *
 * Following the config contract (src/config/components.ts), `failoverSectionSchema` (registered
 * as component `failover`) has only optional fields and no defaults: one pool's section is one
 * contribution to the aggregated settings. `resolveFailover` applies the defaults and the checks
 * that need the whole picture (pool members, voter count, witness) on the aggregated section.
 * Syntax problems (bad duration, unknown %VAR%, unknown key) are reported by the schema at load.
 *
 * With the etcd backend the election runs in etcd (etcd-election.ts): voters, witness, lease and
 * heartbeat are refused there (they configure the builtin election), and two members without a
 * witness are fine (etcd is the quorum).
 *
 * Public interface: failoverSectionSchema, FailoverSection, resolveFailover, FailoverConfigError,
 * parseDurationMs, DEFAULTS.
 * Depends on: zod, ./vars.ts, ./types.ts.
 */
import { z } from 'zod';
import { durationSchema, parseDurationMs } from '../config/duration.ts';

export { parseDurationMs };
import { checkTemplate } from './vars.ts';
import { TRANSITIONS } from './types.ts';
import type { Action, FailoverBackend, PreemptPolicy, ResolvedService, Transition } from './types.ts';
import { DRIFT_MARGIN } from './lease.ts';

export const DEFAULTS = {
  priority: 100,
  leaseMs: 3000,
  heartbeatMs: 1000,
  actionTimeoutMs: 10_000,
  retries: 2,
  etcdPrefix: '/multiall/',
  etcdLeaseTtlMs: 3000,
} as const;

const duration = durationSchema;

const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const nodeName = z.string().regex(NODE_NAME, { error: 'expected a node name ([A-Za-z0-9._-], starting with a letter or digit)' });

const onFailure = z.enum(['abort', 'continue', 'retry'], { error: 'expected abort, continue or retry' });
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const runAction = z.strictObject({
  run: z.string().min(1).superRefine((s, ctx) => {
    for (const p of checkTemplate(s)) ctx.addIssue({ code: 'custom', message: p });
  }),
  timeout: duration.optional(),
  env: z.record(z.string().regex(ENV_NAME, { error: 'environment variable names are [A-Za-z_][A-Za-z0-9_]*' }), z.string()).optional(),
  on_failure: onFailure.optional(),
  retries: z.number().int().min(0).max(10).optional(),
});

const CIDR4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
const CIDR6 = /^[0-9a-fA-F:]+\/(\d{1,3})$/;
const cidr = z.string().refine((s) => {
  const m = CIDR4.exec(s);
  if (m) return m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32;
  const m6 = CIDR6.exec(s);
  return m6 !== null && s.includes(':') && Number(m6[1]) <= 128;
}, { error: (iss) => `expected an address with prefix length like 10.9.0.100/24 or fd00::10/64, got ${JSON.stringify(iss.input)}` });

const floatingIpAction = z.strictObject({
  floating_ip: z.strictObject({
    address: cidr,
    interface: z.string().regex(/^[A-Za-z0-9_.@:-]{1,15}$/, { error: 'expected an interface name (1-15 characters) like eth0' }),
  }),
  on_failure: onFailure.optional(),
  retries: z.number().int().min(0).max(10).optional(),
});

/** One action: `{ run: ... }` or `{ floating_ip: {...} }`, with precise errors for either form. */
const actionEntry = z.unknown().transform((v, ctx) => {
  const fail = (message: string): never => { ctx.addIssue({ code: 'custom', message }); return z.NEVER as never; };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail('expected an action: { run: "command" } or { floating_ip: { address, interface } }');
  const schema = 'floating_ip' in v ? floatingIpAction : 'run' in v ? runAction : undefined;
  if (schema === undefined) return fail(`expected an action with "run" or "floating_ip", got keys ${JSON.stringify(Object.keys(v))}`);
  const r = schema.safeParse(v);
  if (!r.success) {
    for (const i of r.error.issues) ctx.addIssue({ code: 'custom', path: i.path.map((k) => (typeof k === 'symbol' ? String(k) : k)), message: i.message });
    return z.NEVER;
  }
  return v as z.infer<typeof runAction> | z.infer<typeof floatingIpAction>;
});

const actionsSchema = z.strictObject(
  Object.fromEntries(TRANSITIONS.map((t) => [t, z.array(actionEntry).optional()])) as Record<Transition, z.ZodOptional<z.ZodArray<typeof actionEntry>>>,
);

const preemptSchema = z.union([
  z.literal('preempt'),
  z.literal('nopreempt'),
  z.strictObject({ after: duration }),
], { error: 'expected preempt, nopreempt or { after: <duration> }' });

const endpoint = z.string().superRefine((s, ctx) => {
  const bad = (why: string): void => { ctx.addIssue({ code: 'custom', message: `expected an etcd endpoint like http://127.0.0.1:2379 or https://etcd1:2379, got ${JSON.stringify(s)}: ${why}` }); };
  let u: URL;
  try { u = new URL(s); } catch { bad('not a URL'); return; }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') bad(`scheme ${u.protocol.slice(0, -1)} (use http or https)`);
  else if (u.port === '') bad('the port is missing');
  else if (u.username !== '' || u.password !== '') bad('credentials in the URL are not supported');
  else if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '') bad('a path, query or fragment is not allowed');
});

const absolutePath = z.string().regex(/^\//, { error: (iss) => `expected an absolute path to a PEM file, got ${JSON.stringify(iss.input)}` });

const etcdSchema = z.strictObject({
  endpoints: z.array(endpoint).min(1, { error: 'expected at least one etcd endpoint' }),
  prefix: z.string().regex(/^\/([A-Za-z0-9._-]+\/)*$/, {
    error: (iss) => `expected a key prefix that starts and ends with / (segments of [A-Za-z0-9._-]) like /multiall/, got ${JSON.stringify(iss.input)}`,
  }).optional(),
  lease_ttl: duration.refine((d) => {
    const ms = parseDurationMs(d) ?? 0;
    return ms % 1000 === 0 && ms >= 2000 && ms <= 3_600_000;
  }, { error: (iss) => `expected a whole number of seconds from 2s to 1h (etcd leases count in seconds), got ${JSON.stringify(iss.input)}` }).optional(),
  tls: z.strictObject({ ca: absolutePath, cert: absolutePath.optional(), key: absolutePath.optional() }).optional(),
}).superRefine((e, ctx) => {
  const https = e.endpoints.filter((u) => u.startsWith('https:'));
  if (https.length > 0 && https.length < e.endpoints.length) ctx.addIssue({ code: 'custom', path: ['endpoints'], message: 'mixes http:// and https:// endpoints: use one scheme for all' });
  if (e.tls !== undefined && https.length === 0) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'tls is set but the endpoints are http://: use https:// endpoints' });
  if (e.tls !== undefined && (e.tls.cert === undefined) !== (e.tls.key === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['tls'], message: 'cert and key go together: give both (client certificate) or neither' });
  }
});

/** `builtin` or `{ etcd: {...} }`, with precise errors for either form. */
const backendSchema = z.unknown().transform((v, ctx) => {
  const fail = (message: string): never => { ctx.addIssue({ code: 'custom', message }); return z.NEVER as never; };
  if (v === 'builtin') return v;
  if (typeof v !== 'object' || v === null || Array.isArray(v) || !('etcd' in v)) {
    return fail(`expected builtin or { etcd: { endpoints: [http://host:2379], prefix, lease_ttl, tls } }, got ${JSON.stringify(v)}`);
  }
  const extra = Object.keys(v).filter((k) => k !== 'etcd');
  if (extra.length > 0) return fail(`unknown key(s) ${extra.map((k) => JSON.stringify(k)).join(', ')} next to etcd`);
  const r = etcdSchema.safeParse((v as { etcd: unknown }).etcd);
  if (!r.success) {
    for (const i of r.error.issues) ctx.addIssue({ code: 'custom', path: ['etcd', ...i.path.map((k) => (typeof k === 'symbol' ? String(k) : k))], message: i.message });
    return z.NEVER;
  }
  return v as { etcd: z.infer<typeof etcdSchema> };
});

type BackendSection = 'builtin' | { etcd: z.infer<typeof etcdSchema> };

export const serviceSchema = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_-]*$/, { error: 'expected a service name: lowercase letters, digits, - and _' }),
  priority: z.record(nodeName, z.number().int().min(0).max(255)).optional(),
  preempt: preemptSchema.optional(),
  voters: z.array(nodeName).min(1).optional(),
  witness: nodeName.optional(),
  lease: duration.optional(),
  heartbeat: duration.optional(),
  actions: actionsSchema.optional(),
  backend: backendSchema.optional(),
});

/** The `failover` component section (register with registerComponentSchema('failover', …)). */
export const failoverSectionSchema = z.strictObject({
  /** Default backend of this section's services. */
  backend: backendSchema.optional(),
  services: z.array(serviceSchema).optional(),
});

export type FailoverSection = z.infer<typeof failoverSectionSchema>;
type ServiceSection = z.infer<typeof serviceSchema>;

export class FailoverConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid failover settings:\n  ${problems.join('\n  ')}`);
    this.name = 'FailoverConfigError';
    this.problems = problems;
  }
}

/**
 * Applies defaults and whole-pool checks. `members` are the pool's member names. Throws
 * FailoverConfigError listing every problem (path-prefixed) when something is wrong.
 */
export function resolveFailover(section: unknown, members: readonly string[]): ResolvedService[] {
  const parsed = failoverSectionSchema.safeParse(section ?? {});
  if (!parsed.success) {
    throw new FailoverConfigError(parsed.error.issues.map((i) => `failover.${i.path.join('.')}: ${i.message}`));
  }
  const problems: string[] = [];
  const out: ResolvedService[] = [];
  const seen = new Set<string>();
  for (const [i, s] of (parsed.data.services ?? []).entries()) {
    const where = `failover.services[${i}] (${s.name})`;
    if (seen.has(s.name)) problems.push(`${where}: duplicate service name`);
    seen.add(s.name);
    const r = resolveService(s, members, (p) => problems.push(`${where}: ${p}`), (s.backend ?? parsed.data.backend) as BackendSection | undefined);
    if (r) out.push(r);
  }
  if (problems.length > 0) throw new FailoverConfigError(problems);
  return out;
}

function resolveBackend(b: BackendSection | undefined): FailoverBackend {
  if (b === undefined || b === 'builtin') return { kind: 'builtin' };
  const e = b.etcd;
  return {
    kind: 'etcd',
    endpoints: [...e.endpoints],
    prefix: e.prefix ?? DEFAULTS.etcdPrefix,
    leaseTtlMs: parseDurationMs(e.lease_ttl ?? '') ?? DEFAULTS.etcdLeaseTtlMs,
    tls: e.tls === undefined ? null : { ca: e.tls.ca, cert: e.tls.cert ?? null, key: e.tls.key ?? null },
  };
}

function resolveService(s: ServiceSection, members: readonly string[], problem: (p: string) => void, backendSection: BackendSection | undefined): ResolvedService | undefined {
  let problems = 0;
  const report = (p: string): void => { problems++; problem(p); };
  const memberSet = new Set(members);
  const backend = resolveBackend(backendSection);
  const etcd = backend.kind === 'etcd';
  if (etcd) {
    // These configure the builtin quorum election; silently ignoring them would mislead.
    for (const k of ['voters', 'witness', 'lease', 'heartbeat'] as const) {
      if (s[k] !== undefined) report(`${k} configures the builtin election; with backend etcd the election runs in etcd (set backend.etcd.lease_ttl instead of lease/heartbeat, or remove ${k})`);
    }
  }
  const leaseMs = etcd ? backend.leaseTtlMs : parseDurationMs(s.lease ?? '') ?? DEFAULTS.leaseMs;
  const heartbeatMs = etcd ? Math.floor(backend.leaseTtlMs / 3) : parseDurationMs(s.heartbeat ?? '') ?? DEFAULTS.heartbeatMs;
  // A master must be able to miss one heartbeat round and still renew before its lease runs out.
  if (!etcd && 2 * heartbeatMs >= leaseMs * (1 - DRIFT_MARGIN)) {
    report(`lease (${leaseMs}ms) must be longer than 2 × heartbeat (${heartbeatMs}ms) / ${1 - DRIFT_MARGIN} so that one lost heartbeat does not cost the master its lease`);
  }
  for (const n of Object.keys(s.priority ?? {})) {
    if (!memberSet.has(n)) report(`priority names ${n}, which is not a member of the pool (members: ${members.join(', ')})`);
  }
  const base = etcd ? [] : s.voters ?? [...members];
  for (const v of base) if (!memberSet.has(v)) report(`voter ${v} is not a member of the pool (members: ${members.join(', ')})`);
  if (new Set(base).size !== base.length) report('voters lists a node twice');
  const witness = s.witness ?? null;
  if (witness !== null) {
    if (memberSet.has(witness)) report(`witness ${witness} is a member of the pool; a witness must be a node outside the pool (it votes, never becomes master)`);
    if (base.includes(witness)) report(`witness ${witness} is also listed in voters`);
  }
  const voters = witness === null ? [...base] : [...base, witness];
  if (!etcd && base.length === 2 && witness === null) {
    report(`the service has 2 voters (${base.join(', ')}): with 2 voters a majority needs both, so one failure stops failover. Add a witness: <node outside the pool> as third voter`);
  }
  let preempt: PreemptPolicy = { mode: 'preempt' };
  if (s.preempt === 'nopreempt') preempt = { mode: 'nopreempt' };
  else if (typeof s.preempt === 'object') preempt = { mode: 'after', afterMs: parseDurationMs(s.preempt.after) ?? 0 };
  const actions = {} as Record<Transition, Action[]>;
  for (const t of TRANSITIONS) {
    actions[t] = (s.actions?.[t] ?? []).map((a, j): Action => {
      if ('floating_ip' in a) {
        if (t === 'health_changed') report(`actions.${t}[${j}]: floating_ip is only meaningful on standby_to_master, master_to_standby and to_fault`);
        return { kind: 'floating_ip', address: a.floating_ip.address, interface: a.floating_ip.interface, onFailure: a.on_failure ?? 'abort', retries: a.retries ?? DEFAULTS.retries };
      }
      return {
        kind: 'run',
        run: a.run,
        timeoutMs: parseDurationMs(a.timeout ?? '') ?? DEFAULTS.actionTimeoutMs,
        env: { ...(a.env ?? {}) },
        onFailure: a.on_failure ?? 'abort',
        retries: a.retries ?? DEFAULTS.retries,
      };
    });
  }
  const candidates = members.filter((m) => (s.priority?.[m] ?? DEFAULTS.priority) > 0);
  if (candidates.length === 0) report('every member has priority 0: nobody can become master');
  if (problems > 0) return undefined;
  return {
    name: s.name,
    priority: { ...(s.priority ?? {}) },
    defaultPriority: DEFAULTS.priority,
    preempt,
    voters: [...voters].sort(),
    witness,
    leaseMs,
    heartbeatMs,
    actions,
    backend,
  };
}
