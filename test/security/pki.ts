/** Test PKI: one pool CA with node certificates, plus a foreign CA and an expired certificate. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TlsFiles } from '../../src/config/types.ts';
import { initCa, issueNodeCert, type IssueOptions } from '../../src/security/ca.ts';
import { loadTlsMaterial, type TlsMaterial } from '../../src/security/tls.ts';
import { readFile } from 'node:fs/promises';
import { before, after } from 'node:test';

export interface Pki {
  dir: string;
  caDir: string;
  foreignCaDir: string;
  /** Issue (pool CA unless foreign) and load; expired certificates are loaded without checks. */
  node(name: string, opts?: IssueOptions & { foreign?: boolean }): Promise<TlsMaterial>;
  files(name: string, opts?: IssueOptions & { foreign?: boolean }): Promise<TlsFiles>;
  cleanup(): Promise<void>;
}

let seq = 0;

export async function makePki(): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), 'multiall-pki-'));
  const caDir = join(dir, 'ca');
  const foreignCaDir = join(dir, 'foreign-ca');
  await initCa(caDir, { commonName: 'test pool CA' });
  await initCa(foreignCaDir, { commonName: 'foreign CA' });
  const files = async (name: string, opts: IssueOptions & { foreign?: boolean } = {}): Promise<TlsFiles> => {
    const out = join(dir, `${name}-${++seq}`);
    const r = await issueNodeCert(opts.foreign ? foreignCaDir : caDir, name, out, opts);
    return { ca: r.caPath, cert: r.certPath, key: r.keyPath };
  };
  return {
    dir,
    caDir,
    foreignCaDir,
    files,
    async node(name, opts = {}) {
      const f = await files(name, opts);
      if (!opts.foreign && opts.days === undefined && opts.notAfter === undefined) return loadTlsMaterial(f);
      // loadTlsMaterial rightly refuses these; tests need them to reach the handshake.
      // A foreign node still trusts (only) the pool CA, so the refusal is about its own cert.
      const [cert, key] = await Promise.all([readFile(f.cert, 'utf8'), readFile(f.key, 'utf8')]);
      const ca = await readFile(join(caDir, 'ca.crt'), 'utf8');
      return { ca, cert, key, nodeName: name, notAfter: new Date(), files: f };
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export interface TwoNodes {
  pki: Pki;
  web1: TlsMaterial;
  web2: TlsMaterial;
}

/** For a test file: a PKI with nodes web1 and web2, made before its tests and removed after them. */
export function twoNodeFixture(): TwoNodes {
  const fx = {} as TwoNodes;
  before(async () => {
    fx.pki = await makePki();
    fx.web1 = await fx.pki.node('web1');
    fx.web2 = await fx.pki.node('web2');
  });
  after(async () => fx.pki.cleanup());
  return fx;
}
