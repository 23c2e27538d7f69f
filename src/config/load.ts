/**
 * Config loader: YAML text → validated `Config`, or every problem found, each with file, 1-based
 * line and column and the dotted config path (`pools[1].members[0]`).
 *
 * Stages, all of which report every problem they find:
 *  1. YAML syntax (the `yaml` package, keeping node positions through a LineCounter). If the
 *     text is not well-formed YAML only those errors are reported: what follows would be guesses.
 *  2. Shape: the zod v4 schema below (snake_case keys, strict objects: an unknown key is an error
 *     that suggests the closest known key).
 *  3. Component settings: each `settings.<component>` of a pool or an override against the schema
 *     the component registered (components.ts).
 *  4. Cross checks: duplicate names, duplicate members, references to networks and relays that do
 *     not exist, ports that collide, overrides for nodes that are in no pool (a warning).
 * Then defaults are applied and relative paths resolved against the config file's directory.
 * See docs/configuration.md for every key.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join as joinPath, resolve } from 'node:path';
import { isIPv6 } from 'node:net';
import { LineCounter, parseDocument, isAlias, isMap, isPair, isScalar, isSeq, visit, type Document } from 'yaml';
import * as z from 'zod';
import type { ComponentSettings, Config, ConfigProblem, GossipConfig, LoadResult, LogConfig, NodeOverride, TokenRole } from './types.ts';
import { durationSchema, parseDurationMs } from './duration.ts';
import { componentRegistry, type ComponentRegistry } from './components.ts';
import { isIpAddress, isPort, isWildcardAddress, parseHostPort } from './address.ts';
import { closest, formatPath, type PathSegment } from './paths.ts';

export type { LoadResult } from './types.ts';

/** Defaults applied to keys the file leaves out (documented in docs/configuration.md). */
export const DEFAULTS = {
  rpcPort: 7950,
  gossipPort: 7946,
  network: 'default',
  dataDir: '/var/lib/multiall',
  logLevel: 'info',
  logFormat: 'auto',
  /** Relative to the data directory. */
  apiSocket: 'api.sock',
  tlsCa: 'tls/ca.crt',
  tlsCert: 'tls/node.crt',
  tlsKey: 'tls/node.key',
} as const;

/** Node, pool and network names: DNS-label-like. */
export const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Aliases (`*anchor`) expanded at most this many times: stops "billion laughs" documents. */
const MAX_ALIAS_COUNT = 100;

// ---------------------------------------------------------------------------------------------
// Schema of the file (snake_case, as written).

const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v) : String(v));

const nameSchema = (what: string) =>
  z.string().regex(NAME_PATTERN, {
    error: (iss) =>
      `${show(iss.input)} is not a valid ${what}: use 1-63 lowercase letters, digits and "-", starting and ending with a letter or digit`,
  });

function ipProblem(input: unknown): string {
  const s = String(input);
  if (s.startsWith('[') && s.endsWith(']') && isIPv6(s.slice(1, -1))) return `write the IPv6 address without brackets: ${s.slice(1, -1)}`;
  const hp = parseHostPort(s, { ipOnly: true });
  if (hp.ok) return `${show(s)} includes a port; give the address alone (ports are rpc_port and gossip_port)`;
  return `${show(s)} is not an IPv4 or IPv6 address`;
}

const ipSchema = z.string().refine(isIpAddress, { error: (iss) => ipProblem(iss.input) });

const portSchema = z.number().refine(isPort, { error: (iss) => `port must be an integer from 1 to 65535, got ${String(iss.input)}` });

const pathSchema = z
  .string()
  .min(1, { error: 'must not be empty' })
  .refine((s) => !s.includes('\0'), { error: 'must not contain a NUL character' });

const hostPortSchema = (ipOnly: boolean) =>
  z.string().superRefine((s, ctx) => {
    const r = parseHostPort(s, { ipOnly });
    if (!r.ok) ctx.addIssue({ code: 'custom', message: r.error, input: s });
  });

const sha256Schema = z.string().regex(/^[0-9a-fA-F]{64}$/, {
  // Never echo the value: a mistaken entry may well be the secret itself.
  error: (iss) =>
    `must be the sha256 of the token's secret as 64 hex digits (got ${typeof iss.input === 'string' ? iss.input.length : 0} characters); ` +
    'the secret itself never goes in the config: compute it with  printf %s "$SECRET" | sha256sum',
});

const settingsSchema = z.record(z.string(), z.unknown());

const tlsSchema = z.strictObject({
  ca: pathSchema.nullish(),
  cert: pathSchema.nullish(),
  key: pathSchema.nullish(),
});

const nodeSchema = z.strictObject({
  name: nameSchema('node name'),
  bind: ipSchema,
  advertise: ipSchema.nullish(),
  rpc_port: portSchema.nullish(),
  gossip_port: portSchema.nullish(),
  network: nameSchema('network name').nullish(),
  data_dir: pathSchema.nullish(),
  tls: tlsSchema.nullish(),
  gossip_keyring: pathSchema.nullish(),
});

const tokenSchema = z.strictObject({
  name: z.string().min(1, { error: 'must not be empty' }),
  role: z.enum(['read', 'operator']),
  sha256: sha256Schema,
});

const apiSchema = z.strictObject({
  socket: pathSchema.nullish(),
  tcp: hostPortSchema(true).nullish(),
  tokens: z.array(tokenSchema).nullish(),
});

const logSchema = z.strictObject({
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).nullish(),
  format: z.enum(['auto', 'json', 'pretty']).nullish(),
});

const networkSchema = z.strictObject({
  name: nameSchema('network name'),
  relays: z.array(nameSchema('node name')).nullish(),
  direct: z.array(nameSchema('network name')).nullish(),
});

const poolSchema = z.strictObject({
  name: nameSchema('pool name'),
  members: z.array(nameSchema('node name')).nullish(),
  settings: settingsSchema.nullish(),
});

const gossipSchema = z.strictObject({
  profile: z.enum(['lan', 'wan', 'local']).nullish(),
  probe_interval: durationSchema.nullish(),
  probe_timeout: durationSchema.nullish(),
  gossip_interval: durationSchema.nullish(),
  suspicion_mult: z.number().int().min(1).max(100).nullish(),
  push_pull_interval: durationSchema.nullish(),
  reconnect_interval: durationSchema.nullish(),
  dead_reap_timeout: durationSchema.nullish(),
  left_reap_timeout: durationSchema.nullish(),
});

const overrideSchema = z.strictObject({
  settings: settingsSchema.nullish(),
});

/** The whole file as written (snake_case). Settings sub-documents are checked against the component registry separately. */
export const configFileSchema = z.strictObject({
  node: nodeSchema,
  api: apiSchema.nullish(),
  log: logSchema.nullish(),
  join: z.array(hostPortSchema(false)).nullish(),
  gossip: gossipSchema.nullish(),
  admin_keys: z.array(pathSchema).nullish(),
  networks: z.array(networkSchema).nullish(),
  pools: z.array(poolSchema).nullish(),
  overrides: z.record(z.string(), overrideSchema.nullish()).nullish(),
});

type ConfigFile = z.output<typeof configFileSchema>;

// ---------------------------------------------------------------------------------------------
// Positions and problem collection.

type Mode = 'key' | 'value';

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Map) && !(v instanceof Set);

class Reporter {
  readonly problems: ConfigProblem[] = [];
  readonly file: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;

  constructor(file: string, doc: Document.Parsed, lines: LineCounter) {
    this.file = file;
    this.doc = doc;
    this.lines = lines;
  }

  get errorCount(): number {
    return this.problems.filter((p) => p.severity !== 'warning').length;
  }

  position(offset: number | undefined): { line: number; column: number } {
    if (offset === undefined) return { line: 0, column: 0 };
    const p = this.lines.linePos(offset);
    return { line: p.line, column: p.col };
  }

  addAt(offset: number | undefined, path: string, message: string, severity: 'error' | 'warning' = 'error'): void {
    const problem: ConfigProblem = { file: this.file, ...this.position(offset), path, message };
    if (severity === 'warning') problem.severity = 'warning';
    this.problems.push(problem);
  }

  /** A problem about the thing at `path`: its key (`mode: 'key'`) or its value. */
  add(path: readonly PathSegment[], mode: Mode, message: string, severity: 'error' | 'warning' = 'error'): void {
    this.addAt(this.offsetOf(path, mode), formatPath(path), message, severity);
  }

  warn(path: readonly PathSegment[], mode: Mode, message: string): void {
    this.add(path, mode, message, 'warning');
  }

  /** Line of the value at `path` (for "first defined at line N"). */
  lineOf(path: readonly PathSegment[]): number {
    return this.position(this.offsetOf(path, 'value')).line;
  }

  /**
   * Offset of the node at `path`. When the path does not exist (a missing key), the deepest part
   * that does: the key of the mapping the missing key belongs in, or the item of a list.
   */
  offsetOf(path: readonly PathSegment[], mode: Mode): number | undefined {
    let node: unknown = this.doc.contents;
    let keyOffset: number | undefined; // key of the last mapping entry walked through
    let lastWasKey = false;
    const start = (n: unknown): number | undefined => {
      const r = (n as { range?: [number, number, number] | null } | null)?.range;
      return r ? r[0] : undefined;
    };
    for (const seg of path) {
      if (isAlias(node)) node = node.resolve(this.doc) ?? node;
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && keyText(p.key) === String(seg));
        if (pair === undefined) return keyOffset ?? start(node);
        keyOffset = start(pair.key);
        node = pair.value;
        lastWasKey = true;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg];
        if (item === undefined) return lastWasKey ? keyOffset : start(node);
        node = item;
        keyOffset = start(item) ?? keyOffset;
        lastWasKey = false;
      } else {
        return (lastWasKey ? keyOffset : undefined) ?? start(node) ?? keyOffset;
      }
    }
    if (mode === 'key' && lastWasKey) return keyOffset;
    const empty = node === null || node === undefined || (isScalar(node) && node.value === null && node.source === '');
    if (empty) return keyOffset ?? start(node);
    return start(node) ?? keyOffset;
  }

  /** Turns one zod issue into problems; `base` is where `schema` sits in the file. */
  zodIssue(issue: z.core.$ZodIssue, base: readonly PathSegment[], schema: z.ZodType): void {
    const rel = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    const path = [...base, ...rel];
    switch (issue.code) {
      case 'unrecognized_keys': {
        const known = knownKeys(schemaAt(schema, rel));
        for (const key of issue.keys) {
          const guess = closest(key, known);
          const hint = guess !== undefined ? `; did you mean "${guess}"?` : known.length > 0 ? ` (known keys: ${known.join(', ')})` : '';
          this.add([...path, key], 'key', `unknown key "${key}"${hint}`);
        }
        return;
      }
      case 'invalid_type': {
        if (issue.input === undefined) {
          this.add(path, 'key', `missing required key "${String(rel.at(-1) ?? '')}"`);
          return;
        }
        let hint = '';
        if (issue.expected === 'string' && (typeof issue.input === 'number' || typeof issue.input === 'boolean')) {
          hint = `; put it in quotes ("${String(issue.input)}") to make it a string`;
        }
        this.add(path, 'value', `expected ${expectedNoun(issue.expected)}, got ${describe(issue.input)}${hint}`);
        return;
      }
      case 'invalid_value': {
        const values = issue.values.map((v) => String(v));
        const guess = typeof issue.input === 'string' ? closest(issue.input, values) : undefined;
        const hint = guess !== undefined ? `; did you mean "${guess}"?` : '';
        this.add(path, 'value', `must be one of ${values.join(', ')}; got ${describe(issue.input)}${hint}`);
        return;
      }
      case 'too_small':
      case 'too_big': {
        const small = issue.code === 'too_small';
        const bound = String(small ? issue.minimum : issue.maximum);
        const op = small ? (issue.inclusive ? 'at least' : 'more than') : issue.inclusive ? 'at most' : 'less than';
        const custom = !/^Too (small|big)/.test(issue.message);
        let message: string;
        if (custom) message = issue.message;
        else if (issue.origin === 'number' || issue.origin === 'int' || issue.origin === 'bigint') message = `must be ${op} ${bound}, got ${describe(issue.input)}`;
        else if (issue.origin === 'string') message = `must be ${op} ${bound} characters long`;
        else if (issue.origin === 'array' || issue.origin === 'set') message = `must have ${op} ${bound} items`;
        else message = issue.message;
        this.add(path, 'value', message);
        return;
      }
      default:
        this.add(path, 'value', issue.message);
    }
  }

  sorted(): ConfigProblem[] {
    return this.problems
      .map((p, i) => ({ p, i }))
      .sort((a, b) => a.p.line - b.p.line || a.p.column - b.p.column || a.i - b.i)
      .map(({ p }) => p);
  }
}

function keyText(key: unknown): string {
  if (isScalar(key)) return key.value === null || key.value === undefined ? '' : String(key.value);
  return String(key);
}

function expectedNoun(expected: string): string {
  switch (expected) {
    case 'object':
    case 'record':
    case 'map':
      return 'a mapping';
    case 'array':
    case 'tuple':
      return 'a list';
    case 'boolean':
      return 'true or false';
    case 'int':
      return 'an integer';
    default:
      return `a ${expected}`;
  }
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'an empty value';
  if (typeof v === 'string') return `the string ${show(v)}`;
  if (typeof v === 'number' || typeof v === 'bigint') return `the number ${String(v)}`;
  if (typeof v === 'boolean') return `the boolean ${String(v)}`;
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Uint8Array) return 'binary data';
  return 'a mapping';
}

function unwrapSchema(s: z.ZodType): z.ZodType {
  let cur: z.ZodType = s;
  for (let i = 0; i < 32; i++) {
    if (cur instanceof z.ZodOptional || cur instanceof z.ZodNullable || cur instanceof z.ZodDefault || cur instanceof z.ZodReadonly) {
      cur = cur.unwrap() as z.ZodType;
    } else if (cur instanceof z.ZodPipe) {
      cur = cur.in as z.ZodType;
    } else {
      break;
    }
  }
  return cur;
}

/** The sub-schema at `path` inside `schema` (objects, arrays, records), unwrapped; undefined when unknown. */
function schemaAt(schema: z.ZodType, path: readonly PathSegment[]): z.ZodType | undefined {
  let cur: z.ZodType | undefined = schema;
  for (const seg of path) {
    if (cur === undefined) return undefined;
    const s = unwrapSchema(cur);
    if (s instanceof z.ZodObject) cur = Object.hasOwn(s.shape, seg) ? (s.shape[seg] as z.ZodType) : undefined;
    else if (s instanceof z.ZodArray) cur = s.element as z.ZodType;
    else if (s instanceof z.ZodRecord) cur = s.valueType as z.ZodType;
    else return undefined;
  }
  return cur === undefined ? undefined : unwrapSchema(cur);
}

function knownKeys(schema: z.ZodType | undefined): string[] {
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

// ---------------------------------------------------------------------------------------------
// Entry points.

export interface ParseOptions {
  /** Component settings schemas to validate `settings:` against; defaults to the global registry. */
  components?: ComponentRegistry;
}

/** Reads and parses a config file; a file that cannot be read is one problem at line 0. */
export async function loadConfigFile(path: string, opts: ParseOptions = {}): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'is a directory' : e.code === 'EACCES' ? 'permission denied' : e.message;
    return { ok: false, problems: [{ file: path, line: 0, column: 0, path: '', message: `cannot read config file: ${why}` }] };
  }
  return parseConfigText(text, path, opts);
}

/**
 * Parses config text. `file` names the file in problems (as given) and is resolved to an absolute
 * path for `Config.file` and for resolving relative paths inside the config. Never throws.
 */
export function parseConfigText(text: string, file: string, opts: ParseOptions = {}): LoadResult {
  const registry = opts.components ?? componentRegistry;
  const lines = new LineCounter();
  const doc = parseDocument(text.replace(/^\uFEFF/, ''), { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const r = new Reporter(file, doc, lines);

  // 1. YAML syntax.
  const keyAt = new Map<number, string>();
  visit(doc, {
    Pair(_k, pair) {
      if (isScalar(pair.key) && pair.key.range) keyAt.set(pair.key.range[0], keyText(pair.key));
    },
  });
  const otherErrors = doc.errors.some((e) => e.code !== 'DUPLICATE_KEY');
  for (const e of doc.errors) {
    if (e.code === 'DUPLICATE_KEY') {
      const key = keyAt.get(e.pos[0]) ?? '';
      // A broken line often parses as an empty key that "repeats": only noise next to the real error.
      if (key === '' && otherErrors) continue;
      r.addAt(e.pos[0], '', `duplicate key ${JSON.stringify(key)} (a key may appear once in a mapping)`);
    } else {
      r.addAt(e.pos[0], '', `YAML syntax error: ${e.message}`);
    }
  }
  for (const w of doc.warnings) r.addAt(w.pos[0], '', `YAML: ${w.message}`, 'warning');
  checkYamlNodes(r);
  if (r.errorCount > 0) return { ok: false, problems: r.sorted() };

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    let aliasOffset: number | undefined;
    visit(doc, {
      Alias(_key, node) {
        aliasOffset = node.range?.[0];
        return visit.BREAK;
      },
    });
    r.addAt(aliasOffset, '', `YAML: ${(err as Error).message}`);
    return { ok: false, problems: r.sorted() };
  }

  if (raw === null || raw === undefined) {
    r.addAt(0, '', 'the config is empty: it needs at least a "node:" section with "name" and "bind"');
    return { ok: false, problems: r.sorted() };
  }
  if (!isPlainObject(raw)) {
    r.addAt(r.offsetOf([], 'value'), '', `expected a mapping at the top level (node:, api:, pools:, ...), got ${describe(raw)}`);
    return { ok: false, problems: r.sorted() };
  }

  // 2. Shape.
  const parsed = configFileSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) for (const issue of parsed.error.issues) r.zodIssue(issue, [], configFileSchema);

  // 3. Component settings.
  const settings = checkAllSettings(r, raw, registry);

  // 4. Cross checks.
  crossCheck(r, raw);

  if (!parsed.success || r.errorCount > 0) return { ok: false, problems: r.sorted() };
  return { ok: true, config: buildConfig(parsed.data, settings, resolve(file)), warnings: r.sorted() };
}

/** YAML that the JSON view cannot represent faithfully: collection keys, aliases to no anchor. */
function checkYamlNodes(r: Reporter): void {
  if (r.doc.contents === null) return;
  visit(r.doc, {
    Pair(_key, pair) {
      if (pair.key !== null && pair.key !== undefined && !isScalar(pair.key)) {
        r.addAt((pair.key as { range?: [number, number, number] }).range?.[0], '', 'a key must be a plain string, not a list or mapping');
      } else if (isScalar(pair.key) && pair.key.value === '__proto__') {
        r.addAt(pair.key.range?.[0], '', 'the key "__proto__" is not allowed');
      }
    },
    Alias(_key, node) {
      if (node.resolve(r.doc) === undefined) {
        r.addAt(node.range?.[0], '', `alias *${node.source} refers to no anchor &${node.source} defined before it`);
      }
    },
  });
}

interface CheckedSettings {
  pools: (ComponentSettings | undefined)[];
  overrides: Map<string, ComponentSettings>;
}

function checkAllSettings(r: Reporter, raw: Record<string, unknown>, registry: ComponentRegistry): CheckedSettings {
  const out: CheckedSettings = { pools: [], overrides: new Map() };
  if (Array.isArray(raw.pools)) {
    raw.pools.forEach((pool, i) => {
      if (isPlainObject(pool)) out.pools[i] = checkSettings(r, pool.settings, ['pools', i, 'settings'], registry);
    });
  }
  if (isPlainObject(raw.overrides)) {
    for (const [name, ov] of Object.entries(raw.overrides)) {
      if (!isPlainObject(ov)) continue;
      const s = checkSettings(r, ov.settings, ['overrides', name, 'settings'], registry);
      if (s !== undefined) out.overrides.set(name, s);
    }
  }
  return out;
}

function checkSettings(r: Reporter, value: unknown, base: PathSegment[], registry: ComponentRegistry): ComponentSettings | undefined {
  if (value === null || value === undefined) return {};
  if (!isPlainObject(value)) return undefined; // reported by the file schema
  const out: ComponentSettings = {};
  for (const [component, sub] of Object.entries(value)) {
    const info = registry.get(component);
    if (info === undefined) {
      const known = registry.names();
      const guess = closest(component, known);
      r.add([...base, component], 'key', `unknown component "${component}"${guess !== undefined ? `; did you mean "${guess}"?` : ''} (known components: ${known.join(', ')})`);
      continue;
    }
    if (sub === null || sub === undefined) continue; // an empty value is the same as leaving the key out
    // The config keeps the sub-document as written: the component parses it (and its defaults and
    // transforms apply) after aggregation, so what `config show --effective` prints is what the
    // administrator wrote.
    const res = info.schema.safeParse(sub, { reportInput: true });
    if (res.success) out[component] = sub;
    else for (const issue of res.error.issues) r.zodIssue(issue, [...base, component], info.schema);
    uniqueNamedItems(r, sub, [...base, component]);
  }
  return out;
}

/**
 * Lists of named objects merge by name across pools (effective.ts), so a name may appear once in
 * each such list.
 */
function uniqueNamedItems(r: Reporter, value: unknown, path: PathSegment[], depth = 0): void {
  if (depth > 64) return;
  if (Array.isArray(value)) {
    const named = value.length > 0 && value.every((v) => isPlainObject(v) && typeof v.name === 'string');
    const seen = new Map<string, number>();
    value.forEach((item, i) => {
      if (named) {
        const name = (item as Record<string, unknown>).name as string;
        const first = seen.get(name);
        if (first === undefined) seen.set(name, i);
        else r.add([...path, i, 'name'], 'value', `duplicate name "${name}" in this list (first at ${formatPath([...path, first])}, line ${r.lineOf([...path, first])})`);
      }
      uniqueNamedItems(r, item, [...path, i], depth + 1);
    });
  } else if (isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) uniqueNamedItems(r, v, [...path, k], depth + 1);
  }
}

/** Checks across keys, run on the raw data so they work even where the shape has errors. */
function crossCheck(r: Reporter, raw: Record<string, unknown>): void {
  const node = isPlainObject(raw.node) ? raw.node : undefined;
  const pools = Array.isArray(raw.pools) ? raw.pools : [];
  const networks = Array.isArray(raw.networks) ? raw.networks : [];
  const api = isPlainObject(raw.api) ? raw.api : undefined;
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

  // Duplicate names in a list of named objects.
  const uniqueNames = (items: unknown[], base: PathSegment[], what: string): string[] => {
    const seen = new Map<string, number>();
    items.forEach((item, i) => {
      const name = isPlainObject(item) ? str(item.name) : undefined;
      if (name === undefined) return;
      const first = seen.get(name);
      if (first === undefined) {
        seen.set(name, i);
        return;
      }
      const firstPath = [...base, first];
      r.add([...base, i, 'name'], 'value', `duplicate ${what} "${name}" (first defined at ${formatPath(firstPath)}, line ${r.lineOf(firstPath)})`);
    });
    return [...seen.keys()];
  };
  // Duplicate strings in a list.
  const uniqueStrings = (items: unknown, base: PathSegment[], what: string): void => {
    if (!Array.isArray(items)) return;
    const seen = new Map<string, number>();
    items.forEach((v, j) => {
      if (typeof v !== 'string') return;
      const first = seen.get(v);
      if (first === undefined) seen.set(v, j);
      else r.add([...base, j], 'value', `duplicate ${what} "${v}" (already at ${formatPath([...base, first])}, line ${r.lineOf([...base, first])})`);
    });
  };

  uniqueNames(pools, ['pools'], 'pool');
  const networkNames = uniqueNames(networks, ['networks'], 'network');

  // Nodes known to the config: every pool member, and this node.
  const members = new Set<string>();
  pools.forEach((pool, i) => {
    if (!isPlainObject(pool)) return;
    uniqueStrings(pool.members, ['pools', i, 'members'], 'member');
    if (Array.isArray(pool.members)) for (const m of pool.members) if (typeof m === 'string') members.add(m);
  });
  const knownNodes = new Set(members);
  const nodeName = node ? str(node.name) : undefined;
  if (nodeName !== undefined) knownNodes.add(nodeName);

  // The node's network must be declared when networks are.
  if (node && networkNames.length > 0) {
    const net = node.network;
    if (net === undefined || net === null) {
      r.add(['node', 'network'], 'key', `node.network is not set, but networks are declared; set it to one of: ${networkNames.join(', ')}`);
    } else if (typeof net === 'string' && !networkNames.includes(net)) {
      const guess = closest(net, networkNames);
      r.add(['node', 'network'], 'value', `network "${net}" is not declared in networks${guess !== undefined ? `; did you mean "${guess}"?` : ` (declared: ${networkNames.join(', ')})`}`);
    }
  }

  // Relays are nodes of the cluster.
  networks.forEach((net, i) => {
    if (!isPlainObject(net)) return;
    uniqueStrings(net.relays, ['networks', i, 'relays'], 'relay');
    if (!Array.isArray(net.relays)) return;
    net.relays.forEach((relay, j) => {
      if (typeof relay !== 'string' || knownNodes.has(relay) || !NAME_PATTERN.test(relay)) return;
      const guess = closest(relay, [...knownNodes]);
      r.add(['networks', i, 'relays', j], 'value', `relay "${relay}" is not a member of any pool${guess !== undefined ? `; did you mean "${guess}"?` : ''}`);
    });
  });

  // Networks reached directly must be declared.
  networks.forEach((net, i) => {
    if (!isPlainObject(net) || !Array.isArray(net.direct)) return;
    net.direct.forEach((d, j) => {
      if (typeof d !== 'string' || networkNames.includes(d) || !NAME_PATTERN.test(d)) return;
      const guess = closest(d, networkNames);
      r.add(['networks', i, 'direct', j], 'value', `network "${d}" is not declared in networks${guess !== undefined ? `; did you mean "${guess}"?` : ''}`);
    });
  });

  // Overrides are keyed by node name; one for a node in no pool has nothing to override.
  if (isPlainObject(raw.overrides)) {
    for (const name of Object.keys(raw.overrides)) {
      if (!NAME_PATTERN.test(name)) {
        r.add(['overrides', name], 'key', `${show(name)} is not a valid node name: use 1-63 lowercase letters, digits and "-", starting and ending with a letter or digit`);
      } else if (!members.has(name)) {
        const guess = closest(name, [...members]);
        r.warn(['overrides', name], 'key', `override for node "${name}", which is a member of no pool${guess !== undefined ? `; did you mean "${guess}"?` : ''}`);
      }
    }
  }

  // Ports and addresses of this node.
  if (node) {
    const portOf = (v: unknown, dflt: number): number | undefined => (v === undefined || v === null ? dflt : isPort(v) ? v : undefined);
    const rpc = portOf(node.rpc_port, DEFAULTS.rpcPort);
    const gossip = portOf(node.gossip_port, DEFAULTS.gossipPort);
    if (rpc !== undefined && rpc === gossip) {
      const at = node.gossip_port !== undefined && node.gossip_port !== null ? 'gossip_port' : 'rpc_port';
      r.add(['node', at], 'value', `rpc_port and gossip_port are both ${rpc}; they must differ`);
    }
    const bind = str(node.bind);
    const advertise = str(node.advertise);
    if (advertise !== undefined && isWildcardAddress(advertise)) {
      r.add(['node', 'advertise'], 'value', `advertise must be an address other nodes can reach, not the wildcard ${advertise}`);
    } else if ((node.advertise === undefined || node.advertise === null) && bind !== undefined && isWildcardAddress(bind)) {
      r.add(['node', 'bind'], 'value', `bind is the wildcard address ${bind}, which other nodes cannot reach: set node.advertise to this node's address`);
    }
    // The API's TCP listener must not take a port the agent already listens on.
    const tcp = api ? str(api.tcp) : undefined;
    const hp = tcp !== undefined ? parseHostPort(tcp, { ipOnly: true }) : undefined;
    if (hp?.ok && bind !== undefined && (hp.host === bind || isWildcardAddress(hp.host) || isWildcardAddress(bind))) {
      if (hp.port === rpc) r.add(['api', 'tcp'], 'value', `port ${hp.port} is already node.rpc_port`);
      else if (hp.port === gossip) r.add(['api', 'tcp'], 'value', `port ${hp.port} is already node.gossip_port`);
    }
  }

  // API tokens: distinct names, distinct secrets.
  if (api && Array.isArray(api.tokens)) {
    uniqueNames(api.tokens, ['api', 'tokens'], 'token');
    const hashes = new Map<string, number>();
    api.tokens.forEach((t, i) => {
      const h = isPlainObject(t) ? str(t.sha256) : undefined;
      if (h === undefined || !/^[0-9a-fA-F]{64}$/.test(h)) return;
      const first = hashes.get(h.toLowerCase());
      if (first === undefined) hashes.set(h.toLowerCase(), i);
      else r.add(['api', 'tokens', i, 'sha256'], 'value', `same secret as api.tokens[${first}] (line ${r.lineOf(['api', 'tokens', first])}); each token needs its own secret`);
    });
  }

  // Seeds listed twice are harmless but probably a slip.
  if (Array.isArray(raw.join)) {
    const seen = new Map<string, number>();
    raw.join.forEach((j, i) => {
      if (typeof j !== 'string') return;
      const first = seen.get(j);
      if (first === undefined) seen.set(j, i);
      else r.warn(['join', i], 'value', `"${j}" is already listed at join[${first}]`);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Defaults and path resolution.

function gossipConfig(g: ConfigFile['gossip']): GossipConfig {
  const ms = (d: string | null | undefined) => (d ? parseDurationMs(d) : undefined);
  const out: GossipConfig = { profile: g?.profile ?? 'lan' };
  const set = <K extends keyof GossipConfig>(k: K, v: GossipConfig[K] | undefined | null) => {
    if (v !== undefined && v !== null) out[k] = v;
  };
  set('probeInterval', ms(g?.probe_interval));
  set('probeTimeout', ms(g?.probe_timeout));
  set('gossipInterval', ms(g?.gossip_interval));
  set('suspicionMult', g?.suspicion_mult);
  set('pushPullInterval', ms(g?.push_pull_interval));
  set('reconnectInterval', ms(g?.reconnect_interval));
  set('deadReapTimeout', ms(g?.dead_reap_timeout));
  set('leftReapTimeout', ms(g?.left_reap_timeout));
  return out;
}

function buildConfig(f: ConfigFile, settings: CheckedSettings, absFile: string): Config {
  const dir = dirname(absFile);
  const abs = (p: string): string => resolve(dir, p);
  const n = f.node;
  const dataDir = abs(n.data_dir ?? DEFAULTS.dataDir);
  const tcp = f.api?.tcp ? parseHostPort(f.api.tcp, { ipOnly: true }) : undefined;
  const overrides: Record<string, NodeOverride> = {};
  for (const name of Object.keys(f.overrides ?? {})) {
    overrides[name] = { settings: settings.overrides.get(name) ?? {} };
  }
  const log: LogConfig = { level: f.log?.level ?? DEFAULTS.logLevel, format: f.log?.format ?? DEFAULTS.logFormat };
  const config: Config = {
    file: absFile,
    node: {
      name: n.name,
      bind: n.bind,
      advertise: n.advertise ?? n.bind,
      rpcPort: n.rpc_port ?? DEFAULTS.rpcPort,
      gossipPort: n.gossip_port ?? DEFAULTS.gossipPort,
      network: n.network ?? DEFAULTS.network,
      dataDir,
      tls: {
        ca: abs(n.tls?.ca ?? joinPath(dataDir, DEFAULTS.tlsCa)),
        cert: abs(n.tls?.cert ?? joinPath(dataDir, DEFAULTS.tlsCert)),
        key: abs(n.tls?.key ?? joinPath(dataDir, DEFAULTS.tlsKey)),
      },
    },
    api: {
      socket: abs(f.api?.socket ?? joinPath(dataDir, DEFAULTS.apiSocket)),
      tokens: (f.api?.tokens ?? []).map((t) => ({ name: t.name, role: t.role as TokenRole, sha256: t.sha256.toLowerCase() })),
    },
    log,
    join: [...(f.join ?? [])],
    gossip: gossipConfig(f.gossip),
    adminKeys: (f.admin_keys ?? []).map(abs),
    networks: (f.networks ?? []).map((net) => ({ name: net.name, relays: [...(net.relays ?? [])], ...(net.direct ? { direct: [...net.direct] } : {}) })),
    pools: (f.pools ?? []).map((p, i) => ({ name: p.name, members: [...(p.members ?? [])], settings: settings.pools[i] ?? {} })),
    overrides,
  };
  if (n.gossip_keyring) config.node.gossipKeyring = abs(n.gossip_keyring);
  if (tcp?.ok) config.api.tcp = { host: tcp.host, port: tcp.port };
  return config;
}
