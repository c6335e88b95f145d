import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireBinary, waitUntil } from './processes.js';

/** Debian's containernetworking-plugins. */
export const CNI_PLUGIN_DIR = '/usr/lib/cni';

/**
 * A CNI network of the tests' own: a bridge with a random name and a random /24 of 10.200.0.0/13,
 * addresses kept by host-local in a temporary directory, loopback first and portmap last, as in
 * berth's default list. Nothing is shared with another test or with the host's networks.
 */
export interface TestNetwork {
  name: string;
  bridge: string;
  subnet: string;
  /** host-local's store. */
  ipamDir: string;
  /** The conflist, as berth's config takes it inline. */
  config: Record<string, unknown>;
  /** Addresses host-local holds for the network. */
  allocatedAddresses(): string[];
  /** Interfaces attached to the bridge (veth host ends). */
  bridgePorts(): string[];
  /** NAT rules the plugins made for this network (masquerading, port mappings) still in place. */
  natRules(): string[];
  /** Deletes the bridge and the temporary directory. */
  remove(): void;
}

/**
 * A random /24 of 10.200.0.0/13 that no route of the host covers yet: test files run side by side
 * (scripts/test-lanes.ts), each with networks of its own.
 */
export function unusedSubnet(): string {
  let subnet = '';
  for (let attempt = 0; attempt < 20; attempt++) {
    subnet = `10.${200 + randomInt(8)}.${randomInt(256)}.0/24`;
    if (execFileSync('ip', ['-4', 'route', 'show', 'to', 'match', subnet.replace('.0/24', '.1')], { encoding: 'utf8' }).includes(subnet)) continue;
    return subnet;
  }
  return subnet;
}

export function createTestNetwork(options: { plugins?: (defaults: Record<string, unknown>[]) => Record<string, unknown>[] } = {}): TestNetwork {
  requireBinary(join(CNI_PLUGIN_DIR, 'bridge'), 'containernetworking-plugins');
  requireBinary('/usr/sbin/iptables', 'iptables');
  const id = randomBytes(3).toString('hex');
  const name = `berth-test-${id}`;
  const bridge = `bt${id}`;
  const subnet = unusedSubnet();
  const dir = mkdtempSync(join(tmpdir(), 'berth-cni-'));
  const ipamDir = join(dir, 'ipam');
  const defaults: Record<string, unknown>[] = [
    { type: 'loopback' },
    {
      type: 'bridge',
      bridge,
      isGateway: true,
      ipMasq: true,
      hairpinMode: true,
      ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir: ipamDir },
    },
    { type: 'portmap', capabilities: { portMappings: true }, snat: true },
  ];
  const plugins = options.plugins ? options.plugins(defaults) : defaults;
  return {
    name,
    bridge,
    subnet,
    ipamDir,
    config: { cniVersion: '1.0.0', name, plugins },
    allocatedAddresses() {
      const store = join(ipamDir, name);
      if (!existsSync(store)) return [];
      return readdirSync(store).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip'));
    },
    natRules() {
      const rules = execFileSync('iptables', ['-t', 'nat', '-S'], { encoding: 'utf8' }).split('\n');
      return rules.filter((rule) => rule.includes(`name: \\"${name}\\"`));
    },
    bridgePorts() {
      if (!existsSync(`/sys/class/net/${bridge}`)) return [];
      return readdirSync(`/sys/class/net/${bridge}/brif`);
    },
    remove() {
      if (existsSync(`/sys/class/net/${bridge}`)) execFileSync('ip', ['link', 'delete', bridge]);
      removeNatRules(name);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Deletes the NAT rules the plugins left for network `name` (a test that failed before its task
 * stopped leaves them) and the chains they jump to: a stale DNAT of a host port would send the
 * next test's traffic on that port to an address nobody has.
 */
function removeNatRules(name: string): void {
  const rules = execFileSync('iptables', ['-t', 'nat', '-S'], { encoding: 'utf8' })
    .split('\n')
    .filter((rule) => rule.startsWith('-A ') && rule.includes(`name: \\"${name}\\"`));
  const chains = new Set<string>();
  for (const rule of rules) {
    const target = / -j (CNI-[A-Za-z0-9-]+)/.exec(rule)?.[1];
    if (target && !['CNI-HOSTPORT-SETMARK', 'CNI-HOSTPORT-MASQ', 'CNI-HOSTPORT-DNAT'].includes(target)) chains.add(target);
    // -S prints each rule as a shell would quote it: deleted through sh, as it was printed.
    spawnSync('sh', ['-c', `iptables -t nat ${rule.replace(/^-A /, '-D ')}`], { stdio: 'ignore' });
  }
  for (const chain of chains) {
    spawnSync('iptables', ['-t', 'nat', '-F', chain], { stdio: 'ignore' });
    spawnSync('iptables', ['-t', 'nat', '-X', chain], { stdio: 'ignore' });
  }
}

/** A network namespace made with `ip netns add`, for tests of the invoker without a container. */
export function createNamespace(): { name: string; path: string; exec(args: string[]): string; remove(): void } {
  const name = `berth-test-${randomBytes(4).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name]);
  return {
    name,
    path: `/run/netns/${name}`,
    exec: (args) => execFileSync('ip', ['netns', 'exec', name, ...args], { encoding: 'utf8' }),
    remove() {
      if (existsSync(`/run/netns/${name}`)) execFileSync('ip', ['netns', 'delete', name]);
    },
  };
}

/**
 * berth's default network list on a subnet and bridge of a test's own (`network.cni.subnet` and
 * `network.cni.bridge`): berth masquerades the subnet itself. host-local keeps its addresses in the
 * default network's store, which other tests' agents share on other subnets.
 */
export interface DefaultShapedNetwork {
  subnet: string;
  bridge: string;
  /** The `network` section of an agent's config that uses it. */
  agentSettings: { cni: Record<string, unknown> };
  /** Addresses host-local holds in the subnet. */
  allocatedAddresses(): string[];
  /** The nat table's rules that masquerade the subnet. */
  masqueradeRules(): string[];
  /** Deletes the masquerading rules, the bridge and any address a failed test left held. */
  remove(): void;
}

const DEFAULT_NETWORK_STORE = '/var/lib/cni/networks/berth';

export function createDefaultShapedNetwork(): DefaultShapedNetwork {
  const subnet = unusedSubnet();
  const bridge = `bd${randomBytes(3).toString('hex')}`;
  const prefix = subnet.replace(/\.0\/24$/, '.');
  const allocatedAddresses = () => (existsSync(DEFAULT_NETWORK_STORE) ? readdirSync(DEFAULT_NETWORK_STORE).filter((f) => f.startsWith(prefix)) : []);
  const masqueradeRules = () =>
    execFileSync('iptables', ['-t', 'nat', '-S', 'POSTROUTING'], { encoding: 'utf8' })
      .split('\n')
      .filter((rule) => rule.includes(`berth: masquerade task network ${subnet}`));
  return {
    subnet,
    bridge,
    // `config` unset: berth's default list.
    agentSettings: { cni: { config: undefined, subnet, bridge } },
    allocatedAddresses,
    masqueradeRules,
    remove() {
      for (const rule of masqueradeRules()) spawnSync('sh', ['-c', `iptables -t nat ${rule.replace(/^-A /, '-D ')}`], { stdio: 'ignore' });
      if (existsSync(`/sys/class/net/${bridge}`)) execFileSync('ip', ['link', 'delete', bridge]);
      for (const address of allocatedAddresses()) rmSync(join(DEFAULT_NETWORK_STORE, address));
    },
  };
}

/** A host beyond the task networks, reached through the host (see `startOutsideHost`). */
export interface OutsideHost {
  /** Its address. */
  address: string;
  /** The host's address on the link to it: what masqueraded traffic comes from. */
  hostAddress: string;
  /** The TCP port it answers on, with the address each connection came from. */
  port: number;
  remove(): void;
}

/**
 * A host beyond the task networks, for tests of their outbound traffic: a network namespace joined
 * to the host by a veth pair on a /24 of its own, with no route back to any task subnet, so an
 * answer reaches a task only when the task's traffic was masqueraded to the host's address. It
 * serves one TCP port, answering each connection with the address it came from.
 */
export async function startOutsideHost(): Promise<OutsideHost> {
  const base = unusedSubnet().replace(/\.0\/24$/, '');
  const [hostAddress, address, port] = [`${base}.1`, `${base}.2`, 7070];
  const ns = createNamespace();
  const hostEnd = `bo${randomBytes(3).toString('hex')}`;
  let server: ReturnType<typeof spawn> | undefined;
  const remove = () => {
    server?.kill('SIGKILL');
    ns.remove();
    // The pair goes with the namespace, a moment later.
    spawnSync('ip', ['link', 'delete', hostEnd], { stdio: 'ignore' });
  };
  try {
    execFileSync('ip', ['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
    execFileSync('ip', ['addr', 'add', `${hostAddress}/24`, 'dev', hostEnd]);
    execFileSync('ip', ['link', 'set', hostEnd, 'up']);
    for (const args of [
      ['addr', 'add', `${address}/24`, 'dev', 'eth0'],
      ['link', 'set', 'eth0', 'up'],
      ['link', 'set', 'lo', 'up'],
    ])
      execFileSync('ip', ['-n', ns.name, ...args]);
    const script = `require('net').createServer((s) => s.end(s.remoteAddress + '\\n')).listen(${port}, '${address}', () => console.log('listening'))`;
    server = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    server.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await waitUntil('the outside host serving', 10_000, async () => (out.includes('listening') ? true : undefined));
    return { address, hostAddress, port, remove };
  } catch (error) {
    remove();
    throw error;
  }
}

/** Writes an executable shell script into a new directory; returns the directory. */
export function scriptPlugin(type: string, script: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-plugin-'));
  const path = join(dir, type);
  writeFileSync(path, `#!/bin/sh\n${script}\n`);
  chmodSync(path, 0o755);
  return dir;
}

/**
 * A process in a network namespace of its own (`unshare --net sleep`), standing in for a pause
 * container in tests of the networking without a runtime. Resolves once it is in its namespace.
 */
export async function startNamespaceHolder(): Promise<{ pid: number; stop(): void }> {
  const child = spawn('unshare', ['--net', 'sleep', '600'], { stdio: 'ignore' });
  const own = readlinkSync('/proc/self/ns/net');
  await waitUntil('the holder is in a namespace of its own', 5000, async () => {
    const theirs = readlinkSync(`/proc/${child.pid}/ns/net`);
    // Before exec, the child is still in ours; `unshare` then execs sleep in the new one.
    return theirs !== own && readlinkSync(`/proc/${child.pid}/exe`).endsWith('sleep') ? true : undefined;
  });
  return { pid: child.pid!, stop: () => child.kill('SIGKILL') };
}
