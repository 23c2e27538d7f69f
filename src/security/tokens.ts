/**
 * Local API bearer tokens. Only the sha256 of a secret is ever stored (config `api.tokens`); the
 * secret is shown once at creation. Verification hashes the presented secret and compares it to
 * every stored hash in constant time, so neither the match position nor a common prefix leaks.
 *
 * Public: generateToken, hashToken, verifyToken. Depends on: node:crypto, config/types (ApiToken).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiToken } from '../config/types.ts';

/** Prefix makes leaked secrets recognisable by secret scanners. */
export const TOKEN_PREFIX = 'mat_';
const MAX_SECRET = 512;
const HEX64 = /^[0-9a-f]{64}$/;

export function hashToken(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

export function generateToken(): { secret: string; sha256: string } {
  const secret = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  return { secret, sha256: hashToken(secret) };
}

/** The token whose hash matches `secret`, or undefined. Malformed stored hashes never match. */
export function verifyToken(secret: string, tokens: readonly ApiToken[]): ApiToken | undefined {
  if (typeof secret !== 'string' || secret.length === 0 || secret.length > MAX_SECRET) return undefined;
  const presented = createHash('sha256').update(secret, 'utf8').digest();
  let found: ApiToken | undefined;
  for (const t of tokens) {
    const h = typeof t.sha256 === 'string' ? t.sha256.toLowerCase() : '';
    // Malformed entries are compared against a dummy so every entry costs the same.
    const stored = HEX64.test(h) ? Buffer.from(h, 'hex') : Buffer.alloc(32, 0xff);
    const eq = timingSafeEqual(presented, stored) && HEX64.test(h);
    if (eq && found === undefined) found = t;
  }
  return found;
}
