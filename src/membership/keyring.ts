/**
 * Gossip encryption keys (memberlist keyring.go + security.go). AES-256-GCM; the primary key
 * (first) encrypts, every installed key is tried on decrypt, so a cluster rotates keys by
 * install → use → remove without a flag day. Wire format of an encrypted payload:
 *   version(1) = 1 | nonce(12) | ciphertext | tag(16)      (29 bytes overhead)
 * The cluster label, if any, is the GCM associated data: it is authenticated, not sent.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export const ENCRYPTION_VERSION = 1;
export const NONCE_SIZE = 12;
export const TAG_SIZE = 16;
export const ENCRYPTION_OVERHEAD = 1 + NONCE_SIZE + TAG_SIZE;
export const KEY_SIZE = 32;

export class KeyringError extends Error {
  override name = 'KeyringError';
}

/** Decode a base64 gossip key; exactly 32 bytes (AES-256) or a precise error. */
export function decodeKey(b64: string): Buffer {
  if (typeof b64 !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64.trim())) {
    throw new KeyringError('gossip key must be base64 (32 random bytes, e.g. from `multiall keygen`)');
  }
  const k = Buffer.from(b64.trim(), 'base64');
  if (k.length !== KEY_SIZE) {
    throw new KeyringError(`gossip key must decode to ${KEY_SIZE} bytes (AES-256), got ${k.length}`);
  }
  return k;
}

export class Keyring {
  #keys: Buffer[] = [];

  /** keys[0] becomes the primary. At least one key is required. */
  constructor(keys: string[]) {
    if (keys.length === 0) throw new KeyringError('keyring needs at least one key');
    for (const k of keys) {
      const raw = decodeKey(k);
      if (!this.#keys.some((x) => x.equals(raw))) this.#keys.push(raw);
    }
  }

  /** Add a key for decryption (no effect on what we encrypt with). Idempotent. */
  install(b64: string): void {
    const raw = decodeKey(b64);
    if (!this.#keys.some((x) => x.equals(raw))) this.#keys.push(raw);
  }

  /** Make an installed key the primary (the one used to encrypt). */
  use(b64: string): void {
    const raw = decodeKey(b64);
    const i = this.#keys.findIndex((x) => x.equals(raw));
    if (i < 0) throw new KeyringError('cannot use a key that is not installed; install it first');
    const [k] = this.#keys.splice(i, 1);
    this.#keys.unshift(k as Buffer);
  }

  /** Remove a secondary key; removing the primary is refused (use another key first). */
  remove(b64: string): void {
    const raw = decodeKey(b64);
    const i = this.#keys.findIndex((x) => x.equals(raw));
    if (i < 0) throw new KeyringError('key is not installed');
    if (i === 0) throw new KeyringError('cannot remove the primary key; use another key first');
    this.#keys.splice(i, 1);
  }

  /** Installed keys as base64, primary first. */
  list(): { primary: string; keys: string[] } {
    const keys = this.#keys.map((k) => k.toString('base64'));
    return { primary: keys[0] as string, keys };
  }

  encrypt(plain: Uint8Array, aad?: Uint8Array): Uint8Array {
    const key = this.#keys[0] as Buffer;
    const nonce = randomBytes(NONCE_SIZE);
    const c = createCipheriv('aes-256-gcm', key, nonce);
    if (aad && aad.length > 0) c.setAAD(aad);
    const head = c.update(plain);
    const tail = c.final();
    const tag = c.getAuthTag();
    const out = Buffer.allocUnsafe(ENCRYPTION_OVERHEAD + head.length + tail.length);
    out[0] = ENCRYPTION_VERSION;
    nonce.copy(out, 1);
    head.copy(out, 1 + NONCE_SIZE);
    tail.copy(out, 1 + NONCE_SIZE + head.length);
    tag.copy(out, out.length - TAG_SIZE);
    return out;
  }

  /** Plaintext, or null if no installed key authenticates the payload (caller drops + counts). */
  decrypt(data: Uint8Array, aad?: Uint8Array): Uint8Array | null {
    if (data.length < ENCRYPTION_OVERHEAD || data[0] !== ENCRYPTION_VERSION) return null;
    const nonce = data.subarray(1, 1 + NONCE_SIZE);
    const ct = data.subarray(1 + NONCE_SIZE, data.length - TAG_SIZE);
    const tag = data.subarray(data.length - TAG_SIZE);
    for (const key of this.#keys) {
      try {
        const d = createDecipheriv('aes-256-gcm', key, nonce);
        if (aad && aad.length > 0) d.setAAD(aad);
        d.setAuthTag(tag);
        const head = d.update(ct);
        const tail = d.final(); // throws when authentication fails
        return tail.length === 0 ? head : Buffer.concat([head, tail]);
      } catch {
        // wrong key or tampered: try the next key
      }
    }
    return null;
  }
}
