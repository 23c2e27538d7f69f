/**
 * Pool certificate authority: creates the pool CA (ECDSA P-256, self-signed) and issues node
 * certificates whose SAN dNSName is the node name — that name is the node's identity on the
 * agent-to-agent mTLS links (see tls.ts).
 *
 * Files: <caDir>/ca.crt (0644), <caDir>/ca.key (0600, PKCS#8 PEM);
 *        <outDir>/node.crt (0644), node.key (0600, PKCS#8 PEM), ca.crt (copy of the pool CA).
 */
// @peculiar/x509 pulls in tsyringe, which needs the Reflect metadata API: load the polyfill first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, webcrypto, randomBytes, X509Certificate as NodeX509 } from 'node:crypto';
import { access } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { readNamedFile, writeFileAtomic } from './fsutil.ts';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const crypto = webcrypto;
x509.cryptoProvider.set(crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** Tolerate peers whose clocks run a little behind ours. */
const BACKDATE_MS = 5 * 60_000;

export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';
export const NODE_CERT_FILE = 'node.crt';
export const NODE_KEY_FILE = 'node.key';

export interface CaFiles {
  certPath: string;
  keyPath: string;
}

export interface NodeCertFiles {
  certPath: string;
  keyPath: string;
  caPath: string;
}

export interface InitCaOptions {
  commonName?: string;
  /** Validity in days (default 3650). */
  days?: number;
  /** Replace an existing CA (every node certificate issued by the old one stops being accepted). */
  force?: boolean;
}

export interface IssueOptions {
  /** Extra IP address SANs. */
  ips?: string[];
  /** Validity in days from now (default 825). Negative values produce an already-expired certificate (tests). */
  days?: number;
  /** Explicit validity window; overrides `days` (tests, controlled rollovers). */
  notBefore?: Date;
  notAfter?: Date;
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/**
 * Node names are DNS host names (one or more labels), because they are carried in the
 * certificate's SAN dNSName and compared there by peers.
 */
export function validateNodeName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new Error('node name must be a non-empty string');
  if (name.length > 253) throw new Error(`node name "${name.slice(0, 40)}…" is longer than 253 characters`);
  for (const label of name.split('.')) {
    if (!LABEL.test(label)) {
      throw new Error(`invalid node name "${name}": each dot-separated label must be 1-63 letters, digits or hyphens, not starting or ending with a hyphen`);
    }
  }
}

function validityDays(days: number | undefined, dflt: number, what: string): number {
  const d = days ?? dflt;
  if (!Number.isFinite(d) || d === 0) throw new Error(`${what}: days must be a non-zero finite number, got ${String(days)}`);
  return d;
}

function serial(): string {
  // Positive 128-bit serial: clear the top bit so DER does not read it as negative.
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await crypto.subtle.exportKey('pkcs8', key));
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

/** Create the pool CA in `dir`. Refuses to replace an existing one unless `force`. */
export async function initCa(dir: string, opts: InitCaOptions = {}): Promise<CaFiles> {
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  if (!opts.force && ((await exists(certPath)) || (await exists(keyPath)))) {
    throw new Error(`a CA already exists in ${dir} (${CA_CERT_FILE}/${CA_KEY_FILE}); pass force to replace it — node certificates issued by it will stop being accepted`);
  }
  const cn = opts.commonName ?? 'MultiAll pool CA';
  if (cn.length === 0 || cn.length > 64 || /[,=+<>#;"\\\n\r]/.test(cn)) {
    throw new Error(`CA common name must be 1-64 characters without , = + < > # ; " \\ or newlines, got "${cn}"`);
  }
  const days = validityDays(opts.days, 3650, 'initCa');
  if (days < 0) throw new Error('initCa: days must be positive');

  const keys = (await crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${cn}`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + days * DAY_MS),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
    ],
  });
  // Key first: a crash in between leaves no certificate pointing at a missing key.
  await writeFileAtomic(keyPath, await exportKeyPem(keys.privateKey), 0o600);
  await writeFileAtomic(certPath, cert.toString('pem') + '\n', 0o644);
  return { certPath, keyPath };
}

/** Issue a node certificate (SAN dNSName = nodeName, EKU serverAuth+clientAuth) signed by the CA in `caDir`. */
export async function issueNodeCert(caDir: string, nodeName: string, outDir: string, opts: IssueOptions = {}): Promise<NodeCertFiles> {
  validateNodeName(nodeName);
  for (const ip of opts.ips ?? []) {
    if (isIP(ip) === 0) throw new Error(`invalid IP address SAN "${ip}" for node ${nodeName}`);
  }
  const caCertPath = join(caDir, CA_CERT_FILE);
  const caKeyPath = join(caDir, CA_KEY_FILE);
  const caPem = await readNamedFile(caCertPath, 'CA certificate');
  const caKeyPem = await readNamedFile(caKeyPath, 'CA private key');

  let caCert: x509.X509Certificate;
  try {
    caCert = new x509.X509Certificate(caPem);
  } catch (err) {
    throw new Error(`CA certificate file ${caCertPath}: not a PEM X.509 certificate (${(err as Error).message})`, { cause: err });
  }
  let caKey: CryptoKey;
  try {
    caKey = await crypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(caKeyPem), ALG, false, ['sign']);
  } catch (err) {
    throw new Error(`CA private key file ${caKeyPath}: not a PKCS#8 PEM ECDSA P-256 key (${(err as Error).message})`, { cause: err });
  }
  if (!new NodeX509(caPem).checkPrivateKey(createPrivateKey(caKeyPem))) {
    throw new Error(`CA private key file ${caKeyPath} does not match CA certificate ${caCertPath}`);
  }

  let notBefore: Date;
  let notAfter: Date;
  const now = Date.now();
  if (opts.notBefore !== undefined || opts.notAfter !== undefined) {
    notBefore = opts.notBefore ?? new Date(now - BACKDATE_MS);
    notAfter = opts.notAfter ?? new Date(now + 825 * DAY_MS);
  } else {
    const days = validityDays(opts.days, 825, 'issueNodeCert');
    notAfter = new Date(now + days * DAY_MS);
    notBefore = days > 0 ? new Date(now - BACKDATE_MS) : new Date(notAfter.getTime() - DAY_MS);
  }
  if (notAfter.getTime() <= notBefore.getTime()) throw new Error('issueNodeCert: notAfter must be later than notBefore');
  if (notAfter.getTime() > caCert.notAfter.getTime()) notAfter = caCert.notAfter; // never outlive the issuer

  const keys = (await crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const names: x509.JsonGeneralName[] = [{ type: 'dns', value: nodeName }, ...(opts.ips ?? []).map((ip) => ({ type: 'ip' as const, value: ip }))];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${nodeName}`,
    issuer: caCert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension(names, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false, crypto),
    ],
  });

  const certPath = join(outDir, NODE_CERT_FILE);
  const keyPath = join(outDir, NODE_KEY_FILE);
  const caPath = join(outDir, CA_CERT_FILE);
  await writeFileAtomic(keyPath, await exportKeyPem(keys.privateKey), 0o600);
  await writeFileAtomic(certPath, cert.toString('pem') + '\n', 0o644);
  if (caPath !== caCertPath) await writeFileAtomic(caPath, caPem, 0o644);
  return { certPath, keyPath, caPath };
}
