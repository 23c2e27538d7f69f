/**
 * Rule syntax: a Monit-like one-line form parsed by a hand-written tokenizer and recursive
 * descent parser, and a structured (YAML) form; both produce the same `Rule`.
 *
 *   disk / usage > 90% for 3 cycles then critical
 *   http http://127.0.0.1:8080/health status != 200 for 2 cycles then critical every 5s timeout 2s
 *   command "/usr/lib/nagios/plugins/check_load -w 4" then nagios
 *
 * Syntax errors are `RuleSyntaxError`s carrying the 1-based column, what was expected there and
 * the full expected form of the rule kind. The grammar is documented in docs/health.md.
 */
import { z } from 'zod';
import type { Action, CheckKind, CompareOp, Condition, MatchOp, Rule, RuleParams, UnitKind } from './types.ts';
import { EXPECTED, parseDuration, parseValue } from './units.ts';

// ---------------------------------------------------------------------------------------------
// Per-kind metric table: which metrics a kind has, how their thresholds are written, and the
// human-readable form shown in errors. Both rule forms validate against this one table.

type MetricSpec = { form: 'compare'; unit: UnitKind } | { form: 'match' } | { form: 'flag' };

interface KindSpec {
  metrics: Record<string, MetricSpec>;
  /** Metric used when the rule goes straight to an operator (`cpu > 95%`). */
  defaultMetric?: string;
  form: string;
}

const pct: MetricSpec = { form: 'compare', unit: 'percent' };
const dur: MetricSpec = { form: 'compare', unit: 'duration' };
const flag: MetricSpec = { form: 'flag' };

const TAIL = ' [for N cycles] then warning|critical [every DURATION] [timeout DURATION] [recover after N cycles]';

export const KINDS: Record<CheckKind, KindSpec> = {
  disk: { metrics: { usage: pct, inodes: pct }, form: 'disk PATH usage|inodes OP N%' },
  load: {
    metrics: { '1m': { form: 'compare', unit: 'number' }, '5m': { form: 'compare', unit: 'number' }, '15m': { form: 'compare', unit: 'number' } },
    form: 'load 1m|5m|15m OP NUMBER',
  },
  cpu: { metrics: { usage: pct, user: pct, system: pct, iowait: pct, steal: pct }, defaultMetric: 'usage', form: 'cpu [usage|user|system|iowait|steal] OP N%' },
  memory: { metrics: { usage: pct }, defaultMetric: 'usage', form: 'memory [usage] OP N%' },
  swap: { metrics: { usage: pct }, defaultMetric: 'usage', form: 'swap [usage] OP N%' },
  process: {
    metrics: { count: { form: 'compare', unit: 'integer' }, missing: flag },
    form: 'process NAME|pidfile PATH|match "REGEX" (count OP N | missing)',
  },
  tcp: { metrics: { fails: flag, latency: dur }, form: 'tcp HOST:PORT (fails | latency OP DURATION)' },
  http: {
    metrics: { fails: flag, status: { form: 'compare', unit: 'integer' }, body: { form: 'match' }, latency: dur },
    form: 'http URL [method GET|HEAD|POST|PUT|OPTIONS] (fails | status OP CODE | body ~|!~ "REGEX" | latency OP DURATION)',
  },
  dns: { metrics: { fails: flag, latency: dur }, form: 'dns NAME @SERVER[:PORT] [type A|AAAA|CNAME|MX|NS|TXT|SRV|SOA|PTR|CAA] (fails | latency OP DURATION)' },
  file: { metrics: { missing: flag, age: dur, size: { form: 'compare', unit: 'size' } }, form: 'file PATH (missing | age OP DURATION | size OP SIZE)' },
  postgres: { metrics: { fails: flag, latency: dur }, form: 'postgres HOST[:PORT] [user NAME] [database NAME] (fails | latency OP DURATION)' },
  mysql: { metrics: { fails: flag, latency: dur }, form: 'mysql HOST[:PORT] (fails | latency OP DURATION)' },
  command: { metrics: { fails: flag }, form: 'command "COMMAND" [fails] then nagios|warning|critical' },
};

export const CHECK_KINDS = Object.keys(KINDS) as CheckKind[];
const COMPARE_OPS: readonly string[] = ['>', '>=', '<', '<=', '==', '!='];
const MATCH_OPS: readonly string[] = ['~', '!~'];
export const DNS_TYPES = ['A', 'AAAA', 'CNAME', 'MX', 'NS', 'TXT', 'SRV', 'SOA', 'PTR', 'CAA', 'NAPTR'] as const;
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'OPTIONS'] as const;

export function formOf(kind: CheckKind): string {
  return KINDS[kind].form + (kind === 'command' ? ' [for N cycles] [every DURATION] [timeout DURATION] [recover after N cycles]' : TAIL);
}

// ---------------------------------------------------------------------------------------------
// Errors

export class RuleSyntaxError extends Error {
  readonly column: number;
  readonly expected: string;
  readonly form: string;
  readonly rule: string;

  constructor(rule: string, column: number, expected: string, got: string, form: string) {
    super(`column ${column}: expected ${expected}, got ${got}` + (form ? `; form: ${form}` : ''));
    this.name = 'RuleSyntaxError';
    this.rule = rule;
    this.column = column;
    this.expected = expected;
    this.form = form;
  }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

interface Token {
  type: 'word' | 'string' | 'op';
  text: string;
  col: number; // 1-based
}

const OP_CHARS = '<>!=~';

export function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    if (c === ' ' || c === '\t') { i++; continue; }
    const col = i + 1;
    if (c === '"' || c === "'") {
      // Quoted string with backslash escapes (\" \\); needed for commands and regexes with spaces.
      let j = i + 1;
      let text = '';
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && j + 1 < src.length) { text += src[j + 1]; j += 2; continue; }
        text += src[j];
        j++;
      }
      if (j >= src.length) throw new RuleSyntaxError(src, col, `a closing ${c}`, 'end of rule', '');
      out.push({ type: 'string', text, col });
      i = j + 1;
      continue;
    }
    if (OP_CHARS.includes(c)) {
      // Operators: two-char forms first. An operator glued to a value (">90%") is split off.
      const two = src.slice(i, i + 2);
      const op = ['>=', '<=', '==', '!=', '!~'].includes(two) ? two : c === '=' ? '==' : c;
      if (c === '!' && op === '!') throw new RuleSyntaxError(src, col, 'an operator (!= or !~)', JSON.stringify(two), '');
      out.push({ type: 'op', text: op, col });
      i += op.length === 2 && two === op ? 2 : 1;
      continue;
    }
    let j = i;
    while (j < src.length && src[j] !== ' ' && src[j] !== '\t') j++;
    out.push({ type: 'word', text: src.slice(i, j), col });
    i = j;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parser

class Parser {
  readonly src: string;
  readonly toks: Token[];
  pos = 0;
  form = '';

  constructor(src: string) {
    this.src = src;
    this.toks = tokenize(src);
  }

  peek(): Token | undefined {
    return this.toks[this.pos];
  }

  peekWord(): string | undefined {
    const t = this.peek();
    return t?.type === 'word' ? t.text.toLowerCase() : undefined;
  }

  fail(expected: string, tok: Token | undefined = this.peek()): never {
    const col = tok ? tok.col : this.src.trimEnd().length + 1;
    const got = tok ? JSON.stringify(tok.text) : 'end of rule';
    throw new RuleSyntaxError(this.src, col, expected, got, this.form);
  }

  next(expected: string): Token {
    const t = this.peek();
    if (!t) this.fail(expected);
    this.pos++;
    return t;
  }

  word(expected: string): Token {
    const t = this.peek();
    if (!t || t.type !== 'word') this.fail(expected);
    this.pos++;
    return t;
  }

  keyword(...words: string[]): Token {
    const t = this.peek();
    if (!t || t.type !== 'word' || !words.includes(t.text.toLowerCase())) this.fail(words.map((w) => `'${w}'`).join(' or '));
    this.pos++;
    return t;
  }

  /** A word or a quoted string (paths and names with spaces must be quoted). */
  text(expected: string): Token {
    const t = this.peek();
    if (!t || t.type === 'op') this.fail(expected);
    this.pos++;
    return t;
  }

  int(expected: string, min = 1): number {
    const t = this.word(expected);
    const p = parseValue(t.text, 'integer');
    if (!p.ok || p.value < min) this.fail(expected, t);
    return p.value;
  }
}

export function parseHostPort(text: string, defaultPort?: number): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+))(?::(\d{1,5}))?$/.exec(text);
  if (!m) return undefined;
  const host = (m[1] ?? m[2]) as string;
  const port = m[3] !== undefined ? Number(m[3]) : defaultPort;
  if (port === undefined || port < 1 || port > 65535) return undefined;
  return { host, port };
}

function parseSubject(p: Parser, kind: CheckKind): RuleParams {
  switch (kind) {
    case 'disk':
      return { kind, path: absPath(p, p.text('a mount point path like / or /var')) };
    case 'load': case 'cpu': case 'memory': case 'swap':
      return { kind };
    case 'process': {
      const w = p.peekWord();
      if (w === 'pidfile') { p.pos++; return { kind, pidfile: absPath(p, p.text('a pid file path like /run/nginx.pid')) }; }
      if (w === 'match') {
        p.pos++;
        const t = p.text('a quoted regular expression like "nginx: master"');
        checkRegex(p, t);
        return { kind, match: t.text };
      }
      const t = p.text('a process name, pidfile PATH or match "REGEX"');
      return { kind, name: t.text };
    }
    case 'tcp': case 'postgres': case 'mysql': {
      const t = p.word(kind === 'tcp' ? 'HOST:PORT like 127.0.0.1:5432' : `HOST[:PORT] like 127.0.0.1:${kind === 'mysql' ? 3306 : 5432}`);
      const hp = parseHostPort(t.text, kind === 'postgres' ? 5432 : kind === 'mysql' ? 3306 : undefined);
      if (!hp) p.fail(kind === 'tcp' ? 'HOST:PORT like 127.0.0.1:5432 (port 1-65535)' : 'HOST[:PORT] with port 1-65535', t);
      if (kind === 'tcp') return { kind, ...hp };
      if (kind === 'mysql') return { kind, ...hp };
      let user = 'postgres';
      let database: string | undefined;
      for (;;) {
        const w = p.peekWord();
        if (w === 'user') { p.pos++; user = p.text('a user name').text; continue; }
        if (w === 'database') { p.pos++; database = p.text('a database name').text; continue; }
        break;
      }
      return { kind, ...hp, user, database: database ?? user };
    }
    case 'http': {
      const t = p.text('an http:// or https:// URL');
      if (!isHttpUrl(t.text)) p.fail('an http:// or https:// URL', t);
      let method = 'GET';
      if (p.peekWord() === 'method') {
        p.pos++;
        const m = p.word(`a method (${HTTP_METHODS.join('|')})`);
        method = m.text.toUpperCase();
        if (!(HTTP_METHODS as readonly string[]).includes(method)) p.fail(`a method (${HTTP_METHODS.join('|')})`, m);
      }
      return { kind, url: t.text, method };
    }
    case 'dns': {
      const n = p.word('a domain name like example.com');
      if (!/^[A-Za-z0-9_.-]+\.?$/.test(n.text) || n.text.startsWith('@')) p.fail('a domain name like example.com', n);
      const s = p.word('@SERVER[:PORT] like @127.0.0.1:53');
      const hp = s.text.startsWith('@') ? parseHostPort(s.text.slice(1), 53) : undefined;
      if (!hp || !isIp(hp.host)) p.fail('@SERVER[:PORT] with an IP address like @127.0.0.1:53', s);
      let type = 'A';
      if (p.peekWord() === 'type') {
        p.pos++;
        const tt = p.word(`a record type (${DNS_TYPES.join('|')})`);
        type = tt.text.toUpperCase();
        if (!(DNS_TYPES as readonly string[]).includes(type)) p.fail(`a record type (${DNS_TYPES.join('|')})`, tt);
      }
      return { kind, name: n.text, server: hp.host, port: hp.port, type };
    }
    case 'file':
      return { kind, path: absPath(p, p.text('an absolute file path')) };
    case 'command': {
      const t = p.next('a quoted command like "/usr/lib/nagios/plugins/check_load -w 4"');
      if (t.type !== 'string' || t.text.trim() === '') p.fail('a quoted command like "/usr/lib/nagios/plugins/check_load -w 4"', t);
      return { kind, command: t.text };
    }
  }
}

function absPath(p: Parser, t: Token): string {
  if (!t.text.startsWith('/')) p.fail('an absolute path (starting with /)', t);
  return t.text;
}

function checkRegex(p: Parser, t: Token): void {
  try { new RegExp(t.text); } catch (e) { p.fail(`a valid regular expression (${(e as Error).message})`, t); }
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

function isIp(s: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(s) || s.includes(':');
}

function parseCondition(p: Parser, kind: CheckKind): Condition {
  const spec = KINDS[kind];
  const names = Object.keys(spec.metrics);
  const t = p.peek();
  if (kind === 'command' && p.peekWord() === 'then') return { type: 'nagios' };
  let metric: string;
  if (t?.type === 'op' && spec.defaultMetric) {
    metric = spec.defaultMetric;
  } else {
    const w = p.peekWord();
    if (w === undefined || !names.includes(w)) p.fail(`${kind === 'command' ? "'then nagios' or " : ''}one of: ${names.join(', ')}`);
    metric = w;
    p.pos++;
  }
  const ms = spec.metrics[metric] as MetricSpec;
  if (ms.form === 'flag') return { type: 'flag', metric };
  const opTok = p.peek();
  if (ms.form === 'match') {
    if (!opTok || opTok.type !== 'op' || !MATCH_OPS.includes(opTok.text)) p.fail('~ or !~');
    p.pos++;
    const pat = p.next('a quoted regular expression like "ok"');
    if (pat.type !== 'string') p.fail('a quoted regular expression like "ok"', pat);
    checkRegex(p, pat);
    return { type: 'match', metric, op: opTok.text as MatchOp, pattern: pat.text };
  }
  if (!opTok || opTok.type !== 'op' || !COMPARE_OPS.includes(opTok.text)) p.fail('a comparison (> >= < <= == !=)');
  p.pos++;
  const v = p.word(EXPECTED[ms.unit]);
  const parsed = parseValue(v.text, ms.unit);
  if (!parsed.ok) p.fail(parsed.expected, v);
  return { type: 'compare', metric, op: opTok.text as CompareOp, value: parsed.value, unit: ms.unit, text: v.text };
}

interface Clauses {
  then?: Action;
  forCycles?: number;
  recoverCycles?: number;
  everyMs?: number;
  timeoutMs?: number;
}

function parseClauses(p: Parser, cond: Condition): Clauses {
  const c: Clauses = {};
  const seen = new Set<string>();
  for (;;) {
    const t = p.peek();
    if (!t) break;
    const w = t.type === 'word' ? t.text.toLowerCase() : '';
    if (!['for', 'then', 'every', 'timeout', 'recover'].includes(w)) {
      p.fail(c.then === undefined ? "'then' (or for/every/timeout/recover)" : "end of rule or every/timeout/recover/for");
    }
    if (seen.has(w)) p.fail(`at most one '${w}' clause`);
    seen.add(w);
    p.pos++;
    switch (w) {
      case 'for':
        if (cond.type === 'nagios') p.fail("no 'for' before 'then nagios'; put 'for N cycles' after it", t);
        c.forCycles = p.int('a cycle count >= 1');
        p.keyword('cycles', 'cycle');
        break;
      case 'then': {
        const a = p.word('warning, critical or nagios');
        const act = a.text.toLowerCase();
        if (cond.type === 'nagios') {
          if (act !== 'nagios') p.fail("'nagios' (a command without a condition takes its status from its exit code)", a);
        } else if (act !== 'warning' && act !== 'critical') {
          p.fail(act === 'nagios' ? "warning or critical ('then nagios' is for command rules without a condition)" : 'warning or critical', a);
        }
        c.then = act as Action;
        break;
      }
      case 'every': case 'timeout': {
        const d = p.word(EXPECTED.duration);
        const parsed = parseDuration(d.text);
        if (!parsed.ok) p.fail(parsed.expected, d);
        if (w === 'every') c.everyMs = parsed.value; else c.timeoutMs = parsed.value;
        break;
      }
      case 'recover':
        p.keyword('after');
        c.recoverCycles = p.int('a cycle count >= 1');
        p.keyword('cycles', 'cycle');
        break;
    }
  }
  if (c.then === undefined) p.fail(cond.type === 'nagios' ? "'then nagios'" : "'then warning' or 'then critical'");
  return c;
}

/** Parse one text rule. `name` overrides the derived name. Throws RuleSyntaxError. */
export function parseRule(src: string, name?: string): Rule {
  const p: Parser = new Parser(src);
  const kt = p.peek();
  if (!kt || kt.type !== 'word' || !(CHECK_KINDS as string[]).includes(kt.text.toLowerCase())) {
    p.fail(`a check kind (${CHECK_KINDS.join(', ')})`);
  }
  const kind = kt.text.toLowerCase() as CheckKind;
  p.form = formOf(kind);
  p.pos++;
  const params = parseSubject(p, kind);
  const condition = parseCondition(p, kind);
  const c = parseClauses(p, condition);
  const rule: Rule = {
    name: name ?? deriveName(params, condition),
    kind,
    params,
    condition,
    then: c.then as Action,
    forCycles: c.forCycles ?? 1,
    recoverCycles: c.recoverCycles ?? 1,
    source: src.trim(),
  };
  if (c.everyMs !== undefined) rule.everyMs = c.everyMs;
  if (c.timeoutMs !== undefined) rule.timeoutMs = c.timeoutMs;
  return rule;
}

/** A stable, YAML-key-friendly name: kind, target and metric, e.g. "disk-root-usage", "tcp-127.0.0.1-5432-fails". */
export function deriveName(params: RuleParams, cond: Condition): string {
  const parts: string[] = [params.kind];
  switch (params.kind) {
    case 'disk': case 'file': parts.push(params.path === '/' ? 'root' : params.path); break;
    case 'process': parts.push(params.name ?? (params.pidfile ? `pidfile-${params.pidfile}` : `match-${params.match ?? ''}`)); break;
    case 'tcp': case 'postgres': case 'mysql': parts.push(`${params.host}-${params.port}`); break;
    case 'http': parts.push(params.url.replace(/^https?:\/\//, '')); break;
    case 'dns': parts.push(params.name, params.type); break;
    case 'command': parts.push(params.command.split(/\s+/)[0]?.split('/').pop() ?? 'command'); break;
    default: break;
  }
  if (cond.type !== 'nagios') parts.push(cond.metric);
  return parts.join('-').toLowerCase().replace(/[^a-z0-9._]+/g, '-').replace(/-+/g, '-').replace(/^-|-$/g, '');
}

// ---------------------------------------------------------------------------------------------
// Structured (YAML) form, validated by zod. Produces the same Rule as the text form.

const durationString = z.string().transform((s, ctx) => {
  const p = parseDuration(s);
  if (!p.ok) { ctx.addIssue({ code: 'custom', message: `expected ${p.expected}, got ${JSON.stringify(s)}` }); return z.NEVER; }
  return p.value;
});

const hostPort = { host: z.string().min(1), port: z.number().int().min(1).max(65535) };
const absolute = z.string().startsWith('/', { message: 'expected an absolute path (starting with /)' });
const regex = z.string().refine((s) => { try { new RegExp(s); return true; } catch { return false; } }, { message: 'expected a valid regular expression' });

/** Params of each kind in the structured form (strict: unknown keys are errors). */
export const PARAMS_SCHEMAS = {
  disk: z.strictObject({ path: absolute }),
  load: z.strictObject({}),
  cpu: z.strictObject({}),
  memory: z.strictObject({}),
  swap: z.strictObject({}),
  process: z.strictObject({ name: z.string().min(1).optional(), pidfile: absolute.optional(), match: regex.optional() })
    .refine((o) => [o.name, o.pidfile, o.match].filter((v) => v !== undefined).length === 1, { message: 'expected exactly one of name, pidfile, match' }),
  tcp: z.strictObject(hostPort),
  http: z.strictObject({
    url: z.string().refine(isHttpUrl, { message: 'expected an http:// or https:// URL' }),
    method: z.enum(HTTP_METHODS).default('GET'),
  }),
  dns: z.strictObject({
    name: z.string().regex(/^[A-Za-z0-9_.-]+\.?$/, { message: 'expected a domain name like example.com' }),
    server: z.string().refine(isIp, { message: 'expected an IP address' }),
    port: z.number().int().min(1).max(65535).default(53),
    type: z.enum(DNS_TYPES).default('A'),
  }),
  file: z.strictObject({ path: absolute }),
  postgres: z.strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65535).default(5432), user: z.string().min(1).default('postgres'), database: z.string().min(1).optional() }),
  mysql: z.strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65535).default(3306) }),
  command: z.strictObject({ command: z.string().trim().min(1) }),
} as const;

export const structuredRuleSchema = z.strictObject({
  name: z.string().min(1).optional(),
  kind: z.enum(CHECK_KINDS as [CheckKind, ...CheckKind[]]),
  params: z.record(z.string(), z.unknown()).default({}),
  /** Which measurement; omitted = the kind's default (cpu/memory/swap usage) or nagios for command. */
  metric: z.string().optional(),
  op: z.enum(['>', '>=', '<', '<=', '==', '!=', '~', '!~']).optional(),
  /** Number (in the metric's unit: %, count, load, status code) or string with unit ("500ms", "1GB", "90%"). */
  threshold: z.union([z.number(), z.string()]).optional(),
  pattern: regex.optional(),
  for: z.number().int().min(1).optional(),
  then: z.enum(['warning', 'critical', 'nagios']),
  every: durationString.optional(),
  timeout: durationString.optional(),
  recover: z.number().int().min(1).optional(),
}).transform((o, ctx): Rule => {
  const issue = (path: (string | number)[], message: string): never => {
    ctx.addIssue({ code: 'custom', path, message });
    return z.NEVER as never;
  };
  const kind = o.kind;
  const ps = PARAMS_SCHEMAS[kind].safeParse(o.params);
  if (!ps.success) {
    for (const i of ps.error.issues) ctx.addIssue({ code: 'custom', path: ['params', ...i.path.map((k) => (typeof k === 'symbol' ? String(k) : k))], message: i.message });
    return z.NEVER;
  }
  const params = { kind, ...ps.data } as RuleParams;
  if (params.kind === 'postgres' && !params.database) params.database = params.user;
  const spec = KINDS[kind];
  const names = Object.keys(spec.metrics);
  let condition: Condition;
  const metric = o.metric ?? (kind === 'command' && o.then === 'nagios' ? undefined : spec.defaultMetric);
  if (metric === undefined) {
    if (kind !== 'command') return issue(['metric'], `expected one of: ${names.join(', ')}`);
    condition = { type: 'nagios' };
  } else {
    const ms = spec.metrics[metric];
    if (!ms) return issue(['metric'], `expected one of: ${names.join(', ')}, got ${JSON.stringify(metric)}`);
    if (ms.form === 'flag') {
      if (o.op !== undefined || o.threshold !== undefined || o.pattern !== undefined) return issue(['metric'], `'${metric}' takes no op, threshold or pattern`);
      condition = { type: 'flag', metric };
    } else if (ms.form === 'match') {
      if (o.op !== '~' && o.op !== '!~') return issue(['op'], `expected ~ or !~ for '${metric}'`);
      if (o.pattern === undefined) return issue(['pattern'], `expected a regular expression for '${metric}'`);
      condition = { type: 'match', metric, op: o.op, pattern: o.pattern };
    } else {
      if (o.op === undefined || !COMPARE_OPS.includes(o.op)) return issue(['op'], 'expected one of > >= < <= == !=');
      if (o.threshold === undefined) return issue(['threshold'], `expected ${EXPECTED[ms.unit]}`);
      const v = thresholdValue(o.threshold, ms.unit);
      if (!v.ok) return issue(['threshold'], v.message);
      condition = { type: 'compare', metric, op: o.op as CompareOp, value: v.value, unit: ms.unit, text: String(o.threshold) };
    }
  }
  if ((condition.type === 'nagios') !== (o.then === 'nagios')) {
    return issue(['then'], condition.type === 'nagios' ? "expected 'nagios' for a command without a metric" : "expected warning or critical ('nagios' is for command rules without a metric)");
  }
  const rule: Rule = {
    name: o.name ?? deriveName(params, condition),
    kind, params, condition,
    then: o.then,
    forCycles: o.for ?? 1,
    recoverCycles: o.recover ?? 1,
    source: renderRule(params, condition, o.then, o.for),
  };
  if (o.every !== undefined) rule.everyMs = o.every;
  if (o.timeout !== undefined) rule.timeoutMs = o.timeout;
  return rule;
});

/** A threshold given as a number (in the metric's natural unit) or a string with unit. */
export function thresholdValue(t: number | string, unit: UnitKind): { ok: true; value: number } | { ok: false; message: string } {
  if (typeof t === 'number') {
    if (unit === 'duration' || unit === 'size') return { ok: false, message: `expected ${EXPECTED[unit]} as a string (a bare number is ambiguous)` };
    if (unit === 'integer' && !Number.isInteger(t)) return { ok: false, message: `expected ${EXPECTED.integer}, got ${t}` };
    if (unit === 'percent' && (t < 0 || t > 100)) return { ok: false, message: `expected a percentage 0-100, got ${t}` };
    return { ok: true, value: t };
  }
  const p = parseValue(t, unit);
  return p.ok ? p : { ok: false, message: `expected ${p.expected}, got ${JSON.stringify(t)}` };
}

/** Text rendering of a rule (for logs and the YAML form's `source`). */
export function renderRule(params: RuleParams, cond: Condition, then: Action, forCycles?: number): string {
  const subj: string[] = [params.kind];
  switch (params.kind) {
    case 'disk': case 'file': subj.push(params.path); break;
    case 'process': subj.push(params.name ?? (params.pidfile ? `pidfile ${params.pidfile}` : `match ${JSON.stringify(params.match)}`)); break;
    case 'tcp': case 'postgres': case 'mysql': subj.push(`${params.host.includes(':') ? `[${params.host}]` : params.host}:${params.port}`); break;
    case 'http': subj.push(params.url); break;
    case 'dns': subj.push(params.name, `@${params.server}:${params.port}`, 'type', params.type); break;
    case 'command': subj.push(JSON.stringify(params.command)); break;
    default: break;
  }
  if (cond.type === 'compare') subj.push(cond.metric, cond.op, cond.text);
  else if (cond.type === 'match') subj.push(cond.metric, cond.op, JSON.stringify(cond.pattern));
  else if (cond.type === 'flag') subj.push(cond.metric);
  if (forCycles !== undefined && forCycles > 1) subj.push('for', String(forCycles), 'cycles');
  subj.push('then', then);
  return subj.join(' ');
}
