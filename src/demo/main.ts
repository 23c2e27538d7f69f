/**
 * `npm start`: a local demo pool of three real agents on loopback, with a freshly generated CA,
 * node certificates and gossip key in a temporary state dir. Prints what runs and how to look at
 * it; Ctrl-C stops every agent cleanly and removes the temp dir (unless --keep).
 */
import { Cluster, sleep } from '../harness/cluster.ts';

const keep = process.argv.includes('--keep');
const NAMES = ['alpha', 'beta', 'gamma'];
// A pool with baseline health rules and one master/standby service, to show every part at work.
const cluster = await Cluster.create({
  nodes: NAMES,
  logLevel: 'info',
  pools: [{
    name: 'demo',
    members: NAMES,
    settings: {
      tags: { purpose: 'demo' },
      health: {
        interval: '5s',
        rules: [
          { name: 'disk-root', rule: 'disk / usage > 95% for 2 cycles then warning' },
          { name: 'memory', rule: 'memory usage > 95% for 3 cycles then warning' },
        ],
      },
      failover: { services: [{ name: 'vip', priority: { alpha: 200, beta: 150, gamma: 100 } }] },
    },
  }],
});
let stopping = false;

async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`\n${signal}: stopping the demo agents...\n`);
  for (const name of cluster.nodes.keys()) {
    const code = await cluster.stop(name).catch((err: Error) => err.message);
    process.stdout.write(`  ${name}: stopped (exit ${code})\n`);
  }
  if (keep) process.stdout.write(`state kept in ${cluster.dir}\n`);
  else await cluster.destroy();
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

try {
  await cluster.startAll();
} catch (err) {
  process.stderr.write(`demo: ${(err as Error).message}\n`);
  await cluster.destroy();
  process.exit(1);
}

const names = [...cluster.nodes.keys()];
const first = cluster.node(names[0] ?? 'alpha');
const second = cluster.node(names[1] ?? 'beta');
const lines = [
  `MultiAll demo pool "demo": ${names.length} agents on loopback (state in ${cluster.dir})`,
  '',
  ...names.map((n) => {
    const h = cluster.node(n);
    return `  ${n.padEnd(6)} pid ${String(h.proc?.pid).padEnd(7)} rpc ${h.ip}:${h.rpcPort} (mTLS)  api ${h.socketPath}`;
  }),
  '',
  'Look at it from another terminal:',
  `  bin/multiall --config ${first.configPath} status`,
  `  bin/multiall --config ${first.configPath} members`,
  `  bin/multiall --config ${first.configPath} health`,
  `  bin/multiall --config ${first.configPath} failover status`,
  `  bin/multiall --config ${first.configPath} ping ${second.name}@${second.ip}:${second.rpcPort}`,
  `  bin/multiall --config ${first.configPath} config show --effective`,
  `  bin/multiall --config ${first.configPath} events`,
  `  tail -f ${first.logPath}`,
  '',
  'Ctrl-C stops all agents cleanly.',
];
process.stdout.write(lines.join('\n') + '\n');

// Show that the agents really talk: one mTLS round trip between each pair.
for (const a of names) {
  for (const b of names) {
    if (a === b) continue;
    const hb = cluster.node(b);
    const r = (await cluster.api(a, 'POST', '/v1/peers/ping', { name: b, host: hb.ip, port: hb.rpcPort }).catch((err: Error) => ({ error: err.message }))) as { rttMs?: number; error?: string };
    process.stdout.write(`  ${a} -> ${b}: ${r.error ?? `ok, ${r.rttMs} ms`}\n`);
  }
}

// Once gossip has converged, show the pool as the CLI sees it.
await sleep(3000);
const members = (await cluster.cli(names[0] ?? 'alpha', ['members'])).stdout;
process.stdout.write(`\n${members}`);
while (!stopping) await sleep(1000);
