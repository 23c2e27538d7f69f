/**
 * Prometheus metrics of one agent. Components get the registry and add their own collectors;
 * the local API serves it on GET /metrics (role read).
 */
import { Registry, collectDefaultMetrics, Gauge, Counter } from 'prom-client';

export interface AgentMetrics {
  registry: Registry;
  rpcRefused: Counter<'reason'>;
  configReloads: Counter<'result'>;
}

export function createMetrics(node: string, version: string): AgentMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ node });
  collectDefaultMetrics({ register: registry, prefix: 'multiall_process_' });
  const info = new Gauge({ name: 'multiall_agent_info', help: 'Agent build information (always 1)', labelNames: ['version'], registers: [registry] });
  info.set({ version }, 1);
  return {
    registry,
    rpcRefused: new Counter({ name: 'multiall_rpc_peer_refused_total', help: 'Agent-to-agent connections refused at TLS or identity checks', labelNames: ['reason'], registers: [registry] }),
    configReloads: new Counter({ name: 'multiall_config_reloads_total', help: 'Config reload attempts by result', labelNames: ['result'], registers: [registry] }),
  };
}
