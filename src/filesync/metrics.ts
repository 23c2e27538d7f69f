/**
 * Prometheus export of file sync, read from the trees' status at scrape time (values since the
 * agent started, except entries and paused):
 *   multiall_files_bytes{tree,kind}    received | sent (delta ops), signature_sent | signature_received,
 *                                      resumed (taken from partial files instead of fetched again)
 *   multiall_files_files{tree,kind}    pulled | copied_locally | deleted | metadata_only | reverted
 *   multiall_files_entries{tree,kind}  live | tombstone | conflict (conflict copies recorded)
 *   multiall_files_paused{tree}        1 while the tree is paused
 *   multiall_files_bad_requests{method} peers' requests refused as malformed (bad_request)
 * Depends on: prom-client, service.ts (status()).
 */
import { Gauge, type Registry } from 'prom-client';
import type { FileSyncService, TreeStatus } from './service.ts';

function gauge(registry: Registry, service: FileSyncService, name: string, help: string, labelNames: string[], read: (t: TreeStatus) => Record<string, number>): void {
  new Gauge({
    name, help, labelNames, registers: [registry],
    collect() {
      this.reset();
      for (const t of service.status()) {
        for (const [kind, v] of Object.entries(read(t))) this.set(labelNames.length === 1 ? { tree: t.tree } : { tree: t.tree, kind }, v);
      }
    },
  });
}

export function registerFilesMetrics(registry: Registry, service: FileSyncService): void {
  gauge(registry, service, 'multiall_files_bytes', 'File sync content bytes since the agent started, by kind', ['tree', 'kind'], (t) => ({
    received: t.bytes.received, sent: t.bytes.sent, signature_sent: t.bytes.sigSent, signature_received: t.bytes.sigReceived, resumed: t.bytes.resumed,
  }));
  gauge(registry, service, 'multiall_files_files', 'Files applied since the agent started, by how', ['tree', 'kind'], (t) => ({
    pulled: t.files.pulled, copied_locally: t.files.copiedLocally, deleted: t.files.deleted, metadata_only: t.files.metadataOnly, reverted: t.files.reverted,
  }));
  gauge(registry, service, 'multiall_files_entries', 'Index entries of a tree', ['tree', 'kind'], (t) => ({ live: t.entries, tombstone: t.tombstones, conflict: t.conflicts }));
  gauge(registry, service, 'multiall_files_paused', '1 while the tree is paused (root guard, mass-delete guard)', ['tree'], (t) => ({ paused: t.paused === null ? 0 : 1 }));
  new Gauge({
    name: 'multiall_files_bad_requests', help: 'File sync requests from peers refused as malformed since the agent started', labelNames: ['method'], registers: [registry],
    collect() {
      this.reset();
      for (const [method, n] of Object.entries(service.badRequests())) this.set({ method }, n);
    },
  });
}
