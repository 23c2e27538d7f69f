/**
 * Health component (SBM, "System Baseline Monitor").
 *
 * Job: run the baseline rules that apply to this node (per pool, with per-server exceptions),
 * turn check results into statuses OK / WARNING / CRITICAL / UNKNOWN with hysteresis and flap
 * damping, summarise the node (worst rule; MAINTENANCE overrides) and publish changes.
 *
 * Public interface:
 * - rules.ts     parseRule(text, name?), structuredRuleSchema, RuleSyntaxError (column, expected, form)
 * - schema.ts    healthSectionSchema (register as the `health` config section), HealthSettings
 * - baseline.ts  parseHealthSettings, mergePoolSections, rulesForNode, BaselineError
 * - monitor.ts   HealthMonitor({ node, rules, bus?, logger?, history? }): start, stop, runCycle,
 *                setMaintenance, summary
 * - metrics.ts   registerHealthMetrics(registry, monitor)
 * - types.ts     Status, Rule, Observation, Check, HistorySink, HistoryEntry
 * - checks/      one Check per kind (cpu, load, memory, swap, disk, process, tcp, http, dns,
 *                file, postgres, mysql, command) and createCheck(rule)
 *
 * Depends on: src/events/bus.ts ('health.changed'), src/log/logger.ts, zod, prom-client, Node's
 * fs/net/http/dns/child_process and Linux /proc. Consumers: membership (publishes the summary
 * in member metadata), failover (elects among healthy members), the API and dashboard.
 * Grammar and semantics: docs/health.md.
 */
export { parseRule, structuredRuleSchema, RuleSyntaxError, renderRule, KINDS } from './rules.ts';
export { healthSectionSchema, ruleEntrySchema, exceptionSchema, type HealthSettings, type RuleException } from './schema.ts';
export { parseHealthSettings, mergePoolSections, rulesForNode, BaselineError, type BaselineProblem } from './baseline.ts';
export { HealthMonitor, type HealthMonitorOptions, type HealthSummary, type CheckSummary } from './monitor.ts';
export { registerHealthMetrics } from './metrics.ts';
export { createCheck } from './checks/index.ts';
export { RuleState, RuleRunner, runWithTimeout, percentStateChange, type CycleResult } from './runner.ts';
export type { Status, CheckStatus, Rule, Observation, Check, HistorySink, HistoryEntry, PerfData } from './types.ts';
export { worst, STATUS_CODE } from './types.ts';
