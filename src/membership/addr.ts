/**
 * "host:port" addresses as gossiped. IPv6 literals are bracketed ("[::1]:7946") so they survive
 * the join-string round trip (serf#286, consul#9241).
 */
import { isIP } from 'node:net';

export const DEFAULT_PORT = 7946;

export class AddressError extends Error {
  override name = 'AddressError';
}

export interface HostPort {
  host: string;
  port: number;
}

export function formatAddr(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Parse "host", "host:port", "[v6]" or "[v6]:port"; a bare IPv6 literal is accepted too. */
export function parseAddr(s: string, defaultPort = DEFAULT_PORT): HostPort {
  if (typeof s !== 'string' || s.length === 0 || s.length > 300) {
    throw new AddressError(`invalid address ${JSON.stringify(s)}: expected "host:port"`);
  }
  let host: string;
  let portStr: string | undefined;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0) throw new AddressError(`invalid address ${JSON.stringify(s)}: missing "]"`);
    host = s.slice(1, end);
    const rest = s.slice(end + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) throw new AddressError(`invalid address ${JSON.stringify(s)}: junk after "]"`);
      portStr = rest.slice(1);
    }
    if (isIP(host) !== 6) throw new AddressError(`invalid address ${JSON.stringify(s)}: ${JSON.stringify(host)} is not an IPv6 literal`);
  } else if (isIP(s) === 6) {
    host = s;
  } else {
    const i = s.lastIndexOf(':');
    if (i >= 0) {
      host = s.slice(0, i);
      portStr = s.slice(i + 1);
    } else {
      host = s;
    }
    if (host === '' || !/^[A-Za-z0-9._-]+$/.test(host)) {
      throw new AddressError(`invalid address ${JSON.stringify(s)}: bad host ${JSON.stringify(host)}`);
    }
  }
  let port = defaultPort;
  if (portStr !== undefined) {
    if (!/^\d{1,5}$/.test(portStr) || Number(portStr) < 1 || Number(portStr) > 65535) {
      throw new AddressError(`invalid address ${JSON.stringify(s)}: port must be 1..65535`);
    }
    port = Number(portStr);
  }
  return { host, port };
}
