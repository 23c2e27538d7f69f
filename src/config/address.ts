/**
 * "host:port" strings as written in the config (`join`, `api.tcp`): IPv4 or a hostname as
 * `host:port`, IPv6 always in brackets as `[::1]:7946`.
 */
import { isIP, isIPv4, isIPv6 } from 'node:net';

export type HostPortResult = { ok: true; host: string; port: number } | { ok: false; error: string };

const HOSTNAME_LABEL = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

/** True for an RFC 1123 host name (letters, digits, '-', dot-separated labels of 1-63, at most 253). */
export function isHostname(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  const name = s.endsWith('.') ? s.slice(0, -1) : s;
  if (/^[0-9.]+$/.test(name)) return false; // looks like an IPv4 address, and is not a valid one
  return name.split('.').every((label) => HOSTNAME_LABEL.test(label));
}

/** True for a literal IPv4 or IPv6 address (no brackets, no port). */
export function isIpAddress(s: string): boolean {
  return isIP(s) !== 0;
}

/** True for the wildcard addresses 0.0.0.0 and :: (listen on every interface). */
export function isWildcardAddress(s: string): boolean {
  if (isIPv4(s)) return s === '0.0.0.0';
  if (isIPv6(s)) return /^[0:]+$/.test(s);
  return false;
}

/** Checks a port number: an integer from 1 to 65535. */
export function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/**
 * Parses "host:port". With `ipOnly`, the host must be an IP literal (a listener's bind address);
 * otherwise a host name is accepted too. IPv6 must be bracketed: "[fd00::1]:7946".
 */
export function parseHostPort(s: string, opts: { ipOnly?: boolean } = {}): HostPortResult {
  const example = opts.ipOnly ? '127.0.0.1:7951 or [::1]:7951' : '10.0.0.2:7946, node2.example.com:7946 or [fd00::2]:7946';
  if (s.length === 0) return { ok: false, error: `empty address; expected host:port, e.g. ${example}` };
  if (/\s/.test(s)) return { ok: false, error: `${JSON.stringify(s)} contains white space; expected host:port, e.g. ${example}` };
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) return { ok: false, error: `${JSON.stringify(s)} has "[" without "]"; write IPv6 as [addr]:port, e.g. [::1]:7946` };
    host = s.slice(1, close);
    if (!isIPv6(host)) return { ok: false, error: `${JSON.stringify(host)} in brackets is not an IPv6 address` };
    const rest = s.slice(close + 1);
    if (!rest.startsWith(':')) return { ok: false, error: `${JSON.stringify(s)} has no port; expected [addr]:port, e.g. [${host}]:7946` };
    portText = rest.slice(1);
  } else {
    const last = s.lastIndexOf(':');
    if (last < 0) return { ok: false, error: `${JSON.stringify(s)} has no port; expected host:port, e.g. ${example}` };
    if (s.indexOf(':') !== last) {
      return { ok: false, error: `${JSON.stringify(s)}: write an IPv6 address in brackets, as [addr]:port (e.g. [::1]:7946)` };
    }
    host = s.slice(0, last);
    portText = s.slice(last + 1);
    if (host.length === 0) return { ok: false, error: `${JSON.stringify(s)} has no host; expected host:port, e.g. ${example}` };
    if (!isIPv4(host)) {
      if (opts.ipOnly) return { ok: false, error: `${JSON.stringify(host)} is not an IP address; a listener needs an IPv4 or [IPv6] address` };
      if (!isHostname(host)) return { ok: false, error: `${JSON.stringify(host)} is neither an IPv4 address nor a valid host name` };
    }
  }
  if (!/^[0-9]{1,5}$/.test(portText)) {
    return { ok: false, error: `port ${JSON.stringify(portText)} is not a number from 1 to 65535` };
  }
  const port = Number(portText);
  if (!isPort(port)) return { ok: false, error: `port ${port} is out of range (1-65535)` };
  return { ok: true, host, port };
}

/** "host:port", bracketing IPv6 literals. */
export function formatHostPort(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}
