/**
 * Network topology: which members may talk to each other directly, and through which relay
 * ("Princess Bee Host") a member of another network is reached.
 *
 * Rule (symmetric): a and b talk directly when they are the same member, in the same network,
 * in networks that list each other (either way) as `direct`, or when either of them is a relay.
 * So everyone reaches the relays of every network, relays reach everyone, and a member of another
 * network that is not a relay is reached through a relay of *its* network.
 *
 * A member's network is its metadata `net`; it is a relay when its metadata says `relay: true`
 * or when it is listed in its own network's `relays` in the local config. Members whose network
 * is unknown (no `net`, or a network the config does not declare) are treated as reachable, so a
 * member with incomplete information is never cut off. With no networks configured, everyone
 * reaches everyone.
 *
 * Public interface: Topology (canReach, isRelay, networkOf, relaysOf, route), NoRouteError.
 * Depends on nothing (Memberlist calls canReach from its target selection).
 */

export interface NetworkSpec {
  name: string;
  relays: string[];
  /** Networks whose members this network's members reach directly (both ways). */
  direct?: string[];
}

/** The two things the rule looks at: a member's name and its gossiped metadata. */
export interface TopoMember {
  name: string;
  meta: Record<string, unknown>;
}

export type Route = { via: 'direct' } | { via: 'relay'; relay: string };

export class NoRouteError extends Error {
  override name = 'NoRouteError';
}

export class Topology {
  readonly #nets = new Map<string, { relays: Set<string>; direct: Set<string> }>();

  constructor(networks: NetworkSpec[]) {
    for (const n of networks) this.#nets.set(n.name, { relays: new Set(n.relays), direct: new Set(n.direct ?? []) });
  }

  /** True when the config declares more than one network (otherwise the rule never restricts). */
  get restricts(): boolean {
    return this.#nets.size > 1;
  }

  networkOf(m: TopoMember): string {
    return typeof m.meta.net === 'string' ? m.meta.net : '';
  }

  isRelay(m: TopoMember): boolean {
    if (m.meta.relay === true) return true;
    return this.#nets.get(this.networkOf(m))?.relays.has(m.name) ?? false;
  }

  /** Relay names configured for a network (members advertising relay: true are added by route()). */
  relaysOf(network: string): string[] {
    return [...(this.#nets.get(network)?.relays ?? [])];
  }

  canReach(a: TopoMember, b: TopoMember): boolean {
    if (a.name === b.name || !this.restricts) return true;
    const na = this.networkOf(a);
    const nb = this.networkOf(b);
    if (na === nb) return true;
    const da = this.#nets.get(na);
    const db = this.#nets.get(nb);
    if (!da || !db) return true; // unknown network: do not cut it off
    if (this.isRelay(a) || this.isRelay(b)) return true;
    return da.direct.has(nb) || db.direct.has(na);
  }

  /**
   * How `self` reaches `peer`: directly, or through the relay of the peer's network with the
   * smallest estimated RTT (`rtt(name)` in ms, undefined when unknown; ties and unknowns by name).
   * `live` are the candidates (alive members). Throws NoRouteError when no live relay exists.
   */
  route(self: TopoMember, peer: TopoMember, live: TopoMember[], rtt: (name: string) => number | undefined): Route {
    if (this.canReach(self, peer)) return { via: 'direct' };
    const net = this.networkOf(peer);
    const relays = live.filter((m) => m.name !== self.name && m.name !== peer.name && this.networkOf(m) === net && this.isRelay(m) && this.canReach(self, m));
    if (relays.length === 0) throw new NoRouteError(`${peer.name} (network ${net}) is not directly reachable from ${self.name} and network ${net} has no live relay`);
    const key = (m: TopoMember) => rtt(m.name) ?? Infinity;
    relays.sort((x, y) => key(x) - key(y) || (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
    return { via: 'relay', relay: (relays[0] as TopoMember).name };
  }
}
