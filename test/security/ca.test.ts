import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { initCa, issueNodeCert, validateNodeName } from '../../src/security/ca.ts';
import { loadTlsMaterial } from '../../src/security/tls.ts';
import { makePki, type Pki } from './pki.ts';

let pki: Pki;
before(async () => (pki = await makePki()));
after(async () => pki.cleanup());

test('initCa writes a self-signed CA with restrictive key mode', async () => {
  const certPem = await readFile(join(pki.caDir, 'ca.crt'), 'utf8');
  const cert = new X509Certificate(certPem);
  assert.equal(cert.ca, true);
  assert.equal(cert.subject, 'CN=test pool CA');
  assert.ok(cert.checkIssued(cert) && cert.verify(cert.publicKey), 'self-signed');
  assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.equal((await stat(join(pki.caDir, 'ca.key'))).mode & 0o777, 0o600);
  assert.equal((await stat(join(pki.caDir, 'ca.crt'))).mode & 0o777, 0o644);
});

test('initCa refuses to overwrite an existing CA unless forced', async () => {
  const dir = join(pki.dir, 'ca-overwrite');
  await initCa(dir);
  const first = await readFile(join(dir, 'ca.crt'), 'utf8');
  await assert.rejects(initCa(dir), /a CA already exists in .*pass force/);
  assert.equal(await readFile(join(dir, 'ca.crt'), 'utf8'), first);
  await initCa(dir, { force: true });
  assert.notEqual(await readFile(join(dir, 'ca.crt'), 'utf8'), first);
});

test('issueNodeCert: SAN node name + IPs, client+server EKU, signed by the CA, key 0600', async () => {
  const out = join(pki.dir, 'web1-issue');
  const r = await issueNodeCert(pki.caDir, 'web1', out, { ips: ['127.0.0.2', '::1'] });
  const cert = new X509Certificate(await readFile(r.certPath, 'utf8'));
  const ca = new X509Certificate(await readFile(r.caPath, 'utf8'));
  assert.equal(cert.ca, false);
  assert.equal(cert.subjectAltName, 'DNS:web1, IP Address:127.0.0.2, IP Address:0:0:0:0:0:0:0:1');
  assert.deepEqual([...(cert.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey));
  assert.equal((await stat(r.keyPath)).mode & 0o777, 0o600);
  assert.match(await readFile(r.keyPath, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
  const m = await loadTlsMaterial({ ca: r.caPath, cert: r.certPath, key: r.keyPath });
  assert.equal(m.nodeName, 'web1');
  assert.ok(m.notAfter.getTime() > Date.now() + 800 * 86_400_000);
});

test('node names and IPs are validated with a clear error', async () => {
  for (const bad of ['', '-web', 'web_1', 'a..b', 'web 1', 'x'.repeat(64), 'ünïcode']) {
    assert.throws(() => validateNodeName(bad), /node name/, bad);
  }
  for (const good of ['web1', 'db-2.dc1', 'A1', 'x'.repeat(63)]) validateNodeName(good);
  await assert.rejects(issueNodeCert(pki.caDir, 'bad_name', join(pki.dir, 'x')), /invalid node name "bad_name"/);
  await assert.rejects(issueNodeCert(pki.caDir, 'web1', join(pki.dir, 'x'), { ips: ['300.1.1.1'] }), /invalid IP address SAN "300.1.1.1"/);
  await assert.rejects(issueNodeCert(join(pki.dir, 'nope'), 'web1', join(pki.dir, 'x')), /CA certificate file .*nope\/ca.crt: not found/);
});

test('loadTlsMaterial names the file and the problem', async () => {
  const good = await pki.files('web2');
  await assert.rejects(loadTlsMaterial({ ...good, cert: join(pki.dir, 'missing.crt') }), /TLS certificate file .*missing\.crt: not found/);
  const garbage = join(pki.dir, 'garbage.crt');
  await writeFile(garbage, 'not a certificate\n');
  await assert.rejects(loadTlsMaterial({ ...good, cert: garbage }), /TLS certificate file .*garbage\.crt: not a PEM X\.509 certificate/);
  const other = await pki.files('web3');
  await assert.rejects(loadTlsMaterial({ ...good, key: other.key }), /TLS private key file .* does not match certificate/);
  const expired = await pki.files('web4', { days: -1 });
  await assert.rejects(loadTlsMaterial(expired), /TLS certificate file .*: certificate expired on /);
  const foreign = await pki.files('web5', { foreign: true });
  await assert.rejects(loadTlsMaterial({ ...foreign, ca: good.ca }), /not issued by the pool CA/);
  const nodeAsCa = join(pki.dir, 'node-as-ca.crt');
  await copyFile(good.cert, nodeAsCa);
  await assert.rejects(loadTlsMaterial({ ...good, ca: nodeAsCa }), /certificate is not a CA/);
  await assert.rejects(loadTlsMaterial({ ...good, key: good.cert }), /TLS private key file .*: not a PEM private key/);
});

test('issued validity never exceeds the CA and explicit windows are honoured', async () => {
  const nb = new Date(Date.now() - 10 * 86_400_000);
  const na = new Date(Date.now() - 5 * 86_400_000);
  const r = await issueNodeCert(pki.caDir, 'old1', join(pki.dir, 'old1'), { notBefore: nb, notAfter: na });
  const cert = new X509Certificate(await readFile(r.certPath, 'utf8'));
  assert.equal(cert.validToDate.getTime(), Math.floor(na.getTime() / 1000) * 1000);
  await assert.rejects(issueNodeCert(pki.caDir, 'x', join(pki.dir, 'x'), { notBefore: na, notAfter: nb }), /notAfter must be later/);
  await assert.rejects(issueNodeCert(pki.caDir, 'x', join(pki.dir, 'x'), { days: Number.NaN }), /days must be a non-zero finite number/);
});
