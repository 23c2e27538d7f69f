/**
 * Agent-to-agent mutual TLS: loads a node's TLS material (checked up front so a bad file fails at
 * start-up with its name, not at the first handshake) and builds node:tls options for both ends:
 * TLS 1.3 only, both sides present certificates, only the pool CA is trusted, and the node name
 * in the certificate's SAN dNSName is the peer's identity.
 *
 * Public: loadTlsMaterial, serverTlsOptions, clientTlsOptions, peerIdentity, certNodeName,
 *         describeTlsError, TlsMaterial.
 * Depends on: node:crypto, node:tls, config/types (TlsFiles).
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { ConnectionOptions, PeerCertificate, TLSSocket, TlsOptions } from 'node:tls';
import type { TlsFiles } from '../config/types.ts';
import { readNamedFile } from './fsutil.ts';

export interface TlsMaterial {
  /** PEM of the pool CA: the only trust anchor. */
  readonly ca: string;
  /** PEM of this node's certificate. */
  readonly cert: string;
  /** PEM of this node's private key (never log this object whole). */
  readonly key: string;
  /** This node's name, from its certificate's SAN dNSName. */
  readonly nodeName: string;
  readonly notAfter: Date;
  readonly files: TlsFiles;
}

/** DNS names in a SAN string as node:crypto/node:tls render it ("DNS:web1, IP Address:10.0.0.1"). */
function dnsNames(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  return subjectAltName
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4));
}

/** Node name carried in a certificate: its first SAN dNSName. */
export function certNodeName(cert: X509Certificate): string | undefined {
  return dnsNames(cert.subjectAltName)[0];
}

function parseCert(pem: string, file: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new Error(`${what} file ${file}: not a PEM X.509 certificate (${(err as Error).message})`, { cause: err });
  }
}

function checkValidity(cert: X509Certificate, file: string, what: string, now: number): void {
  if (cert.validToDate.getTime() <= now) throw new Error(`${what} file ${file}: certificate expired on ${cert.validToDate.toISOString()}`);
  if (cert.validFromDate.getTime() > now) throw new Error(`${what} file ${file}: certificate not valid before ${cert.validFromDate.toISOString()}`);
}

/** Read and cross-check CA, certificate and key; every error names the offending file. */
export async function loadTlsMaterial(files: TlsFiles): Promise<TlsMaterial> {
  const [caPem, certPem, keyPem] = await Promise.all([
    readNamedFile(files.ca, 'TLS CA certificate'),
    readNamedFile(files.cert, 'TLS certificate'),
    readNamedFile(files.key, 'TLS private key'),
  ]);
  const now = Date.now();
  const ca = parseCert(caPem, files.ca, 'TLS CA certificate');
  if (!ca.ca) throw new Error(`TLS CA certificate file ${files.ca}: certificate is not a CA (basicConstraints CA:FALSE)`);
  checkValidity(ca, files.ca, 'TLS CA certificate', now);
  const cert = parseCert(certPem, files.cert, 'TLS certificate');
  checkValidity(cert, files.cert, 'TLS certificate', now);
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new Error(`TLS private key file ${files.key}: not a PEM private key (${(err as Error).message})`, { cause: err });
  }
  if (!cert.checkPrivateKey(key)) throw new Error(`TLS private key file ${files.key} does not match certificate ${files.cert}`);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    throw new Error(`TLS certificate file ${files.cert}: not issued by the pool CA in ${files.ca}`);
  }
  const nodeName = certNodeName(cert);
  if (nodeName === undefined) throw new Error(`TLS certificate file ${files.cert}: no SAN dNSName (the node name) in the certificate`);
  return { ca: caPem, cert: certPem, key: keyPem, nodeName, notAfter: cert.validToDate, files };
}

const TLS13 = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;

/** Options for tls.createServer: client certificates required and verified against the pool CA. */
export function serverTlsOptions(m: TlsMaterial): TlsOptions {
  return { ...TLS13, ca: m.ca, cert: m.cert, key: m.key, requestCert: true, rejectUnauthorized: true };
}

/**
 * Options for tls.connect to the node called `expectedPeerName`: the server must prove that
 * exact name in its SAN dNSName (no wildcards, IPs do not count).
 */
export function clientTlsOptions(m: TlsMaterial, expectedPeerName: string): ConnectionOptions {
  return {
    ...TLS13,
    ca: m.ca,
    cert: m.cert,
    key: m.key,
    rejectUnauthorized: true,
    servername: expectedPeerName,
    checkServerIdentity: (_host: string, peer: PeerCertificate): Error | undefined => {
      const names = dnsNames(peer.subjectaltname);
      if (names.some((n) => n.toLowerCase() === expectedPeerName.toLowerCase())) return undefined;
      const err = new Error(`name mismatch: expected ${expectedPeerName}, got ${names.length > 0 ? names.join(',') : '(no SAN dNSName)'}`);
      (err as NodeJS.ErrnoException).code = 'ERR_MULTIALL_NAME_MISMATCH';
      return err;
    },
  };
}

/** Node name of the verified peer on an mTLS socket; throws if the peer is unverified or nameless. */
export function peerIdentity(socket: TLSSocket): string {
  if (!socket.authorized) throw new Error(`peer not authorized: ${String(socket.authorizationError ?? 'no certificate')}`);
  const peer = socket.getPeerCertificate();
  const name = dnsNames(peer.subjectaltname)[0];
  if (name === undefined) throw new Error('peer certificate has no SAN dNSName (node name)');
  return name;
}

/**
 * Map TLS/OpenSSL errors of either side to a short reason an operator can act on. On the server,
 * node destroys a client whose certificate fails verification with a bare "socket hang up"; the
 * real cause is then in the socket's `authorizationError`, which callers pass as the second argument.
 */
export function describeTlsError(err: unknown, authorizationError?: unknown): string {
  if (authorizationError) {
    const code = authorizationError instanceof Error ? (authorizationError as NodeJS.ErrnoException).code : String(authorizationError);
    return describeTlsError(Object.assign(new Error(String(authorizationError)), { code }));
  }
  const e = err as NodeJS.ErrnoException & { reason?: string };
  const code = e?.code ?? '';
  switch (code) {
    case 'ERR_MULTIALL_NAME_MISMATCH':
      return e.message;
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
    case 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA':
      return 'certificate signed by unknown CA';
    case 'CERT_HAS_EXPIRED':
    case 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED':
      return 'certificate expired';
    case 'CERT_NOT_YET_VALID':
      return 'certificate not yet valid';
    case 'ERR_SSL_UNSUPPORTED_PROTOCOL':
    case 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
      return 'TLS version refused (TLS 1.3 required)';
    case 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE':
    case 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED':
      return 'peer presented no certificate';
    case 'ERR_TLS_HANDSHAKE_TIMEOUT':
      return 'TLS handshake timed out';
    case 'ECONNRESET':
      return 'connection reset during TLS handshake';
    case 'ECONNREFUSED':
      return 'connection refused';
  }
  const msg = String(e?.message ?? err);
  // The server side only learns "certificate verify failed"; OpenSSL appends the verify result.
  if (/certificate has expired|certificate expired/i.test(msg)) return 'certificate expired';
  if (/unknown ca|unable to get (local )?issuer|self[- ]signed/i.test(msg)) return 'certificate signed by unknown CA';
  if (/certificate verify failed/i.test(msg)) return 'certificate verify failed';
  if (/wrong version number|unsupported protocol|protocol version/i.test(msg)) return 'TLS version refused (TLS 1.3 required)';
  if (/http request/i.test(msg)) return 'not a TLS client (plain HTTP)';
  return code ? `${code}: ${msg}` : msg;
}
