/**
 * Text the CLI prints for configs: problems in compiler style, the effective configuration of a
 * node as a table (or JSON), and the loaded config with every default filled in.
 */
import { stringify } from 'yaml';
import type { Config, ConfigProblem, EffectiveConfig, ValueSource } from './types.ts';
import { formatHostPort } from './address.ts';

/**
 * One line per problem, like a compiler: `file:line:col: path: message`, warnings as
 * `file:line:col: path: warning: message`. The position is left out when unknown (line 0), the
 * path when the problem is about the file as a whole (YAML syntax). `severity` is the one to
 * assume for problems that carry none (default: error).
 */
export function formatProblems(problems: readonly ConfigProblem[], severity: 'error' | 'warning' = 'error'): string {
  return problems
    .map((p) => {
      const where = p.line > 0 ? `${p.file}:${p.line}:${p.column}` : p.file;
      const path = p.path !== '' ? ` ${p.path}:` : '';
      const warning = (p.severity ?? severity) === 'warning' ? ' warning:' : '';
      return `${where}:${path}${warning} ${p.message}`;
    })
    .join('\n');
}

/** `pool web` or `override web1`. */
export function formatSource(source: ValueSource): string {
  return source.kind === 'pool' ? `pool ${source.pool}` : `override ${source.node}`;
}

/** A value as one line: JSON, so that "5" (a string) and 5 (a number) look different. */
export function formatValue(value: unknown): string {
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s;
}

function table(rows: string[][], indent = ''): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => indent + row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd());
}

/**
 * The effective configuration of a node. Text: a header, a table of every leaf (path, value,
 * source) sorted by path, then the conflicts, each with every pool's value. JSON: the
 * `EffectiveConfig` object as is.
 */
export function formatEffective(eff: EffectiveConfig, opts: { json: boolean }): string {
  if (opts.json) return JSON.stringify(eff, null, 2);
  const out: string[] = [];
  out.push(`node ${eff.node}: member of ${eff.pools.length > 0 ? eff.pools.join(', ') : 'no pool'}`);
  out.push('');
  if (eff.values.length === 0) {
    out.push('(no settings)');
  } else {
    out.push(...table([['PATH', 'VALUE', 'SOURCE'], ...eff.values.map((v) => [v.path, formatValue(v.value), formatSource(v.source)])]));
  }
  if (eff.conflicts.length > 0) {
    out.push('');
    out.push(`CONFLICTS (${eff.conflicts.length}): set differently by several pools, so not set at all.`);
    out.push(`Make the pools agree, or settle it for this node in overrides.${eff.node}.settings.`);
    for (const c of eff.conflicts) {
      out.push(`  ${c.path}`);
      out.push(...table(c.values.map((v) => [formatValue(v.value), formatSource(v.source)]), '    '));
    }
  }
  return out.join('\n');
}

/**
 * The loaded config with every default filled in and every path absolute: as JSON (the `Config`
 * object), or as YAML with the file's snake_case keys (valid input for the loader).
 */
export function formatConfig(config: Config, opts: { json: boolean }): string {
  if (opts.json) return JSON.stringify(config, null, 2);
  const n = config.node;
  const doc = {
    node: {
      name: n.name,
      bind: n.bind,
      advertise: n.advertise,
      rpc_port: n.rpcPort,
      gossip_port: n.gossipPort,
      network: n.network,
      data_dir: n.dataDir,
      tls: { ca: n.tls.ca, cert: n.tls.cert, key: n.tls.key },
      ...(n.gossipKeyring !== undefined ? { gossip_keyring: n.gossipKeyring } : {}),
    },
    api: {
      socket: config.api.socket,
      ...(config.api.tcp ? { tcp: formatHostPort(config.api.tcp.host, config.api.tcp.port) } : {}),
      tokens: config.api.tokens.map((t) => ({ name: t.name, role: t.role, sha256: t.sha256 })),
    },
    log: { level: config.log.level, format: config.log.format },
    join: config.join,
    networks: config.networks,
    pools: config.pools,
    overrides: config.overrides,
  };
  return `# ${config.file} (defaults filled in)\n${stringify(doc, { lineWidth: 0, aliasDuplicateObjects: false })}`.trimEnd();
}
