/** IPv4 addresses and CIDR prefixes, as the network model checks address spaces, subnets and rules. */

export interface Cidr {
  /** The network address as an unsigned 32-bit number. */
  base: number;
  bits: number;
}

export function parseAddress(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255))
    return undefined;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

const mask = (bits: number): number => (bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);

/**
 * "10.0.0.0/16". A prefix with host bits set ("10.0.0.1/16") is refused by Azure with the prefix it
 * should have been, which `canonical` carries.
 */
export function parseCidr(text: string): { cidr?: Cidr; canonical?: string } {
  const match = /^([\d.]+)\/(\d{1,2})$/.exec(text);
  const address = match ? parseAddress(match[1]!) : undefined;
  const bits = match ? Number(match[2]) : NaN;
  if (address === undefined || !(bits >= 0 && bits <= 32)) return {};
  const base = (address & mask(bits)) >>> 0;
  if (base !== address) return { canonical: `${formatAddress(base)}/${bits}` };
  return { cidr: { base, bits } };
}

export const formatAddress = (n: number): string =>
  [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");

export const contains = (outer: Cidr, inner: Cidr): boolean =>
  inner.bits >= outer.bits && (inner.base & mask(outer.bits)) >>> 0 === outer.base;

export const overlaps = (a: Cidr, b: Cidr): boolean => contains(a, b) || contains(b, a);
