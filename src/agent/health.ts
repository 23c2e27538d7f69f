/**
 * Runs this node's health rules (from every pool it belongs to, plus its override) and publishes
 * the node's summary status in its gossip metadata, so `multiall health` on any member shows the
 * whole pool. History keeps status changes only (not every cycle).
 *
 * Public interface: startHealth(agent, cluster) → HealthMonitor. Depends on health, cluster.
 */
import { HealthMonitor, mergePoolSections, rulesForNode, registerHealthMetrics, type HistoryEntry } from '../health/index.ts';
import type { Agent } from './agent.ts';
import type { ClusterServices } from './cluster.ts';

export function healthSections(agent: Agent): { pool: string; section: unknown }[] {
  const node = agent.config.node.name;
  const sections = agent
    .pools()
    .filter((p) => p.members.includes(node) && p.settings.health !== undefined)
    .map((p) => ({ pool: p.name, section: p.settings.health }));
  const own = agent.config.overrides[node]?.settings.health;
  if (own !== undefined) sections.push({ pool: `override:${node}`, section: own });
  return sections;
}

export function startHealth(agent: Agent, cluster: ClusterServices): HealthMonitor {
  const node = agent.config.node.name;
  const settings = mergePoolSections(healthSections(agent));
  const rules = rulesForNode(node, settings);
  const last = new Map<string, string>();
  const monitor = new HealthMonitor({
    node,
    rules,
    bus: agent.bus,
    logger: agent.logger.child({ component: 'health' }),
    intervalMs: settings.interval,
    ...(settings.timeout !== undefined ? { timeoutMs: settings.timeout } : {}),
    flap: settings.flap,
    history: {
      record: (e: HistoryEntry) => {
        if (last.get(e.check) === e.status) return;
        last.set(e.check, e.status);
        agent.store.appendHistory('health', 'check_changed', { check: e.check, status: e.status, output: e.output.slice(0, 500), flapping: e.flapping });
      },
    },
  });
  registerHealthMetrics(agent.metrics.registry, monitor);
  agent.bus.on('health.changed', (ev) => {
    if (ev.data.node === node && ev.data.check === undefined) cluster.setMetaField('health', ev.data.status);
  });
  cluster.setMetaField('health', monitor.summary().status);
  monitor.start();
  agent.logger.info({ rules: rules.map((r) => r.name) }, 'health monitor started');
  return monitor;
}
