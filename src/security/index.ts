/**
 * Security component: who may talk to an agent, and how that is proven.
 *  - ca.ts: pool CA (ECDSA P-256) and node certificates (SAN dNSName = node name).
 *  - tls.ts: load/check TLS material; node:tls options for mTLS 1.3; peer identity.
 *  - gossipkey.ts: AES-256-GCM gossip keys and the keyring file (rotation helpers).
 *  - tokens.ts: local API bearer tokens, stored only as sha256, verified in constant time.
 * Depends on: @peculiar/x509 (certificate building), node:crypto, node:tls, config/types.
 * See docs/security.md for the threat model.
 */
export { initCa, issueNodeCert, validateNodeName, type CaFiles, type NodeCertFiles, type InitCaOptions, type IssueOptions } from './ca.ts';
export { loadTlsMaterial, serverTlsOptions, clientTlsOptions, peerIdentity, certNodeName, describeTlsError, type TlsMaterial } from './tls.ts';
export { generateGossipKey, parseGossipKey, readKeyring, writeKeyring, validateKeyring, keyringAdd, keyringUse, keyringRemove, type Keyring } from './gossipkey.ts';
export { generateToken, hashToken, verifyToken } from './tokens.ts';
