/**
 * Gossip encryption keys (AES-256-GCM, used by membership): generation, parsing and the keyring
 * file. Rotation = add the new key everywhere, make it primary everywhere, then remove the old
 * one; receivers try every key in `keys`, senders use `primary`.
 *
 * Keyring file (mode 0600, written atomically): { "primary": "<b64>", "keys": ["<b64>", ...] }.
 * Public: generateGossipKey, parseGossipKey, readKeyring, writeKeyring, validateKeyring,
 *         keyringAdd, keyringUse, keyringRemove, Keyring.
 * Depends on: node:crypto, node:fs.
 */
import { randomBytes } from 'node:crypto';
import { readNamedFile, writeFileAtomic } from './fsutil.ts';

export const GOSSIP_KEY_BYTES = 32;

export interface Keyring {
  /** Key used to encrypt outgoing gossip. Always also present in `keys`. */
  primary: string;
  /** Keys accepted for decryption (primary first is conventional, not required). */
  keys: string[];
}

export function generateGossipKey(): string {
  return randomBytes(GOSSIP_KEY_BYTES).toString('base64');
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Decode a base64 gossip key; exactly 32 bytes, canonical base64 only (so keys compare as strings). */
export function parseGossipKey(s: string): Buffer {
  if (typeof s !== 'string') throw new Error(`gossip key must be a base64 string, got ${s === null ? 'null' : typeof s}`);
  const t = s.trim();
  if (t.length === 0) throw new Error('gossip key is empty');
  if (!B64.test(t) || t.length % 4 !== 0) throw new Error('gossip key is not valid base64 (expected 44 characters of A-Z a-z 0-9 + / =)');
  const buf = Buffer.from(t, 'base64');
  if (buf.length !== GOSSIP_KEY_BYTES) throw new Error(`gossip key must decode to ${GOSSIP_KEY_BYTES} bytes (AES-256), got ${buf.length}`);
  if (buf.toString('base64') !== t) throw new Error('gossip key is not canonical base64');
  return buf;
}

/** Check shape and every key; returns a normalised copy (trimmed, duplicates removed). */
export function validateKeyring(kr: unknown, where = 'keyring'): Keyring {
  if (typeof kr !== 'object' || kr === null || Array.isArray(kr)) throw new Error(`${where}: expected an object { "primary": ..., "keys": [...] }`);
  const o = kr as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'primary' && k !== 'keys') throw new Error(`${where}: unknown field "${k}"`);
  if (typeof o.primary !== 'string') throw new Error(`${where}: "primary" must be a base64 key string`);
  if (!Array.isArray(o.keys) || o.keys.length === 0) throw new Error(`${where}: "keys" must be a non-empty array of base64 key strings`);
  try {
    parseGossipKey(o.primary);
  } catch (err) {
    throw new Error(`${where}: primary: ${(err as Error).message}`, { cause: err });
  }
  const keys: string[] = [];
  o.keys.forEach((k, i) => {
    try {
      parseGossipKey(k as string);
    } catch (err) {
      throw new Error(`${where}: keys[${i}]: ${(err as Error).message}`, { cause: err });
    }
    const t = (k as string).trim();
    if (!keys.includes(t)) keys.push(t);
  });
  const primary = o.primary.trim();
  if (!keys.includes(primary)) throw new Error(`${where}: the primary key is not listed in "keys"`);
  return { primary, keys };
}

export async function readKeyring(path: string): Promise<Keyring> {
  const text = await readNamedFile(path, 'gossip keyring');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`gossip keyring file ${path}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  return validateKeyring(data, `gossip keyring file ${path}`);
}

export async function writeKeyring(path: string, kr: Keyring): Promise<void> {
  const v = validateKeyring(kr);
  await writeFileAtomic(path, JSON.stringify(v, null, 2) + '\n', 0o600);
}

/** Add a key (accepted for decryption, not yet used to encrypt). */
export function keyringAdd(kr: Keyring, key: string): Keyring {
  parseGossipKey(key);
  return validateKeyring({ primary: kr.primary, keys: [...kr.keys, key.trim()] });
}

/** Make an already-installed key the primary. */
export function keyringUse(kr: Keyring, key: string): Keyring {
  const t = key.trim();
  if (!kr.keys.includes(t)) throw new Error('cannot use a key that is not installed in the keyring: add it first');
  return validateKeyring({ primary: t, keys: kr.keys });
}

/** Remove a key; the primary cannot be removed. */
export function keyringRemove(kr: Keyring, key: string): Keyring {
  const t = key.trim();
  if (t === kr.primary) throw new Error('cannot remove the primary key: make another key primary first');
  if (!kr.keys.includes(t)) throw new Error('key is not in the keyring');
  return validateKeyring({ primary: kr.primary, keys: kr.keys.filter((k) => k !== t) });
}
