/**
 * Cluster commands: members, join, leave, maintenance, keys, pools, admin keygen, health,
 * failover. They talk to the local agent's API (see cmd-api.ts for how it is found).
 */
import type { Command } from 'commander';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { apiRequest } from './client.ts';
import { resolveTarget } from './cmd-api.ts';
import { keyValues, table } from './table.ts';
import { CliExit, EXIT, fileMustExist } from './main.ts';
import { generateAdminKey, signDocument, poolSchema } from '../pooldefs/document.ts';

const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : s + '\n');

interface MemberRow { name: string; address: string; status: string; pools: string[]; network: string; health: string; maintenanceReason?: string; version: string; rttMs?: number; relay?: boolean }

/** RTT for tables: ms with up to 3 decimals, '-' when unknown. */
const fmtRtt = (ms: number | null | undefined) => (ms === undefined || ms === null ? '-' : `${ms < 10 ? ms.toFixed(3) : ms.toFixed(1)} ms`);

export function registerClusterCommands(program: Command): void {
  program
    .command('members')
    .option('--pool <pool>', 'only members of this pool')
    .option('--network <network>', 'only members in this network')
    .option('--json', 'print JSON')
    .description('members known to the local agent, with status, pools, network and health')
    .action(async (o: { pool?: string; network?: string; json?: boolean }) => {
      const q = new URLSearchParams({ ...(o.pool ? { pool: o.pool } : {}), ...(o.network ? { network: o.network } : {}) });
      const rows = (await apiRequest(await resolveTarget(program), 'GET', `/v1/members${q.size ? `?${q}` : ''}`)) as MemberRow[];
      out(o.json ? JSON.stringify(rows, null, 2) : table(['name', 'address', 'status', 'pools', 'network', 'health', 'version', 'rtt'], rows.map((m) => [m.name, m.address, m.status + (m.maintenanceReason ? ` (${m.maintenanceReason})` : ''), m.pools.join(','), m.network + (m.relay ? ' (relay)' : ''), m.health, m.version, fmtRtt(m.rttMs)])));
    });

  program
    .command('rtt')
    .argument('<a>', 'member name')
    .argument('[b]', 'member name (default: the local node)')
    .option('--json', 'print JSON')
    .description('estimated round-trip time between two members, from their network coordinates')
    .action(async (a: string, b: string | undefined, o: { json?: boolean }) => {
      const q = new URLSearchParams({ a, ...(b ? { b } : {}) });
      const r = (await apiRequest(await resolveTarget(program), 'GET', `/v1/rtt?${q}`)) as { a: string; b: string; rttMs: number };
      out(o.json ? JSON.stringify(r) : `Estimated ${r.a} <-> ${r.b} rtt: ${r.rttMs.toFixed(3)} ms`);
    });

  program
    .command('nearest')
    .option('--pool <pool>', 'only members of this pool')
    .option('--n <n>', 'how many (default 5)')
    .option('--json', 'print JSON')
    .description('live members nearest to the local node by estimated round-trip time')
    .action(async (o: { pool?: string; n?: string; json?: boolean }) => {
      if (o.n !== undefined && !/^[1-9]\d{0,4}$/.test(o.n)) throw new CliExit(EXIT.usage, `multiall nearest: --n must be a positive integer, got '${o.n}'`);
      const q = new URLSearchParams({ ...(o.pool ? { pool: o.pool } : {}), ...(o.n ? { n: o.n } : {}) });
      const rows = (await apiRequest(await resolveTarget(program), 'GET', `/v1/nearest${q.size ? `?${q}` : ''}`)) as { name: string; rttMs: number | null; network: string; pools: string[] }[];
      out(o.json ? JSON.stringify(rows, null, 2) : table(['name', 'rtt', 'network', 'pools'], rows.map((r) => [r.name, fmtRtt(r.rttMs), r.network, r.pools.join(',')])));
    });

  program
    .command('join')
    .argument('<address...>', 'gossip address(es) HOST:PORT of any member')
    .description('join the cluster through any of these members')
    .action(async (addresses: string[]) => {
      const r = (await apiRequest(await resolveTarget(program), 'POST', '/v1/join', { addresses })) as { reached: number };
      out(`joined: ${r.reached} of ${addresses.length} address(es) answered`);
    });

  program
    .command('leave')
    .description('leave the cluster gracefully (members see "left", not "failed") and stop the agent')
    .action(async () => {
      await apiRequest(await resolveTarget(program), 'POST', '/v1/leave');
      out('leaving; the agent stops when the leave has been announced');
    });

  program
    .command('maintenance')
    .argument('<state>', 'on or off')
    .option('--reason <text>', 'why (shown to everyone in members)')
    .description('planned downtime: the member stays known but is marked as intentionally out')
    .action(async (state: string, o: { reason?: string }) => {
      if (state !== 'on' && state !== 'off') throw new CliExit(EXIT.usage, `multiall maintenance: expected on or off, got '${state}'`);
      await apiRequest(await resolveTarget(program), 'POST', '/v1/maintenance', { on: state === 'on', ...(o.reason ? { reason: o.reason } : {}) });
      out(`maintenance ${state}`);
    });

  const keys = program.command('keys').description('gossip encryption keyring, cluster-wide');
  keys.command('list').option('--json', 'print JSON').description('keys of the local keyring (fingerprints)').action(async (o: { json?: boolean }) => {
    const r = (await apiRequest(await resolveTarget(program), 'GET', '/v1/keys')) as { primary: string; keys: string[] };
    out(o.json ? JSON.stringify(r) : table(['key', 'primary'], r.keys.map((k) => [k, k === r.primary ? 'yes' : ''])));
  });
  for (const op of ['install', 'use', 'remove'] as const) {
    keys
      .command(op)
      .argument('<key>', 'base64 key (from multiall keygen)')
      .description({ install: 'add a key on every live member (accepted for decryption)', use: 'make a key primary on every live member', remove: 'remove a (non-primary) key on every live member' }[op])
      .action(async (key: string) => {
        let r: { results: { node: string; ok: boolean; error?: string }[] };
        try {
          r = (await apiRequest(await resolveTarget(program), 'POST', '/v1/keys', { op, key })) as typeof r;
        } catch (err) {
          const body = (err as { body?: typeof r }).body;
          if (!body?.results) throw err;
          out(table(['node', 'result'], body.results.map((x) => [x.node, x.ok ? 'ok' : `FAILED: ${x.error}`])));
          throw new CliExit(EXIT.failed, `multiall keys ${op}: failed on some members`);
        }
        out(table(['node', 'result'], r.results.map((x) => [x.node, x.ok ? 'ok' : `FAILED: ${x.error}`])));
      });
  }

  const admin = program.command('admin').description('pool administration keys');
  admin
    .command('keygen')
    .requiredOption('--out <dir>', 'directory for admin.key (secret, 0600) and admin.pub (goes to every node, see admin_keys)')
    .description('create an Ed25519 admin key pair for signing pool definitions')
    .action((o: { out: string }) => {
      const keyPath = join(o.out, 'admin.key');
      if (existsSync(keyPath)) throw new CliExit(EXIT.failed, `multiall admin keygen: ${keyPath} exists; refusing to overwrite`);
      mkdirSync(o.out, { recursive: true, mode: 0o700 });
      const k = generateAdminKey();
      writeFileSync(keyPath, k.privatePem, { mode: 0o600 });
      writeFileSync(join(o.out, 'admin.pub'), k.publicPem, { mode: 0o644 });
      out(`admin key ${k.id}: ${keyPath} (secret), ${join(o.out, 'admin.pub')} (add to admin_keys on every node)`);
    });

  const pools = program.command('pools').description('pool definitions spread by gossip');
  pools.command('show').option('--json', 'print JSON').description('pool definitions in force on the local agent').action(async (o: { json?: boolean }) => {
    const r = (await apiRequest(await resolveTarget(program), 'GET', '/v1/pools')) as { source: string; version: number; signer: string | null; pools: { name: string; members: string[] }[] };
    out(o.json ? JSON.stringify(r, null, 2) : `source: ${r.source}, version ${r.version}${r.signer ? `, signed by ${r.signer}` : ''}\n` + table(['pool', 'members'], r.pools.map((p) => [p.name, p.members.join(',')])));
  });
  pools
    .command('apply')
    .argument('<file>', 'YAML or JSON file with a list of pools (name, members, settings) or {pools: [...]}')
    .requiredOption('--key <file>', 'admin private key (from multiall admin keygen)')
    .option('--version <n>', 'document version (default: one more than the version in force)')
    .description('sign a new pool-definition document and publish it; every member converges on it')
    .action(async (file: string, o: { key: string; version?: string }) => {
      fileMustExist(file, 'pools file');
      fileMustExist(o.key, 'admin key');
      const raw = parseYaml(readFileSync(file, 'utf8')) as unknown;
      const list = Array.isArray(raw) ? raw : (raw as { pools?: unknown } | null)?.pools;
      const parsed = poolSchema.array().safeParse(list);
      if (!parsed.success) {
        throw new CliExit(EXIT.failed, `multiall pools apply: ${file}: ${parsed.error.issues.map((i) => `pools[${i.path.join('].')}: ${i.message}`).join('; ')}`);
      }
      const target = await resolveTarget(program);
      const current = (await apiRequest(target, 'GET', '/v1/pools')) as { version: number };
      const version = o.version ? Number(o.version) : current.version + 1;
      if (!Number.isInteger(version) || version < 1) throw new CliExit(EXIT.usage, `multiall pools apply: --version must be a positive integer, got '${o.version}'`);
      const doc = signDocument({ kind: 'multiall.pools/v1', version, issuedAt: new Date().toISOString(), pools: parsed.data }, readFileSync(o.key, 'utf8'));
      const r = (await apiRequest(target, 'POST', '/v1/pools', { document: doc })) as { accepted: boolean; version: number };
      out(r.accepted ? `published pool definitions version ${r.version}` : `version ${r.version} is already in force`);
    });

  program
    .command('health')
    .option('--pool <pool>', 'only members of this pool')
    .option('--json', 'print JSON')
    .description("this node's checks and every member's health summary")
    .action(async (o: { pool?: string; json?: boolean }) => {
      const r = (await apiRequest(await resolveTarget(program), 'GET', `/v1/health${o.pool ? `?pool=${encodeURIComponent(o.pool)}` : ''}`)) as {
        local: { node: string; status: string; checks: { name: string; status: string; output: string; flapping: boolean }[] } | null;
        members: { name: string; status: string; health: string; pools: string[] }[];
      };
      if (o.json) {
        out(JSON.stringify(r, null, 2));
        return;
      }
      out(table(['member', 'health', 'status', 'pools'], r.members.map((m) => [m.name, m.health, m.status, m.pools.join(',')])));
      if (r.local) {
        out(`\nchecks on ${r.local.node} (${r.local.status}):`);
        out(table(['check', 'status', 'output'], r.local.checks.map((c) => [c.name, c.status + (c.flapping ? ' (flapping)' : ''), c.output.split('\n')[0]?.slice(0, 80)])));
      }
    });

  const failover = program.command('failover').description('master/standby services');
  failover.command('status').option('--json', 'print JSON').description('role, master and term of every service this node takes part in').action(async (o: { json?: boolean }) => {
    const rows = (await apiRequest(await resolveTarget(program), 'GET', '/v1/failover')) as Record<string, unknown>[];
    if (o.json) {
      out(JSON.stringify(rows, null, 2));
      return;
    }
    out(rows.length ? table(['pool', 'service', 'role', 'master', 'term'], rows.map((r) => [String(r.pool), String(r.service), String(r.role), String(r.master ?? '-'), String(r.term)])) : 'no failover services on this node');
  });
  failover
    .command('switch')
    .argument('<service>', 'service name')
    .requiredOption('--to <node>', 'the member that should become master')
    .option('--pool <pool>', 'pool of the service, when several pools have one of that name')
    .description('planned switchover: the master runs master_to_standby, then the target takes over')
    .action(async (service: string, o: { to: string; pool?: string }) => {
      const r = await apiRequest(await resolveTarget(program), 'POST', '/v1/failover/switch', { service, to: o.to, ...(o.pool ? { pool: o.pool } : {}) }, 120_000);
      out(keyValues(r as Record<string, unknown>));
    });
}

interface TreeStatusRow {
  tree: string; pool: string; root: string; paused: string | null; entries: number; conflicts: number;
  files: { pulled: number; copiedLocally: number; deleted: number; metadataOnly: number };
  peers: { peer: string; state: string; behind: number; lastError: string | null }[];
}

export function registerFilesCommands(program: Command): void {
  const files = program.command('files').description('file trees kept in sync across pools');
  files
    .command('status')
    .argument('[tree]', 'only this tree')
    .option('--json', 'print JSON')
    .option('--watch', 'show a progress bar per tree until every peer is in sync (initial syncs, resyncs)')
    .description('per tree and peer: in sync, behind by N files, conflicts, paused')
    .action(async (tree: string | undefined, o: { json?: boolean; watch?: boolean }) => {
      const target = await resolveTarget(program);
      const path = `/v1/files${tree ? `?tree=${encodeURIComponent(tree)}` : ''}`;
      if (o.watch) {
        await watchProgress(async () => (await apiRequest(target, 'GET', path)) as TreeStatusRow[]);
        return;
      }
      const rows = (await apiRequest(target, 'GET', path)) as TreeStatusRow[];
      if (o.json) {
        out(JSON.stringify(rows, null, 2));
        return;
      }
      for (const t of rows) {
        out(`${t.pool}/${t.tree}  ${t.root}  ${t.entries} entries  ${t.conflicts} conflicts${t.paused ? `  PAUSED: ${t.paused}` : ''}`);
        out(table(['peer', 'state', 'behind', 'last error'], t.peers.map((p) => [p.peer, p.state, p.behind, p.lastError ?? ''])));
      }
    });
  files
    .command('conflicts')
    .argument('[tree]', 'only this tree')
    .option('--json', 'print JSON')
    .description('conflict copies made when two members changed the same file concurrently')
    .action(async (tree: string | undefined, o: { json?: boolean }) => {
      const rows = (await apiRequest(await resolveTarget(program), 'GET', `/v1/files/conflicts${tree ? `?tree=${encodeURIComponent(tree)}` : ''}`)) as { tree: string; path: string; copy: string; winner: string; loser: string; at: number }[];
      out(o.json ? JSON.stringify(rows, null, 2) : table(['time', 'tree', 'path', 'conflict copy', 'winner', 'loser'], rows.map((r) => [new Date(r.at).toISOString(), r.tree, r.path, r.copy, r.winner, r.loser])));
    });
  files
    .command('resync')
    .argument('<tree>', 'tree name')
    .description('clear a pause (accepting a held mass delete), re-verify every hash and catch up with all peers')
    .action(async (tree: string) => {
      await apiRequest(await resolveTarget(program), 'POST', '/v1/files/resync', { tree }, 600_000);
      out(`resync of ${tree} done`);
    });
}

/** Redraws one progress line per tree (files applied vs still behind) until all peers are in sync. */
async function watchProgress(poll: () => Promise<TreeStatusRow[]>): Promise<void> {
  const tty = process.stdout.isTTY === true;
  let drawn = 0;
  for (;;) {
    const rows = await poll();
    const lines = rows.map((t) => {
      const done = t.files.pulled + t.files.copiedLocally + t.files.deleted + t.files.metadataOnly;
      const behind = t.peers.reduce((n, p) => n + p.behind, 0);
      const total = done + behind;
      const frac = total === 0 ? 1 : done / total;
      const width = 30;
      const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
      const state = t.paused ? `PAUSED: ${t.paused}` : t.peers.every((p) => p.state === 'in-sync') ? 'in sync' : `${behind} behind`;
      return `${t.tree.padEnd(16)} [${bar}] ${String(Math.round(frac * 100)).padStart(3)}%  ${done}/${total} files  ${state}`;
    });
    if (tty && drawn > 0) process.stdout.write(`\x1b[${drawn}A`);
    process.stdout.write(lines.map((l) => `${l}\x1b[K`).join('\n') + '\n');
    drawn = lines.length;
    if (rows.every((t) => t.paused !== null || t.peers.every((p) => p.state === 'in-sync'))) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}
