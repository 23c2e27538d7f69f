/**
 * How the CLI reaches a running agent's local API: the Unix socket (from --socket, or the
 * config file's api.socket) or TCP with a bearer token (--api URL --token / MULTIALL_TOKEN).
 */
import { request, type RequestOptions } from 'node:http';

export interface ApiTarget {
  socketPath?: string;
  url?: string;
  token?: string;
}

export class ApiUnreachableError extends Error {}

export class ApiError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    const msg = typeof body === 'object' && body !== null && 'message' in body ? String((body as { message: unknown }).message) : JSON.stringify(body);
    super(`agent answered ${status}: ${msg}`);
    this.status = status;
    this.body = body;
  }
}

/** Socket or TCP target, bearer token when given. */
function requestOptions(target: ApiTarget, method: string, path: string, headers: Record<string, string>): RequestOptions {
  const h = target.token ? { ...headers, authorization: `Bearer ${target.token}` } : headers;
  if (!target.url) return { socketPath: target.socketPath, path, method, headers: h };
  const u = new URL(path, target.url);
  return { hostname: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h };
}

/** Sends one request; resolves with the parsed JSON (or text) body of a 2xx answer. */
export function apiRequest(target: ApiTarget, method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = {};
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const req = request(requestOptions(target, method, path, headers), (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        if ((res.headers['content-type'] ?? '').includes('json')) {
          try {
            parsed = JSON.parse(text);
          } catch {
            // leave as text
          }
        }
        if ((res.statusCode ?? 500) >= 300) reject(new ApiError(res.statusCode ?? 500, parsed));
        else resolve(parsed);
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from the agent within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const where = target.url ?? target.socketPath;
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'EACCES') {
        reject(new ApiUnreachableError(`cannot reach the agent at ${where}: ${err.code} (is it running? is this the right --config/--socket?)`));
      } else reject(err);
    });
    if (payload) req.write(payload);
    req.end();
  });
}

/**
 * Streams NDJSON lines from a GET endpoint until the connection closes (or `opts.signal` aborts
 * it: then it resolves). `opts.onOpen` runs once the agent has accepted the stream.
 */
export function apiStream(target: ApiTarget, path: string, onLine: (obj: unknown) => void, opts: { signal?: AbortSignal; onOpen?: () => void } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ ...requestOptions(target, 'GET', path, {}), signal: opts.signal }, (res) => {
      if ((res.statusCode ?? 500) >= 300) {
        reject(new ApiError(res.statusCode ?? 500, `events stream refused`));
        return;
      }
      opts.onOpen?.();
      res.on('error', () => resolve()); // aborted by the caller
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.trim()) onLine(JSON.parse(line));
        }
      });
      res.on('end', () => resolve());
    });
    req.on('error', (err) => (opts.signal?.aborted ? resolve() : reject(new ApiUnreachableError(`cannot reach the agent: ${err.message}`))));
    req.end();
  });
}
