/**
 * The parts of a CNI result (spec 0.3.0 – 1.0.0) that berth reads. The result itself is kept as the
 * plugin printed it: it is handed back verbatim as prevResult to the next plugin, to CHECK and DEL.
 */

export interface CniInterface {
  name: string;
  mac?: string;
  /** Set for interfaces inside the container's namespace. */
  sandbox?: string;
}

export interface CniIp {
  /** CIDR notation, e.g. 10.89.0.5/16. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface CniResult {
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIp[];
}

/** The addresses a task got, as clients see them. */
export interface NetworkAddresses {
  /** CIDR notation. */
  ipAddresses: string[];
  gateways: string[];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads a result; throws a plain Error naming what is wrong. */
export function parseCniResult(value: unknown): CniResult {
  if (!isObject(value)) throw new Error('the result is not a JSON object');
  const cniVersion = typeof value.cniVersion === 'string' ? value.cniVersion : '';
  const interfaces = (Array.isArray(value.interfaces) ? value.interfaces : []).filter(isObject).map((i) => ({
    name: String(i.name ?? ''),
    mac: typeof i.mac === 'string' ? i.mac : undefined,
    sandbox: typeof i.sandbox === 'string' && i.sandbox !== '' ? i.sandbox : undefined,
  }));
  const ips = (Array.isArray(value.ips) ? value.ips : []).filter(isObject).map((ip) => {
    if (typeof ip.address !== 'string') throw new Error('an entry of "ips" has no address');
    return {
      address: ip.address,
      gateway: typeof ip.gateway === 'string' ? ip.gateway : undefined,
      interface: typeof ip.interface === 'number' ? ip.interface : undefined,
    };
  });
  return { cniVersion, interfaces, ips };
}

function isLoopback(cidr: string): boolean {
  return cidr.startsWith('127.') || cidr.startsWith('::1/');
}

/**
 * The addresses inside the task's namespace: those on an interface with a sandbox (or with no
 * interface named, which older plugins allow), loopback excluded.
 */
export function taskAddresses(result: CniResult): NetworkAddresses {
  const inside = result.ips.filter((ip) => {
    if (isLoopback(ip.address)) return false;
    if (ip.interface === undefined) return true;
    return result.interfaces[ip.interface]?.sandbox !== undefined;
  });
  return {
    ipAddresses: inside.map((ip) => ip.address),
    gateways: [...new Set(inside.flatMap((ip) => (ip.gateway ? [ip.gateway] : [])))],
  };
}
