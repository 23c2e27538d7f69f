/**
 * API endpoints of the cluster-facing components:
 *   GET  /v1/members?pool=&network=   read      members with status, pools, network, health
 *   POST /v1/join {addresses}         operator  join through any of these gossip addresses
 *   POST /v1/leave                    operator  leave the cluster gracefully and stop the agent
 *   POST /v1/maintenance {on,reason}  operator  planned downtime: known but intentionally out
 *   GET  /v1/keys                     read      gossip keyring (fingerprints only)
 *   POST /v1/keys {op,key}            operator  install | use | remove a key on every live member
 *   GET  /v1/pools                    read      pool definitions in force and their source
 *   POST /v1/pools {document}         operator  publish a signed pool-definition document
 *   GET  /v1/health?pool=             read      this node's checks + every member's summary
 *   GET  /v1/failover                 read      every service's role, master and term here
 *   POST /v1/failover/switch          operator  planned switchover {pool?, service, to}
 *   GET  /v1/files?tree=              read      per tree and peer: in sync / behind / paused
 *   GET  /v1/files/conflicts?tree=    read      conflict copies made
 *   POST /v1/files/resync {tree}      operator  clear a pause, re-verify, full catch-up
 *   GET  /v1/rtt?a=&b=                read      estimated RTT between two members (b: this node), Vivaldi
 *   GET  /v1/nearest?n=&pool=         read      the n live members nearest to this node
 *   GET  /v1/route?peer=              read      direct, or the relay a call to peer goes through
 *   POST /v1/messages {topic, data}   operator  gossip an application message to every member (event member.message)
 */
import { z } from 'zod';
import type { Agent } from './agent.ts';
import type { ClusterServices } from './cluster.ts';
import { parseBody } from './routes.ts';
import { UserMessageError } from '../membership/memberlist.ts';

const joinBody = z.strictObject({ addresses: z.array(z.string().min(1).max(300)).min(1).max(100) });
const maintBody = z.strictObject({ on: z.boolean(), reason: z.string().max(200).optional() });
const keysBody = z.strictObject({ op: z.enum(['install', 'use', 'remove']), key: z.string().min(1).max(100) });
const poolsBody = z.strictObject({ document: z.unknown() });
const membersQuery = z.strictObject({ pool: z.string().max(63).optional(), network: z.string().max(63).optional() });
const treeQuery = z.strictObject({ tree: z.string().min(1).max(128).optional() });
const resyncBody = z.strictObject({ tree: z.string().min(1).max(128) });
const rttQuery = z.strictObject({ a: z.string().min(1).max(253), b: z.string().min(1).max(253).optional() });
const nearestQuery = z.strictObject({ n: z.coerce.number().int().min(1).max(10_000).optional(), pool: z.string().max(63).optional() });
const messageBody = z.strictObject({ topic: z.string().min(1).max(64), data: z.unknown() });
const routeQuery = z.strictObject({ peer: z.string().min(1).max(253) });
const switchBody = z.strictObject({ pool: z.string().max(63).optional(), service: z.string().min(1).max(63), to: z.string().min(1).max(63) });

export function registerClusterRoutes(agent: Agent, cluster: ClusterServices): void {
  agent.rpc.handle('health.summary', async () => agent.health?.summary() ?? null);
  agent.api.addRoutes((app) => {
    app.get('/v1/members', { config: { role: 'read' } }, async (req) => cluster.members(parseBody(membersQuery, req.query)));
    app.post('/v1/messages', { config: { role: 'operator' } }, async (req, reply) => {
      const { topic, data } = parseBody(messageBody, req.body);
      try {
        cluster.memberlist.sendUserMessage(topic, data);
        return { sent: true };
      } catch (err) {
        if (!(err instanceof UserMessageError)) throw err;
        return reply.code(400).send({ error: 'bad_message', message: err.message });
      }
    });
    app.post('/v1/join', { config: { role: 'operator' } }, async (req, reply) => {
      const { addresses } = parseBody(joinBody, req.body);
      try {
        return { reached: await cluster.join(addresses) };
      } catch (err) {
        return reply.code(502).send({ error: 'join_failed', message: (err as Error).message });
      }
    });
    app.post('/v1/leave', { config: { role: 'operator' } }, async () => {
      // Answer first, then leave and stop: the caller should not wait for the whole shutdown.
      setImmediate(() => void agent.stop('leave requested through the API', { leave: true }));
      return { leaving: true };
    });
    app.post('/v1/maintenance', { config: { role: 'operator' } }, async (req) => {
      const { on, reason } = parseBody(maintBody, req.body);
      cluster.memberlist.setMaintenance(on, reason ?? '');
      agent.health?.setMaintenance(on, reason);
      agent.store.appendHistory('membership', on ? 'maintenance_on' : 'maintenance_off', { reason: reason ?? '' });
      return { maintenance: on, reason: reason ?? '' };
    });
    app.get('/v1/keys', { config: { role: 'read' } }, async () => cluster.keyringList());
    app.post('/v1/keys', { config: { role: 'operator' } }, async (req, reply) => {
      const { op, key } = parseBody(keysBody, req.body);
      const results = await cluster.keysOp(op, key);
      return reply.code(results.every((r) => r.ok) ? 200 : 502).send({ op, results });
    });
    app.get('/v1/pools', { config: { role: 'read' } }, async () => {
      const doc = cluster.pooldefs.current();
      return { source: doc ? 'signed-document' : 'config-file', version: doc?.version ?? 0, signer: doc?.signer ?? null, pools: agent.pools() };
    });
    app.post('/v1/pools', { config: { role: 'operator' } }, async (req, reply) => {
      const { document } = parseBody(poolsBody, req.body);
      const r = cluster.applyPools(document);
      if (!r.accepted && r.reason !== 'already current') return reply.code(422).send({ error: 'refused', message: r.reason ?? 'refused' });
      return { accepted: r.accepted, version: r.current?.version ?? 0 };
    });
    app.get('/v1/health', { config: { role: 'read' } }, async (req) => {
      const { pool } = parseBody(membersQuery, req.query);
      return { local: agent.health?.summary() ?? null, members: cluster.members(pool ? { pool } : {}).map((m) => ({ name: m.name, status: m.status, health: m.health, pools: m.pools })) };
    });
    app.get('/v1/rtt', { config: { role: 'read' } }, async (req) => {
      const { a, b } = parseBody(rttQuery, req.query);
      return cluster.rtt(a, b);
    });
    app.get('/v1/nearest', { config: { role: 'read' } }, async (req) => {
      const { n, pool } = parseBody(nearestQuery, req.query);
      return cluster.nearest(n ?? 5, pool);
    });
    app.get('/v1/route', { config: { role: 'read' } }, async (req, reply) => {
      const { peer } = parseBody(routeQuery, req.query);
      try {
        return { peer, ...cluster.route(peer) };
      } catch (err) {
        return reply.code(404).send({ error: 'no_route', message: (err as Error).message });
      }
    });
    app.get('/v1/failover', { config: { role: 'read' } }, async () =>
      [...agent.failovers.values()].flatMap((f) => f.status()),
    );
    const files = () => {
      if (!agent.files) throw Object.assign(new Error('no file trees are configured for this node'), { statusCode: 404 });
      return agent.files;
    };
    app.get('/v1/files', { config: { role: 'read' } }, async (req) => {
      const { tree } = parseBody(treeQuery, req.query);
      return files().status(tree);
    });
    app.get('/v1/files/conflicts', { config: { role: 'read' } }, async (req) => {
      const { tree } = parseBody(treeQuery, req.query);
      return files().conflicts(tree);
    });
    app.post('/v1/files/resync', { config: { role: 'operator' } }, async (req) => {
      const { tree } = parseBody(resyncBody, req.body);
      await files().resync(tree);
      return { resynced: tree };
    });
    app.post('/v1/failover/switch', { config: { role: 'operator' } }, async (req, reply) => {
      const { pool, service, to } = parseBody(switchBody, req.body);
      const candidates = [...agent.failovers.entries()].filter(([p, f]) => (!pool || p === pool) && f.status().some((s) => s.service === service));
      const only = candidates[0];
      if (!only) return reply.code(404).send({ error: 'not_found', message: `no failover service ${service}${pool ? ` in pool ${pool}` : ''} on this node` });
      if (candidates.length > 1) return reply.code(400).send({ error: 'ambiguous', message: `service ${service} exists in pools ${candidates.map(([p]) => p).join(', ')}: give --pool` });
      try {
        return await only[1].switchTo(service, to);
      } catch (err) {
        return reply.code(409).send({ error: 'switch_failed', message: (err as Error).message });
      }
    });
  });
}
