/**
 * The failover RPC methods and their request/response bodies, validated with zod: bodies come
 * from the network, so anything malformed is refused with a precise message (fuzzed in tests).
 *
 *   failover.prevote      { pool, service, term, candidate }        → VoteReply (no state change)
 *   failover.vote         { pool, service, term, candidate }        → VoteReply
 *   failover.heartbeat    { pool, service, term, master, release? } → HeartbeatReply
 *   failover.timeout_now  { pool, service, term }                   → TimeoutNowReply
 *   failover.switch       { pool, service, target }                 → SwitchReply
 *
 * `release: <successor>` on a heartbeat = the master has stepped down (its master_to_standby
 * ran) and asks voters to hold their vote for the successor only.
 *
 * Public interface: METHODS, Method, requestSchemas, parseRequest, parseVoteReply,
 * parseHeartbeatReply, parseTimeoutNowReply, parseSwitchReply and the body types.
 * Depends on: zod.
 */
import { z } from 'zod';

const name = z.string().min(1).max(253);
const term = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const base = { pool: name, service: name };

export const requestSchemas = {
  'failover.prevote': z.strictObject({ ...base, term, candidate: name }),
  'failover.vote': z.strictObject({ ...base, term, candidate: name }),
  'failover.heartbeat': z.strictObject({ ...base, term, master: name, release: name.optional() }),
  'failover.timeout_now': z.strictObject({ ...base, term }),
  'failover.switch': z.strictObject({ ...base, target: name }),
} as const;

export type Method = keyof typeof requestSchemas;
export const METHODS = Object.keys(requestSchemas) as Method[];

export type VoteRequest = z.infer<(typeof requestSchemas)['failover.vote']>;
export type HeartbeatRequest = z.infer<(typeof requestSchemas)['failover.heartbeat']>;
export type TimeoutNowRequest = z.infer<(typeof requestSchemas)['failover.timeout_now']>;
export type SwitchRequest = z.infer<(typeof requestSchemas)['failover.switch']>;
export type AnyRequest = { [M in Method]: { method: M; body: z.infer<(typeof requestSchemas)[M]> } }[Method];

const voteReply = z.object({ granted: z.boolean(), term, reason: z.string().max(1000) });
const heartbeatReply = z.object({ ack: z.boolean(), term, reason: z.string().max(1000).optional() });
const timeoutNowReply = z.object({ elected: z.boolean(), term, reason: z.string().max(1000) });
const switchReply = z.object({ ok: z.boolean(), master: name.nullable(), term, detail: z.string().max(2000) });

export type VoteReply = z.infer<typeof voteReply>;
export type HeartbeatReply = z.infer<typeof heartbeatReply>;
export type TimeoutNowReply = z.infer<typeof timeoutNowReply>;
export type SwitchReply = z.infer<typeof switchReply>;

export class BadRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadRequestError';
  }
}

function describe(issues: readonly z.core.$ZodIssue[]): string {
  return issues.slice(0, 5).map((i) => `${i.path.length ? i.path.join('.') : '(body)'}: ${i.message}`).join('; ');
}

/** Validates a request; throws BadRequestError naming the method and the bad fields. */
export function parseRequest(method: string, body: unknown): AnyRequest {
  if (!Object.hasOwn(requestSchemas, method)) {
    throw new BadRequestError(`unknown failover method ${JSON.stringify(method)} (known: ${METHODS.join(', ')})`);
  }
  const m = method as Method;
  const r = requestSchemas[m].safeParse(body);
  if (!r.success) throw new BadRequestError(`${m}: bad body: ${describe(r.error.issues)}`);
  return { method: m, body: r.data } as AnyRequest;
}

function reply<T>(schema: z.ZodType<T>, what: string, v: unknown): T {
  const r = schema.safeParse(v);
  if (!r.success) throw new BadRequestError(`bad ${what} reply: ${describe(r.error.issues)}`);
  return r.data;
}

export const parseVoteReply = (v: unknown): VoteReply => reply(voteReply, 'vote', v);
export const parseHeartbeatReply = (v: unknown): HeartbeatReply => reply(heartbeatReply, 'heartbeat', v);
export const parseTimeoutNowReply = (v: unknown): TimeoutNowReply => reply(timeoutNowReply, 'timeout_now', v);
export const parseSwitchReply = (v: unknown): SwitchReply => reply(switchReply, 'switch', v);
