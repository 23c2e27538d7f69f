/**
 * Signed, versioned pool-definition documents: how an administrator changes the pools once, on
 * any admin node, and every member converges on the same definition.
 *
 * A document holds the pool list (same shape as the config file's `pools`), a version number
 * and the id of the admin key that signed it. The signature is Ed25519 over the canonical JSON
 * of everything but the signature, so key order or whitespace never matter. Members accept only
 * documents signed by a key their config trusts (`admin_keys`), and only newer versions; two
 * different documents with the same version (two admins racing) are ordered by content hash so
 * every member picks the same one.
 *
 * Public interface: signDocument, verifyDocument, compareDocuments, canonicalJson, adminKeyId,
 * generateAdminKey. Depends on node:crypto only.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export const poolSchema = z.strictObject({
  name: z.string().regex(NAME, 'a pool name is lowercase letters, digits and dashes (max 63)'),
  members: z.array(z.string().regex(NAME, 'a member name is lowercase letters, digits and dashes (max 63)')).max(10_000),
  settings: z.record(z.string(), z.unknown()).default({}),
});

export const documentSchema = z.strictObject({
  kind: z.literal('multiall.pools/v1'),
  version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  issuedAt: z.string().max(64),
  signer: z.string().regex(/^[0-9a-f]{16}$/, 'signer is a 16-hex admin key id'),
  pools: z.array(poolSchema).max(10_000),
  signature: z.string().regex(/^[A-Za-z0-9+/=]{1,200}$/, 'signature is base64'),
});

export type PoolDocument = z.infer<typeof documentSchema>;
export type UnsignedDocument = Omit<PoolDocument, 'signature' | 'signer'>;

/** Largest document accepted from a peer (bytes of JSON). */
export const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;

/** JSON with object keys sorted at every level: the bytes that are signed. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function signedBytes(doc: Omit<PoolDocument, 'signature'>): Buffer {
  return Buffer.from(canonicalJson({ ...doc, signature: undefined }));
}

/** Key id: first 16 hex chars of sha256 over the raw public key (SPKI DER). */
export function adminKeyId(pub: KeyObject): string {
  return createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

export function generateAdminKey(): { privatePem: string; publicPem: string; id: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    id: adminKeyId(publicKey),
  };
}

export function signDocument(doc: UnsignedDocument, privatePem: string): PoolDocument {
  const priv = createPrivateKey(privatePem);
  if (priv.asymmetricKeyType !== 'ed25519') throw new Error(`admin key must be Ed25519, got ${priv.asymmetricKeyType}`);
  const signer = adminKeyId(createPublicKey(priv));
  const body = { ...doc, signer };
  const signature = sign(null, signedBytes(body), priv).toString('base64');
  return { ...body, signature };
}

export interface TrustedKey {
  id: string;
  key: KeyObject;
}

export function loadTrustedKey(publicPem: string): TrustedKey {
  const key = createPublicKey(publicPem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`admin public key must be Ed25519, got ${key.asymmetricKeyType}`);
  return { id: adminKeyId(key), key };
}

export type Verdict = { ok: true; doc: PoolDocument } | { ok: false; reason: string };

/** Validates shape, size and signature of a document that came from anywhere. */
export function verifyDocument(input: unknown, trusted: readonly TrustedKey[]): Verdict {
  const r = documentSchema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    return { ok: false, reason: `malformed pool document: ${i ? `${i.path.join('.') || '(root)'}: ${i.message}` : 'invalid'}` };
  }
  const doc = r.data;
  if (Buffer.byteLength(JSON.stringify(doc)) > MAX_DOCUMENT_BYTES) return { ok: false, reason: `pool document larger than ${MAX_DOCUMENT_BYTES} bytes` };
  const names = new Set<string>();
  for (const p of doc.pools) {
    if (names.has(p.name)) return { ok: false, reason: `pool document defines pool '${p.name}' twice` };
    names.add(p.name);
  }
  const key = trusted.find((k) => k.id === doc.signer);
  if (!key) return { ok: false, reason: `pool document signed by untrusted key ${doc.signer}` };
  const sig = Buffer.from(doc.signature, 'base64');
  const { signature: _s, ...body } = doc;
  if (!verify(null, signedBytes(body), key.key, sig)) return { ok: false, reason: `bad signature on pool document version ${doc.version}` };
  return { ok: true, doc };
}

export function documentHash(doc: PoolDocument): string {
  return createHash('sha256').update(canonicalJson(doc)).digest('hex');
}

/** > 0 when a is newer than b: higher version wins; equal versions are ordered by content hash. */
export function compareDocuments(a: PoolDocument, b: PoolDocument): number {
  if (a.version !== b.version) return a.version - b.version;
  const ha = documentHash(a);
  const hb = documentHash(b);
  return ha === hb ? 0 : ha > hb ? 1 : -1;
}
