/**
 * The local API: the agent's control surface for the CLI, scripts and the dashboard.
 *
 * - Unix socket (mode 0600, owner only): full operator access; file permissions are the auth.
 * - Optional TCP listener: every request needs `Authorization: Bearer <secret>`; tokens have a
 *   role, `read` (GET only) or `operator` (everything). Only sha256 hashes of secrets are held.
 * - GET /healthz needs no token (for load balancers and probes) and says only up/down.
 *
 * Components add their endpoints with `addRoutes(fn)` before `start()`; each route states the
 * role it needs in `config.role`. Public interface: LocalApi. Depends on fastify, security/tokens.
 */
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyReply } from 'fastify';
import { chmodSync, existsSync, lstatSync, unlinkSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../log/logger.ts';
import type { ApiToken, TokenRole } from '../config/types.ts';
import { verifyToken } from '../security/tokens.ts';

export type RouteRole = TokenRole | 'none';

declare module 'fastify' {
  interface FastifyContextConfig {
    role?: RouteRole;
  }
  interface FastifyRequest {
    /** Who is calling: 'socket' for the Unix socket, else the token's name. */
    caller?: string;
  }
}

export type RouteRegistrar = (app: FastifyInstance) => void;

export interface LocalApiOptions {
  socketPath: string;
  tcp?: { host: string; port: number };
  tokens: ApiToken[];
  logger: Logger;
}

const ROLE_RANK: Record<RouteRole, number> = { none: 0, read: 1, operator: 2 };

export class LocalApi {
  readonly #opts: LocalApiOptions;
  #tokens: ApiToken[];
  readonly #registrars: RouteRegistrar[] = [];
  #socketApp?: FastifyInstance;
  #tcpApp?: FastifyInstance;
  #tcpAddress?: { host: string; port: number };

  constructor(opts: LocalApiOptions) {
    this.#opts = opts;
    this.#tokens = opts.tokens;
  }

  addRoutes(fn: RouteRegistrar): void {
    this.#registrars.push(fn);
  }

  /** Token changes take effect at once (config reload). */
  setTokens(tokens: ApiToken[]): void {
    this.#tokens = tokens;
  }

  get tcpAddress(): { host: string; port: number } | undefined {
    return this.#tcpAddress;
  }

  #build(viaSocket: boolean): FastifyInstance {
    const app = Fastify({
      logger: false,
      bodyLimit: 4 * 1024 * 1024,
      // The API is local; these bound what a slow or hostile client can hold open.
      requestTimeout: 30_000,
      connectionTimeout: 0,
    });
    app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
      const need: RouteRole = (req.routeOptions.config as { role?: RouteRole }).role ?? 'operator';
      if (viaSocket) {
        req.caller = 'socket';
        return;
      }
      if (need === 'none') return;
      const header = req.headers.authorization ?? '';
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      const token = m?.[1] ? verifyToken(m[1], this.#tokens) : undefined;
      if (!token) {
        this.#opts.logger.warn({ remote: req.ip, url: req.url }, 'api: request without a valid token refused');
        return reply.code(401).send({ error: 'unauthorized', message: 'a valid bearer token is required' });
      }
      if (ROLE_RANK[token.role] < ROLE_RANK[need]) {
        return reply.code(403).send({ error: 'forbidden', message: `token '${token.name}' has role ${token.role}; this needs ${need}` });
      }
      req.caller = token.name;
    });
    app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, req, reply) => {
      const code = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
      if (code === 500) this.#opts.logger.error({ err, url: req.url }, 'api: handler failed');
      void reply.code(code).send({ error: code === 500 ? 'internal' : 'bad_request', message: err.message });
    });
    app.setNotFoundHandler((req, reply) => {
      void reply.code(404).send({ error: 'not_found', message: `no such endpoint: ${req.method} ${req.url}` });
    });
    app.get('/healthz', { config: { role: 'none' } }, async () => ({ status: 'up' }));
    for (const r of this.#registrars) r(app);
    return app;
  }

  async start(): Promise<void> {
    const socketPath = this.#opts.socketPath;
    mkdirSync(dirname(socketPath), { recursive: true, mode: 0o700 });
    if (existsSync(socketPath)) {
      // Only a leftover socket from a dead agent is removed; the state-dir lock guarantees no
      // live agent owns it.
      if (!lstatSync(socketPath).isSocket()) throw new Error(`api socket path ${socketPath} exists and is not a socket`);
      unlinkSync(socketPath);
    }
    this.#socketApp = this.#build(true);
    const oldUmask = process.umask(0o177);
    try {
      await this.#socketApp.listen({ path: socketPath });
    } finally {
      process.umask(oldUmask);
    }
    chmodSync(socketPath, 0o600);
    if (this.#opts.tcp) {
      this.#tcpApp = this.#build(false);
      await this.#tcpApp.listen({ host: this.#opts.tcp.host, port: this.#opts.tcp.port });
      const addr = this.#tcpApp.server.address();
      if (addr && typeof addr === 'object') this.#tcpAddress = { host: addr.address, port: addr.port };
    }
  }

  async stop(): Promise<void> {
    await Promise.all([this.#socketApp?.close(), this.#tcpApp?.close()]);
  }
}
