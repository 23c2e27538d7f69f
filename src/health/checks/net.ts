/**
 * Network checks: tcp connect, http(s) request, dns query against a given server. Each one
 * measures latency, reports an unreachable target as `failed` (with the system error), and
 * tears its socket down when the runner aborts it.
 */
import { Resolver } from 'node:dns/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import type { Check, Observation } from '../types.ts';
import { formatDuration } from '../units.ts';

function errText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code ? `${err.code}${err.message && !err.message.includes(err.code) ? ` (${err.message})` : ''}` : String(err.message ?? e);
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}

export class TcpCheck implements Check {
  readonly #host: string;
  readonly #port: number;

  constructor(host: string, port: number) {
    this.#host = host;
    this.#port = port;
  }

  run(signal: AbortSignal): Promise<Observation> {
    const where = `${this.#host}:${this.#port}`;
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const sock = connect({ host: this.#host, port: this.#port });
      const onAbort = (): void => { sock.destroy(); reject(abortError(signal)); };
      signal.addEventListener('abort', onAbort, { once: true });
      const done = (o: Observation): void => { signal.removeEventListener('abort', onAbort); sock.destroy(); resolve(o); };
      sock.once('connect', () => {
        const latency = performance.now() - t0;
        done({ values: { latency }, output: `tcp ${where} connected in ${formatDuration(latency)}` });
      });
      sock.once('error', (e) => done({ values: {}, output: `tcp ${where}: ${errText(e)}`, failed: errText(e) }));
    });
  }
}

/** Body bytes kept for `body ~ "regex"`; health endpoints are small, a runaway one must not eat memory. */
export const HTTP_BODY_LIMIT = 64 * 1024;

export class HttpCheck implements Check {
  readonly #url: URL;
  readonly #method: string;

  constructor(url: string, method = 'GET') {
    this.#url = new URL(url);
    this.#method = method;
  }

  run(signal: AbortSignal): Promise<Observation> {
    const url = this.#url;
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      // Redirects are not followed: the status of the endpoint itself is what the rule is about.
      // agent:false = a fresh connection per check, so a dead keep-alive socket cannot mask an outage.
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, {
        method: this.#method, agent: false, signal, headers: { 'user-agent': 'multiall-health', connection: 'close' },
      });
      const fail = (e: unknown): void => {
        if (signal.aborted) { reject(abortError(signal)); return; }
        resolve({ values: {}, output: `${this.#method} ${url.href}: ${errText(e)}`, failed: errText(e) });
      };
      req.once('error', fail);
      req.once('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          if (size < HTTP_BODY_LIMIT) chunks.push(c.subarray(0, HTTP_BODY_LIMIT - size));
          size += c.length;
        });
        res.once('error', fail);
        res.once('end', () => {
          const latency = performance.now() - t0;
          const status = res.statusCode ?? 0;
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({
            values: { status, body, latency },
            output: `${this.#method} ${url.href}: ${status} ${res.statusMessage ?? ''} in ${formatDuration(latency)}, ${size} bytes`.replace('  ', ' '),
          });
        });
      });
      req.end();
    });
  }
}

export class DnsCheck implements Check {
  readonly #name: string;
  readonly #server: string;
  readonly #type: string;
  readonly #timeoutMs: number;

  constructor(name: string, server: string, port: number, type: string, timeoutMs: number) {
    this.#name = name;
    this.#server = server.includes(':') ? `[${server}]:${port}` : `${server}:${port}`;
    this.#type = type;
    this.#timeoutMs = timeoutMs;
  }

  async run(signal: AbortSignal): Promise<Observation> {
    // One try: a retry would only hide a slow server, and the runner's timeout bounds the whole run.
    const r = new Resolver({ timeout: Math.max(1, this.#timeoutMs), tries: 1 });
    r.setServers([this.#server]);
    const onAbort = (): void => r.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    const q = `${this.#name} ${this.#type} @${this.#server}`;
    const t0 = performance.now();
    try {
      const res: unknown = await r.resolve(this.#name, this.#type);
      const answers: unknown[] = Array.isArray(res) ? res : [res]; // SOA is a single object
      const latency = performance.now() - t0;
      const shown = answers.slice(0, 5).map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(', ');
      return { values: { latency, answers: answers.length }, output: `dns ${q}: ${answers.length} answer(s) in ${formatDuration(latency)}: ${shown}` };
    } catch (e) {
      if (signal.aborted) throw abortError(signal);
      // ENOTFOUND = NXDOMAIN, ENODATA = no record of this type, ESERVFAIL, ETIMEOUT, ECONNREFUSED …
      return { values: {}, output: `dns ${q}: ${errText(e)}`, failed: errText(e) };
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}
