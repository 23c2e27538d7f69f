/** Commands that talk to a running agent: status, ping, reload, history, events. */
import type { Command } from 'commander';
import { loadConfigFile } from '../config/load.ts';
import { formatProblems } from '../config/format.ts';
import { apiRequest, apiStream, type ApiTarget } from './client.ts';
import { keyValues, table } from './table.ts';
import { CliExit, EXIT } from './main.ts';

interface GlobalOpts {
  config?: string;
  socket?: string;
  api?: string;
  token?: string;
}

/** --socket or --api win; otherwise the socket named in the config file. */
export async function resolveTarget(program: Command): Promise<ApiTarget> {
  const g = program.opts<GlobalOpts>();
  if (g.api) return { url: g.api, token: g.token };
  if (g.socket) return { socketPath: g.socket };
  const file = g.config ?? '/etc/multiall/multiall.yaml';
  const r = await loadConfigFile(file);
  if (!r.ok) throw new CliExit(EXIT.usage, `multiall: cannot find the agent's API from ${file}:\n${formatProblems(r.problems)}\n(use --socket PATH or --api URL)`);
  return { socketPath: r.config.api.socket };
}

const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : s + '\n');

export function registerApiCommands(program: Command): void {
  program
    .command('status')
    .option('--json', 'print JSON')
    .description("show the local agent's status")
    .action(async (o: { json?: boolean }) => {
      const st = (await apiRequest(await resolveTarget(program), 'GET', '/v1/status')) as Record<string, unknown>;
      out(o.json ? JSON.stringify(st, null, 2) : keyValues(st));
    });

  program
    .command('ping')
    .argument('<peer>', 'NAME@HOST:PORT of a peer agent (its RPC port)')
    .option('--timeout <ms>', 'give up after this many milliseconds', '5000')
    .option('--json', 'print JSON')
    .description('mTLS round trip from the local agent to a peer agent')
    .action(async (peer: string, o: { timeout: string; json?: boolean }) => {
      const m = /^([a-z0-9-]+)@(\[[0-9a-f:.]+\]|[^:]+):(\d{1,5})$/i.exec(peer);
      if (!m) throw new CliExit(EXIT.usage, `multiall ping: expected NAME@HOST:PORT, got '${peer}'`);
      const timeoutMs = Number(o.timeout);
      if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new CliExit(EXIT.usage, `multiall ping: --timeout must be a positive integer, got '${o.timeout}'`);
      const body = { name: m[1], host: (m[2] ?? '').replace(/^\[|\]$/g, ''), port: Number(m[3]), timeoutMs };
      const r = (await apiRequest(await resolveTarget(program), 'POST', '/v1/peers/ping', body, timeoutMs + 5000)) as { node: string; version: string; rttMs: number };
      out(o.json ? JSON.stringify(r) : `${r.node} (version ${r.version}): rtt ${r.rttMs} ms over mutual TLS`);
    });

  program
    .command('reload')
    .option('--json', 'print JSON')
    .description('make the agent re-read its config file (an invalid file is refused, the running config stays)')
    .action(async (o: { json?: boolean }) => {
      try {
        const r = (await apiRequest(await resolveTarget(program), 'POST', '/v1/reload')) as { needsRestart: string[] };
        out(o.json ? JSON.stringify(r) : `reloaded${r.needsRestart.length ? `; needs a restart to change: ${r.needsRestart.join(', ')}` : ''}`);
      } catch (err) {
        const body = (err as { body?: { problems?: Parameters<typeof formatProblems>[0] } }).body;
        if (body?.problems) throw new CliExit(EXIT.failed, `reload refused, the agent keeps its running config:\n${formatProblems(body.problems)}`);
        throw err;
      }
    });

  program
    .command('history')
    .option('--component <name>', 'only this component')
    .option('--limit <n>', 'at most this many entries', '50')
    .option('--json', 'print JSON')
    .description("recent entries of the agent's local history")
    .action(async (o: { component?: string; limit: string; json?: boolean }) => {
      const q = new URLSearchParams({ limit: o.limit, ...(o.component ? { component: o.component } : {}) });
      const rows = (await apiRequest(await resolveTarget(program), 'GET', `/v1/history?${q}`)) as { at: number; component: string; kind: string; data: unknown }[];
      out(o.json ? JSON.stringify(rows, null, 2) : table(['time', 'component', 'kind', 'data'], rows.map((r) => [new Date(r.at).toISOString(), r.component, r.kind, JSON.stringify(r.data)])));
    });

  program
    .command('events')
    .description('follow the live event stream (one JSON object per line) until interrupted')
    .action(async () => {
      await apiStream(await resolveTarget(program), '/v1/events', (ev) => out(JSON.stringify(ev)));
    });
}
