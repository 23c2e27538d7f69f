/**
 * Prometheus export: gauges read from the monitor at scrape time.
 *   multiall_health_status{node}                 node summary (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, 4 MAINTENANCE)
 *   multiall_health_check_status{node,check}     each rule's reported status (same codes)
 *   multiall_health_check_flapping{node,check}   1 while flapping
 */
import { Gauge, type Registry } from 'prom-client';
import type { HealthMonitor } from './monitor.ts';
import { STATUS_CODE } from './types.ts';

export function registerHealthMetrics(registry: Registry, monitor: HealthMonitor): void {
  new Gauge({
    name: 'multiall_health_status',
    help: 'Node health summary: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, 4 MAINTENANCE',
    labelNames: ['node'],
    registers: [registry],
    collect() {
      this.reset();
      const s = monitor.summary();
      this.set({ node: s.node }, STATUS_CODE[s.status]);
    },
  });
  new Gauge({
    name: 'multiall_health_check_status',
    help: 'Health rule status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN',
    labelNames: ['node', 'check'],
    registers: [registry],
    collect() {
      this.reset();
      const s = monitor.summary();
      for (const c of s.checks) this.set({ node: s.node, check: c.name }, STATUS_CODE[c.status]);
    },
  });
  new Gauge({
    name: 'multiall_health_check_flapping',
    help: '1 while the health rule is flapping',
    labelNames: ['node', 'check'],
    registers: [registry],
    collect() {
      this.reset();
      const s = monitor.summary();
      for (const c of s.checks) this.set({ node: s.node, check: c.name }, c.flapping ? 1 : 0);
    },
  });
}
