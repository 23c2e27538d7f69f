/**
 * Protocol-level connect probes for PostgreSQL and MySQL/MariaDB, without a client library.
 * They prove that the server accepts connections and speaks its protocol; they do not log in
 * (authenticated checks, e.g. running a query, need the pg / mysql2 clients).
 *
 * PostgreSQL: send a v3 StartupMessage (user, database) and read the first reply. An
 *   authentication request ('R') means the server is accepting connections; an ErrorResponse
 *   ('E') of class 53 (insufficient resources, e.g. too many connections) or 57 (starting up,
 *   shutting down) means it is not; any other error (bad password, no pg_hba entry, unknown
 *   database) still proves a live server and is reported in the output. Then Terminate ('X').
 * MySQL: read the server greeting (protocol 10). An ERR packet instead (1040 too many
 *   connections, 1129 host blocked) fails. After a greeting we answer with a HandshakeResponse41
 *   carrying only a user name and wait for the server's verdict before COM_QUIT: closing right
 *   after the greeting would count as a handshake error and, after max_connect_errors of them,
 *   make the server block this host.
 *
 * The decoders are pure functions over the bytes received so far (fuzzed in the tests).
 */
import { connect, type Socket } from 'node:net';
import type { Check, Observation } from '../types.ts';
import { formatDuration } from '../units.ts';

const MAX_MESSAGE = 64 * 1024;

export type Decoded<T> = { need: true } | { need: false; value: T; used: number } | { need: false; invalid: string };

// ---------------------------------------------------------------------------------------------
// PostgreSQL

export type PgReply =
  | { type: 'auth'; code: number }
  | { type: 'error'; fields: Record<string, string> }
  | { type: 'other'; tag: string };

export function pgStartupMessage(user: string, database: string): Buffer {
  const body = Buffer.from(`user\0${user}\0database\0${database}\0application_name\0multiall-health\0\0`, 'utf8');
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(196608, 4); // protocol 3.0
  return Buffer.concat([head, body]);
}

export function decodePgReply(buf: Buffer): Decoded<PgReply> {
  if (buf.length < 5) return { need: true };
  const tag = String.fromCharCode(buf[0] as number);
  const len = buf.readInt32BE(1);
  if (!'RENSKZ'.includes(tag)) return { need: false, invalid: `not a PostgreSQL server (first byte 0x${(buf[0] as number).toString(16)})` };
  if (len < 4 || len > MAX_MESSAGE) return { need: false, invalid: `invalid PostgreSQL message length ${len}` };
  if (buf.length < 1 + len) return { need: true };
  const body = buf.subarray(5, 1 + len);
  if (tag === 'R') {
    if (body.length < 4) return { need: false, invalid: 'short authentication request' };
    return { need: false, value: { type: 'auth', code: body.readInt32BE(0) }, used: 1 + len };
  }
  if (tag === 'E') {
    const fields: Record<string, string> = {};
    let i = 0;
    while (i < body.length && body[i] !== 0) {
      const key = String.fromCharCode(body[i] as number);
      const end = body.indexOf(0, i + 1);
      if (end < 0) return { need: false, invalid: 'unterminated error field' };
      fields[key] = body.subarray(i + 1, end).toString('utf8');
      i = end + 1;
    }
    return { need: false, value: { type: 'error', fields }, used: 1 + len };
  }
  return { need: false, value: { type: 'other', tag }, used: 1 + len };
}

const PG_AUTH: Record<number, string> = { 0: 'trust', 2: 'kerberos', 3: 'password', 5: 'md5', 7: 'gss', 9: 'sspi', 10: 'sasl/scram' };

// ---------------------------------------------------------------------------------------------
// MySQL

export type MyPacket =
  | { type: 'greeting'; protocol: number; version: string; connectionId: number; capabilities: number }
  | { type: 'error'; code: number; sqlState: string; message: string }
  | { type: 'other'; first: number };

export function decodeMysqlPacket(buf: Buffer, greeting: boolean): Decoded<MyPacket> {
  if (buf.length < 4) return { need: true };
  const len = buf.readUIntLE(0, 3);
  if (len > MAX_MESSAGE) return { need: false, invalid: `MySQL packet too large (${len} bytes)` };
  if (buf.length < 4 + len) return { need: true };
  const p = buf.subarray(4, 4 + len);
  const used = 4 + len;
  if (len === 0) return { need: false, invalid: 'empty MySQL packet' };
  const first = p[0] as number;
  if (first === 0xff) {
    if (p.length < 3) return { need: false, invalid: 'short MySQL error packet' };
    const code = p.readUInt16LE(1);
    const hasState = p[3] === 0x23; // '#'
    const sqlState = hasState ? p.subarray(4, 9).toString('latin1') : '';
    return { need: false, value: { type: 'error', code, sqlState, message: p.subarray(hasState ? 9 : 3).toString('utf8') }, used };
  }
  if (!greeting) return { need: false, value: { type: 'other', first }, used };
  if (first !== 10) return { need: false, invalid: `not a MySQL protocol 10 greeting (first byte ${first})` };
  const nul = p.indexOf(0, 1);
  if (nul < 0 || nul + 1 + 4 + 8 + 1 + 2 > p.length) return { need: false, invalid: 'truncated MySQL greeting' };
  const version = p.subarray(1, nul).toString('latin1');
  const connectionId = p.readUInt32LE(nul + 1);
  const capabilities = p.readUInt16LE(nul + 1 + 4 + 8 + 1);
  return { need: false, value: { type: 'greeting', protocol: 10, version, connectionId, capabilities }, used };
}

const CLIENT_LONG_PASSWORD = 0x1;
const CLIENT_PROTOCOL_41 = 0x200;
const CLIENT_SECURE_CONNECTION = 0x8000;

export function mysqlHandshakeResponse(user: string): Buffer {
  const userBytes = Buffer.from(`${user}\0`, 'utf8');
  const p = Buffer.alloc(4 + 4 + 1 + 23 + userBytes.length + 1);
  p.writeUInt32LE(CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION, 0);
  p.writeUInt32LE(0x01000000, 4); // max packet size
  p[8] = 45; // utf8mb4_general_ci
  userBytes.copy(p, 32);
  p[32 + userBytes.length] = 0; // empty auth response
  return frameMysql(p, 1);
}

function frameMysql(payload: Buffer, seq: number): Buffer {
  const h = Buffer.alloc(4);
  h.writeUIntLE(payload.length, 0, 3);
  h[3] = seq;
  return Buffer.concat([h, payload]);
}

export const MYSQL_COM_QUIT = frameMysql(Buffer.from([0x01]), 0);

// ---------------------------------------------------------------------------------------------
// Socket plumbing shared by both probes.

class Conversation {
  readonly sock: Socket;
  #buf = Buffer.alloc(0);
  #waiter: (() => void) | undefined;
  #ended: string | undefined;

  constructor(sock: Socket) {
    this.sock = sock;
    sock.on('data', (c: Buffer) => { this.#buf = Buffer.concat([this.#buf, c]); this.#waiter?.(); });
    sock.on('error', (e: NodeJS.ErrnoException) => { this.#ended ??= e.code ?? e.message; this.#waiter?.(); });
    sock.on('close', () => { this.#ended ??= 'connection closed by server'; this.#waiter?.(); });
  }

  /** Next decoded message, or a string saying why there is none. */
  async read<T>(decode: (b: Buffer) => Decoded<T>): Promise<T | { problem: string }> {
    for (;;) {
      const d = decode(this.#buf);
      if (!d.need) {
        if ('invalid' in d) return { problem: d.invalid };
        this.#buf = this.#buf.subarray(d.used);
        return d.value;
      }
      if (this.#ended !== undefined) return { problem: this.#ended };
      await new Promise<void>((r) => { this.#waiter = r; });
      this.#waiter = undefined;
    }
  }
}

function open(host: string, port: number, signal: AbortSignal): Promise<{ conv: Conversation; t0: number } | { problem: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const sock = connect({ host, port });
    signal.addEventListener('abort', () => { sock.destroy(); reject(signal.reason instanceof Error ? signal.reason : new Error('aborted')); }, { once: true });
    sock.once('connect', () => { sock.removeAllListeners('error'); resolve({ conv: new Conversation(sock), t0 }); });
    sock.once('error', (e: NodeJS.ErrnoException) => resolve({ problem: e.code ?? e.message }));
  });
}

function isProblem(v: unknown): v is { problem: string } {
  return typeof v === 'object' && v !== null && 'problem' in v;
}

export class PostgresCheck implements Check {
  readonly #host: string;
  readonly #port: number;
  readonly #user: string;
  readonly #database: string;

  constructor(host: string, port: number, user: string, database: string) {
    this.#host = host;
    this.#port = port;
    this.#user = user;
    this.#database = database;
  }

  async run(signal: AbortSignal): Promise<Observation> {
    const where = `postgres ${this.#host}:${this.#port}`;
    const o = await open(this.#host, this.#port, signal);
    if (isProblem(o)) return { values: {}, output: `${where}: ${o.problem}`, failed: o.problem };
    const { conv, t0 } = o;
    try {
      conv.sock.write(pgStartupMessage(this.#user, this.#database));
      let r = await conv.read(decodePgReply);
      const latency = performance.now() - t0;
      // Trust auth (AuthenticationOk) is followed by the backend start: read on to ReadyForQuery
      // ('Z') or an error such as an unknown database, so the output tells the whole story.
      // A server that streams forever is cut off by the runner's timeout.
      if (!isProblem(r) && r.type === 'auth' && r.code === 0) {
        for (;;) {
          const next = await conv.read(decodePgReply);
          if (isProblem(next) || (next.type === 'other' && next.tag === 'Z')) break;
          if (next.type === 'error') { r = next; break; }
        }
      }
      if (isProblem(r)) return { values: {}, output: `${where}: ${r.problem}`, failed: r.problem };
      if (r.type === 'auth') {
        return { values: { latency }, output: `${where}: accepting connections (auth ${PG_AUTH[r.code] ?? r.code}) in ${formatDuration(latency)}` };
      }
      if (r.type === 'error') {
        const code = r.fields.C ?? '';
        const msg = `${r.fields.S ?? 'ERROR'} ${code}: ${r.fields.M ?? ''}`;
        // 53xxx insufficient resources, 57xxx operator intervention (starting up, shutting down).
        if (code.startsWith('53') || code.startsWith('57')) return { values: {}, output: `${where}: ${msg}`, failed: msg };
        return { values: { latency }, output: `${where}: server answered in ${formatDuration(latency)} (${msg})` };
      }
      return { values: {}, output: `${where}: unexpected '${r.tag}' message before authentication`, failed: `unexpected '${r.tag}' message` };
    } finally {
      conv.sock.end(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
      conv.sock.destroySoon();
    }
  }
}

export class MysqlCheck implements Check {
  readonly #host: string;
  readonly #port: number;
  readonly #user: string;

  constructor(host: string, port: number, user = 'multiall_probe') {
    this.#host = host;
    this.#port = port;
    this.#user = user;
  }

  async run(signal: AbortSignal): Promise<Observation> {
    const where = `mysql ${this.#host}:${this.#port}`;
    const o = await open(this.#host, this.#port, signal);
    if (isProblem(o)) return { values: {}, output: `${where}: ${o.problem}`, failed: o.problem };
    const { conv, t0 } = o;
    try {
      const g = await conv.read((b) => decodeMysqlPacket(b, true));
      const latency = performance.now() - t0;
      if (isProblem(g)) return { values: {}, output: `${where}: ${g.problem}`, failed: g.problem };
      if (g.type === 'error') {
        const msg = `error ${g.code}${g.sqlState ? ` (${g.sqlState})` : ''}: ${g.message}`;
        return { values: {}, output: `${where}: ${msg}`, failed: msg };
      }
      if (g.type !== 'greeting') return { values: {}, output: `${where}: no greeting`, failed: 'no greeting' };
      let verdict = '';
      if (g.capabilities & CLIENT_PROTOCOL_41) {
        conv.sock.write(mysqlHandshakeResponse(this.#user));
        const r = await conv.read((b) => decodeMysqlPacket(b, false));
        verdict = isProblem(r) ? `; ${r.problem} after login attempt`
          : r.type === 'error' ? `; login as ${this.#user}: ${r.code} ${r.message}`
            : r.type === 'other' ? `; login reply 0x${r.first.toString(16)}` : '';
      }
      return { values: { latency }, output: `${where}: ${g.version} greeting (connection ${g.connectionId}) in ${formatDuration(latency)}${verdict}` };
    } finally {
      if (!conv.sock.destroyed) conv.sock.end(MYSQL_COM_QUIT);
      conv.sock.destroySoon();
    }
  }
}
