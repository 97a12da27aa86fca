import { lookup } from 'node:dns';
import type { LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { NonRetriableError } from '../shared/errors.js';

/** Why an address is refused: the class a refusal names (never the address itself, which may be internal). */
export type AddressClass =
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'multicast'
  | 'unspecified'
  | 'reserved'
  | 'IPv4-mapped or IPv4-compatible';

function blockList(family: 'ipv4' | 'ipv6', nets: ReadonlyArray<readonly [string, number]>): BlockList {
  const list = new BlockList();
  for (const [net, bits] of nets) list.addSubnet(net, bits, family);
  return list;
}

/** Where webhooks may not go unless allowed, by class (a list per class, as BlockList only answers yes or no). */
const INTERNAL_V4: ReadonlyArray<readonly [AddressClass, BlockList]> = [
  ['unspecified', blockList('ipv4', [['0.0.0.0', 8]])],
  ['loopback', blockList('ipv4', [['127.0.0.0', 8]])],
  [
    'private',
    blockList('ipv4', [
      ['10.0.0.0', 8],
      ['100.64.0.0', 10],
      ['172.16.0.0', 12],
      ['192.168.0.0', 16],
    ]),
  ],
  ['link-local', blockList('ipv4', [['169.254.0.0', 16]])],
  ['multicast', blockList('ipv4', [['224.0.0.0', 4]])],
  // IETF protocol assignments, benchmarking, and the former class E (with the broadcast address).
  [
    'reserved',
    blockList('ipv4', [
      ['192.0.0.0', 24],
      ['198.18.0.0', 15],
      ['240.0.0.0', 4],
    ]),
  ],
];
const INTERNAL_V6: ReadonlyArray<readonly [AddressClass, BlockList]> = [
  ['unspecified', blockList('ipv6', [['::', 128]])],
  ['loopback', blockList('ipv6', [['::1', 128]])],
  ['private', blockList('ipv6', [['fc00::', 7]])],
  ['link-local', blockList('ipv6', [['fe80::', 10]])],
  ['multicast', blockList('ipv6', [['ff00::', 8]])],
];

function classIn(
  lists: ReadonlyArray<readonly [AddressClass, BlockList]>,
  address: string,
  family: 'ipv4' | 'ipv6',
): AddressClass | undefined {
  return lists.find(([, list]) => list.check(address, family))?.[0];
}

/** The eight 16-bit groups of a valid IPv6 address: `::` expanded, a trailing dotted IPv4 as two groups. */
function ipv6Groups(address: string): number[] {
  let text = address;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [b0, b1, b2, b3] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const groups = (part: string | undefined) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const [head, tail] = text.split('::');
  const before = groups(head);
  const after = groups(tail);
  const zeros = tail === undefined ? 0 : 8 - before.length - after.length;
  return [...before, ...Array<number>(zeros).fill(0), ...after];
}

/**
 * The IPv4 address an IPv6 one carries in its last 32 bits: NAT64 (`64:ff9b::/96`, which a NAT64 gateway turns
 * into a connection to that IPv4), IPv4-mapped (`::ffff:0:0/96`) and IPv4-compatible (`::/96`).
 */
function embeddedIpv4(
  address: string,
): { kind: 'nat64' | 'mapped' | 'compatible'; ipv4: string } | undefined {
  const g = ipv6Groups(address);
  const ipv4 = [g[6]! >> 8, g[6]! & 255, g[7]! >> 8, g[7]! & 255].join('.');
  const zero = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (g[0] === 0x64 && g[1] === 0xff9b && zero(2, 6)) return { kind: 'nat64', ipv4 };
  if (zero(0, 5) && g[5] === 0xffff) return { kind: 'mapped', ipv4 };
  if (zero(0, 6)) return { kind: 'compatible', ipv4 };
  return undefined;
}

/** An address without its IPv6 zone (`fe80::1%eth0`). */
function withoutZone(address: string): string {
  return address.replace(/%.*$/, '');
}

/**
 * Why a webhook may not reach `address`, or `undefined` when it is public. A NAT64 address is judged as the IPv4
 * address it embeds; IPv4-mapped and IPv4-compatible ones are refused whatever they embed (no public service is
 * reached that way), named by the embedded address's class when it has one.
 */
export function addressClass(address: string): AddressClass | undefined {
  const a = withoutZone(address);
  if (isIP(a) === 4) return classIn(INTERNAL_V4, a, 'ipv4');
  // Not an address at all: refused, the guard fails closed.
  if (isIP(a) !== 6) return 'reserved';
  const own = classIn(INTERNAL_V6, a, 'ipv6');
  if (own) return own;
  const embedded = embeddedIpv4(a);
  if (!embedded) return undefined;
  const inner = classIn(INTERNAL_V4, embedded.ipv4, 'ipv4');
  return embedded.kind === 'nat64' ? inner : (inner ?? 'IPv4-mapped or IPv4-compatible');
}

export function isInternalAddress(address: string): boolean {
  return addressClass(address) !== undefined;
}

function article(c: AddressClass): string {
  return /^[aeiou]/i.test(c) ? 'an' : 'a';
}

/**
 * A webhook the guard refused. Its message (which reaches task events, the DLQ and the dashboard, where viewers
 * read it) names the host as the payload gave it and the class of the address; the resolved address itself is
 * kept in `address`, for the consumer's log only.
 */
export class AddressRefusedError extends NonRetriableError {
  constructor(
    readonly host: string,
    readonly address: string,
    readonly addressClass: AddressClass,
  ) {
    const what = `${article(addressClass)} ${addressClass} address`;
    super(
      `refused: ${host} ${isIP(host) ? 'is' : 'resolves to'} ${what} (no SSRF into the operator's network); allow it with taskconsumer --webhook-allow ${host} (host, *.domain, address or CIDR)`,
    );
  }
}

/** The guard's refusal in an error the HTTP client threw (it arrives wrapped), if that is what it is. */
export function addressRefusalOf(err: unknown): AddressRefusedError | undefined {
  if (err instanceof AddressRefusedError) return err;
  const cause = (err as { cause?: unknown } | null | undefined)?.cause;
  return cause instanceof AddressRefusedError ? cause : undefined;
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
        const f = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
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

  /** An allowed address or CIDR matches the address, or the IPv4 address it embeds. */
  private addressAllowed(address: string): boolean {
    const a = withoutZone(address);
    if (isIP(a) === 4) return this.nets.check(a, 'ipv4');
    const embedded = isIP(a) === 6 ? embeddedIpv4(a) : undefined;
    return this.nets.check(a, 'ipv6') || (embedded !== undefined && this.nets.check(embedded.ipv4, 'ipv4'));
  }

  /** Throws {@link AddressRefusedError} (non-retriable, saying how to allow it) when `host` at `address` is internal and not allowed. */
  check(host: string, address: string): void {
    const refused = addressClass(address);
    if (refused === undefined || this.hostAllowed(host) || this.addressAllowed(address)) return;
    throw new AddressRefusedError(host, address, refused);
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
