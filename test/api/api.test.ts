/** The local API's access rules: Unix socket 0600 for the owner, TCP only with bearer tokens of the right role. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalApi } from '../../src/api/server.ts';
import { generateToken } from '../../src/security/tokens.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { apiRequest } from '../../src/cli/client.ts';

const dir = mkdtempSync(join(tmpdir(), 'multiall-api-'));
const reader = generateToken();
const operator = generateToken();
const api = new LocalApi({
  socketPath: join(dir, 'api.sock'),
  tcp: { host: '127.0.0.1', port: 0 },
  tokens: [{ name: 'reader', role: 'read', sha256: reader.sha256 }, { name: 'op', role: 'operator', sha256: operator.sha256 }],
  logger: silentLogger(),
});
api.addRoutes((app) => {
  app.get('/v1/thing', { config: { role: 'read' } }, async (req) => ({ caller: req.caller }));
  app.post('/v1/thing', { config: { role: 'operator' } }, async (req) => ({ changed: true, caller: req.caller }));
});
await api.start();
after(async () => {
  await api.stop();
  rmSync(dir, { recursive: true, force: true });
});
const url = `http://127.0.0.1:${api.tcpAddress?.port}`;

test('the Unix socket is owner-only and needs no token', async () => {
  assert.equal(statSync(join(dir, 'api.sock')).mode & 0o777, 0o600);
  assert.deepEqual(await apiRequest({ socketPath: join(dir, 'api.sock') }, 'POST', '/v1/thing', {}), { changed: true, caller: 'socket' });
});

test('TCP: no token 401, wrong token 401, read token cannot write (403), operator can', async () => {
  await assert.rejects(apiRequest({ url }, 'GET', '/v1/thing'), /401/);
  await assert.rejects(apiRequest({ url, token: 'mat_wrong' }, 'GET', '/v1/thing'), /401/);
  assert.deepEqual(await apiRequest({ url, token: reader.secret }, 'GET', '/v1/thing'), { caller: 'reader' });
  await assert.rejects(apiRequest({ url, token: reader.secret }, 'POST', '/v1/thing', {}), /403/);
  assert.deepEqual(await apiRequest({ url, token: operator.secret }, 'POST', '/v1/thing', {}), { changed: true, caller: 'op' });
  assert.deepEqual(await apiRequest({ url }, 'GET', '/healthz'), { status: 'up' });
});

test('routes without a declared role need operator; unknown paths are a clear 404', async () => {
  await assert.rejects(apiRequest({ url, token: reader.secret }, 'GET', '/v1/nothing-here'), /404|401|403/);
  await assert.rejects(apiRequest({ url, token: operator.secret }, 'GET', '/v1/nothing-here'), /no such endpoint/);
});

test('token changes apply at once (reload)', async () => {
  api.setTokens([]);
  await assert.rejects(apiRequest({ url, token: operator.secret }, 'GET', '/v1/thing'), /401/);
});
