/**
 * The agent's own API endpoints (components add theirs next to their code):
 *   GET  /v1/status            read      node, version, listeners, pools, certificate
 *   GET  /v1/config/effective  read      aggregated settings with sources and conflicts
 *   POST /v1/reload            operator  validate and apply the config file (like SIGHUP)
 *   POST /v1/peers/ping        operator  mTLS RPC round trip to {name, host, port}
 *   GET  /v1/history           read      recent entries of the local history
 *   GET  /v1/events            read      live event stream, one JSON object per line
 *   GET  /metrics              read      Prometheus text format
 */
import { z } from 'zod';
import type { Agent } from './agent.ts';

const pingBody = z.strictObject({
  name: z.string().min(1).max(63),
  host: z.string().min(1).max(255),
  port: z.number().int().min(1).max(65535),
  timeoutMs: z.number().int().min(1).max(60_000).optional(),
});

const historyQuery = z.strictObject({
  component: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
});

/** Parses with zod and turns failures into a 400 that names the offending field. */
export function parseBody<T>(schema: z.ZodType<T>, input: unknown): T {
  const r = schema.safeParse(input ?? {});
  if (r.success) return r.data;
  const msg = r.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
  throw Object.assign(new Error(msg), { statusCode: 400 });
}

export function registerCoreRoutes(agent: Agent): void {
  agent.api.addRoutes((app) => {
    app.get('/v1/status', { config: { role: 'read' } }, async () => agent.status());
    app.get('/v1/config/effective', { config: { role: 'read' } }, async () => agent.effective);
    app.post('/v1/reload', { config: { role: 'operator' } }, async (_req, reply) => {
      const r = await agent.reload();
      return reply.code(r.ok ? 200 : 422).send(r);
    });
    app.post('/v1/peers/ping', { config: { role: 'operator' } }, async (req, reply) => {
      const body = parseBody(pingBody, req.body);
      try {
        return await agent.pingPeer(body, body.timeoutMs);
      } catch (err) {
        return reply.code(502).send({ error: 'peer_unreachable', message: (err as Error).message });
      }
    });
    app.get('/v1/history', { config: { role: 'read' } }, async (req) => {
      const q = parseBody(historyQuery, req.query);
      return agent.store.history(q);
    });
    app.get('/metrics', { config: { role: 'read' } }, async (_req, reply) => {
      const text = await agent.metrics.registry.metrics();
      return reply.header('content-type', agent.metrics.registry.contentType).send(text);
    });
    app.get('/v1/events', { config: { role: 'read' } }, (req, reply) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      res.write(JSON.stringify({ kind: 'stream.open', at: Date.now(), data: { node: agent.config.node.name } }) + '\n');
      const off = agent.bus.onAny((ev) => {
        // A client that does not read is dropped rather than buffered without bound.
        if (res.writableLength > 1024 * 1024) {
          res.destroy();
          return;
        }
        res.write(JSON.stringify(ev) + '\n');
      });
      const close = () => off();
      req.raw.on('close', close);
      res.on('close', close);
    });
  });
}
