import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filesSectionSchema, parseRate, resolveTrees } from '../../src/filesync/schema.ts';

const good = {
  trees: [
    { name: 'www', path: '/var/www/', mode: 'two-way', exclude: ['*.log', 'cache/'], owner: 'preserve', numeric_ids: true, permissions: 'ignore',
      post_sync: [{ run: 'systemctl reload nginx', timeout: '30s' }], debounce: '2s', max_delete_percent: 40, bandwidth_limit: '10MB/s',
      tombstone_min_age: '1h', tombstone_max_age: '720h' },
    { name: 'conf', path: '/etc/app', mode: { one_way_from: 'admins' } },
  ],
  exceptions: { web3: { www: { disabled: true } }, web4: { www: { path: '/srv/www' } } },
};

test('files section: a full example parses and resolves per node with exceptions', () => {
  const s = filesSectionSchema.parse(good);
  const web1 = resolveTrees(s, { node: 'web1', pool: 'web' });
  assert.equal(web1.length, 2);
  assert.deepEqual({ ...web1[0]!, postSync: web1[0]!.postSync }, {
    name: 'www', pool: 'web', root: '/var/www', mode: 'two-way', exclude: ['*.log', 'cache/'], include: undefined, owner: 'preserve', numericIds: true, permissions: 'ignore',
    postSync: [{ run: 'systemctl reload nginx', timeoutMs: 30_000 }], debounceMs: 2000, scanIntervalMs: 600_000, maxDeletePercent: 40, bandwidthBps: 10_000_000,
    tombstoneMinAgeMs: 3_600_000, tombstoneMaxAgeMs: 720 * 3_600_000,
  });
  assert.deepEqual([web1[1]!.tombstoneMinAgeMs, web1[1]!.tombstoneMaxAgeMs], [24 * 3_600_000, 4320 * 3_600_000], 'defaults: a day, 180 days');
  assert.deepEqual(web1[1]!.mode, { oneWayFrom: 'admins' });
  assert.equal(web1[1]!.numericIds, false, 'default: owners mapped by name');
  assert.deepEqual(resolveTrees(s, { node: 'web3', pool: 'web' }).map((t) => t.name), ['conf']);
  assert.equal(resolveTrees(s, { node: 'web4', pool: 'web' })[0]!.root, '/srv/www');
});

test('files section: precise errors', () => {
  const issues = (v: unknown): string[] => {
    const r = filesSectionSchema.safeParse(v);
    assert.equal(r.success, false);
    return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  assert.match(issues({ trees: [{ name: 'w', path: 'relative' }] })[0]!, /trees\.0\.path: expected an absolute directory path/);
  assert.match(issues({ trees: [{ name: 'w', path: '/' }] })[0]!, /other than \//);
  assert.match(issues({ trees: [{ name: 'w', path: '/x', exclude: ['ok', 'bad['] }] })[0]!, /trees\.0\.exclude\.1: E_PATTERN/);
  assert.match(issues({ trees: [{ name: 'w', path: '/x', bandwidth_limit: 'fast' }] })[0]!, /bandwidth_limit: expected a rate/);
  assert.match(issues({ trees: [{ name: 'w', path: '/x', debounce: '0s' }] })[0]!, /debounce/);
  assert.match(issues({ trees: [{ name: 'w', path: '/x' }, { name: 'w', path: '/y' }] })[0]!, /trees\.1\.name: duplicate tree "w"/);
  assert.match(issues({ trees: [{ name: 'w', path: '/x', colour: 1 }] })[0]!, /colour/);
  assert.match(issues({ trees: [{ name: 'w', path: '/x', numeric_ids: 'yes' }] })[0]!, /trees\.0\.numeric_ids: .*boolean/);
  assert.match(issues({ trees: [{ name: 'w', path: '/x', tombstone_min_age: '48h', tombstone_max_age: '24h' }] })[0]!, /trees\.0\.tombstone_max_age: .*must not be below tombstone_min_age/);
  assert.match(issues({ exceptions: { web1: { w: { disabled: false } } } })[0]!, /exceptions\.web1\.w/);
  assert.throws(() => resolveTrees({ trees: [{ name: 'w' }] }, { node: 'n', pool: 'p' }), /files\.trees\[w\] has no path/);
  assert.throws(() => resolveTrees({ trees: [], exceptions: { n: { zz: { disabled: true } } } }, { node: 'n', pool: 'p' }), /no such tree/);
  assert.equal(parseRate('1.5MiB/s'), 1_572_864);
  assert.equal(parseRate('10 B/s'), undefined);
});
