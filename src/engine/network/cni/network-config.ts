/**
 * CNI network configuration lists ("conflists"), as the CNI spec 1.0 defines them: a name, a
 * cniVersion and the plugins that ADD runs in order. Parsed and checked before any plugin runs, so a
 * mistake is reported with the field it is about instead of surfacing as a plugin's error.
 */

/** Spec versions whose results berth reads. CHECK exists from 0.4.0. */
export const SUPPORTED_CNI_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] as const;

/** One plugin of a list: its own keys are passed through to it untouched. */
export interface PluginConfig {
  type: string;
  /** Runtime-supplied arguments the plugin accepts (e.g. portMappings, ips). */
  capabilities: Record<string, boolean>;
  /** The plugin's JSON object, exactly as configured. */
  raw: Record<string, unknown>;
}

export interface NetworkConfigList {
  cniVersion: string;
  name: string;
  disableCheck: boolean;
  plugins: PluginConfig[];
}

export class NetworkConfigError extends Error {
  override readonly name = 'NetworkConfigError';
  constructor(
    /** Path of the offending field, e.g. "plugins[1].type". */
    readonly field: string,
    readonly detail: string,
    source: string,
  ) {
    super(`${source}: ${field}: ${detail}`);
  }
}

const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const PLUGIN_TYPE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks a parsed conflist. `source` names where it came from (a file, or a config key) in error
 * messages. A single plugin's configuration (no `plugins` key, a `type` instead) is accepted as a
 * list of one, as libcni does.
 */
export function parseNetworkConfigList(value: unknown, source: string): NetworkConfigList {
  const fail = (field: string, detail: string): never => {
    throw new NetworkConfigError(field, detail, source);
  };
  if (!isObject(value)) return fail('(root)', 'must be a JSON object');
  const cniVersion = value.cniVersion;
  if (typeof cniVersion !== 'string') return fail('cniVersion', `must be a string (got ${JSON.stringify(cniVersion)})`);
  if (!(SUPPORTED_CNI_VERSIONS as readonly string[]).includes(cniVersion)) {
    fail('cniVersion', `"${cniVersion}" is not one berth speaks (${SUPPORTED_CNI_VERSIONS.join(', ')})`);
  }
  const name = value.name;
  if (typeof name !== 'string' || !NETWORK_NAME.test(name)) fail('name', `must match ${NETWORK_NAME.source} (got ${JSON.stringify(name)})`);
  const disableCheck = value.disableCheck ?? false;
  if (typeof disableCheck !== 'boolean') fail('disableCheck', `must be true or false (got ${JSON.stringify(disableCheck)})`);

  const single = value.plugins === undefined && value.type !== undefined;
  const rawPlugins = single ? [Object.fromEntries(Object.entries(value).filter(([k]) => k !== 'cniVersion' && k !== 'name'))] : value.plugins;
  if (!Array.isArray(rawPlugins) || rawPlugins.length === 0) return fail('plugins', 'must be a non-empty list of plugin configurations');
  const plugins = rawPlugins.map((raw: unknown, i): PluginConfig => {
    const at = single ? '' : `plugins[${i}].`;
    if (!isObject(raw)) return fail(`plugins[${i}]`, 'must be a JSON object');
    if (typeof raw.type !== 'string' || !PLUGIN_TYPE.test(raw.type)) fail(`${at}type`, `must name a plugin executable, matching ${PLUGIN_TYPE.source} (got ${JSON.stringify(raw.type)})`);
    const capabilities = raw.capabilities ?? {};
    if (!isObject(capabilities) || !Object.values(capabilities).every((v) => typeof v === 'boolean')) {
      fail(`${at}capabilities`, 'must map capability names to true or false');
    }
    for (const reserved of ['prevResult', 'runtimeConfig'] as const) {
      if (raw[reserved] !== undefined) fail(`${at}${reserved}`, 'is set by the runtime and must not be configured');
    }
    if (raw.ipam !== undefined && (!isObject(raw.ipam) || typeof raw.ipam.type !== 'string')) fail(`${at}ipam.type`, 'must name an IPAM plugin');
    return { type: raw.type as string, capabilities: capabilities as Record<string, boolean>, raw };
  });
  return { cniVersion, name: name as string, disableCheck: disableCheck as boolean, plugins };
}

/** The conflist as JSON, the way it is stored with an attachment (so DEL uses what ADD used). */
export function networkConfigListJson(list: NetworkConfigList): Record<string, unknown> {
  return { cniVersion: list.cniVersion, name: list.name, disableCheck: list.disableCheck, plugins: list.plugins.map((p) => p.raw) };
}

/** True when the version has the CHECK command (0.4.0 and later). */
export function supportsCheck(cniVersion: string): boolean {
  return cniVersion !== '0.3.0' && cniVersion !== '0.3.1';
}

/** What shapes berth's default network: its subnet (IPv4 CIDR) and the bridge its tasks are on. */
export interface DefaultNetworkShape {
  subnet: string;
  bridge: string;
}

export const DEFAULT_NETWORK_SHAPE: DefaultNetworkShape = { subnet: '10.89.0.0/16', bridge: 'berth0' };

/**
 * berth's default network for the `task` mode: a bridge with host-local addresses (the bridge the
 * gateway), then host port mappings through portmap. No loopback plugin: berth brings `lo` up
 * itself in each namespace it makes (NetworkNamespaces.create), as Docker does in its containers'
 * namespaces, for a fraction of a plugin's start. The bridge plugin does not masquerade (`ipMasq`
 * would make a chain and rules for every task, eight iptables runs at each ADD and DEL): berth
 * masquerades the whole subnet with one rule (SubnetMasquerade).
 */
export function defaultNetworkConfigList(shape: DefaultNetworkShape = DEFAULT_NETWORK_SHAPE): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: 'berth',
    plugins: [
      {
        type: 'bridge',
        bridge: shape.bridge,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: shape.subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  };
}

/**
 * The default network for a task that maps no host port: without portmap, which would be given no
 * mapping and do nothing at ADD and DEL but start (a Go program, about 12 ms of CPU each time). The
 * list ADD used is kept with the attachment, so DEL runs the same plugins.
 */
export function withoutPortMapping(list: NetworkConfigList): NetworkConfigList {
  return { ...list, plugins: list.plugins.filter((plugin) => plugin.type !== 'portmap') };
}

/**
 * An IPv4 subnet in CIDR notation with its host bits zero and room for a gateway and tasks (a prefix
 * of 8 to 30 bits), as written; an error saying what is wrong otherwise.
 */
export function checkIpv4Subnet(text: string): { ok: true } | { ok: false; detail: string } {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  if (!match) return { ok: false, detail: `must be an IPv4 subnet such as "10.89.0.0/16" (got ${JSON.stringify(text)})` };
  const octets = match.slice(1, 5).map(Number);
  const prefix = Number(match[5]);
  if (octets.some((o) => o > 255)) return { ok: false, detail: `${JSON.stringify(text)} is not an IPv4 address` };
  if (prefix < 8 || prefix > 30) return { ok: false, detail: `the prefix must be 8 to 30 bits, room for a gateway and tasks (got /${prefix})` };
  const address = octets.reduce((n, o) => n * 256 + o, 0);
  const hostBits = 2 ** (32 - prefix);
  if (address % hostBits !== 0) {
    const network = address - (address % hostBits);
    const dotted = [24, 16, 8, 0].map((shift) => Math.floor(network / 2 ** shift) % 256).join('.');
    return { ok: false, detail: `${JSON.stringify(text)} has host bits set: the subnet is ${dotted}/${prefix}` };
  }
  return { ok: true };
}
