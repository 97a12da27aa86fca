import { lookup } from 'node:dns';
import type { LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { NonRetriableError } from '../shared/errors.js';

/** Where webhooks may not go unless allowed: loopback, private, link-local, unique-local and unspecified ranges. */
const INTERNAL = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['224.0.0.0', 4],
] as const)
  INTERNAL.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  INTERNAL.addSubnet(net, bits, 'ipv6');

function family(address: string): 'ipv4' | 'ipv6' {
  return isIP(address) === 6 ? 'ipv6' : 'ipv4';
}

/** `::ffff:10.0.0.1` is 10.0.0.1. */
function unmapped(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

export function isInternalAddress(address: string): boolean {
  const a = unmapped(address);
  return INTERNAL.check(a, family(a));
}

/**
 * `--webhook-allow` patterns: a host name (`hooks.internal`), a wildcard (`*.corp.example`), an address or a CIDR
 * (`10.1.0.0/16`). A match lets a webhook reach an internal address; everything public is allowed anyway.
 */
export class AddressGuard {
  private readonly hosts = new Set<string>();
  private readonly suffixes: string[] = [];
  private readonly nets = new BlockList();

  constructor(readonly patterns: readonly string[]) {
    for (const raw of patterns) {
      const p = raw.trim().toLowerCase();
      if (p === '') continue;
      const [addr, bits] = p.split('/');
      if (addr && isIP(addr)) {
        const f = family(addr);
        if (bits === undefined) this.nets.addAddress(addr, f);
        else this.nets.addSubnet(addr, Number(bits), f);
      } else if (p.startsWith('*.')) this.suffixes.push(p.slice(1));
      else this.hosts.add(p);
    }
  }

  private hostAllowed(host: string): boolean {
    const h = host.toLowerCase();
    return this.hosts.has(h) || this.suffixes.some((s) => h.endsWith(s));
  }

  /** Throws (non-retriable, saying how to allow it) when `host` at `address` is internal and not allowed. */
  check(host: string, address: string): void {
    if (!isInternalAddress(address) || this.hostAllowed(host)) return;
    const a = unmapped(address);
    if (this.nets.check(a, family(a))) return;
    throw new NonRetriableError(
      `refused: ${host}${host === address ? '' : ` resolves to ${address}, which`} is a loopback, private or link-local address (no SSRF into the operator's network); allow it with taskconsumer --webhook-allow ${host === address ? address : host} (host, *.domain, address or CIDR)`,
    );
  }

  /**
   * A `lookup` for the HTTP client: resolves, then checks every address before the connection is made to one of
   * them (the address checked is the address used: no DNS-rebinding window).
   */
  lookup = (
    hostname: string,
    options: { family?: number | string; all?: boolean },
    callback: (err: Error | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    lookup(hostname, { all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      try {
        for (const a of addresses) this.check(hostname, a.address);
      } catch (refused) {
        return callback(refused as Error, '');
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(new Error(`${hostname} has no address`), '');
      return callback(null, first.address, first.family);
    });
  };
}
