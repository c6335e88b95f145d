import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { CniError, parsePluginError } from '../../src/engine/network/cni/cni-error.js';
import { cniArgs } from '../../src/engine/network/cni/cni-invoker.js';
import { parseCniResult, taskAddresses } from '../../src/engine/network/cni/cni-result.js';
import { NetworkConfigError, parseNetworkConfigList } from '../../src/engine/network/cni/network-config.js';

function withFile(name: string, content: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'berth-cni-config-')), name);
  writeFileSync(file, content);
  return file;
}

const fieldOf = (value: unknown) => {
  try {
    parseNetworkConfigList(value, 'test');
  } catch (error) {
    assert.ok(error instanceof NetworkConfigError);
    return error.field;
  }
  return undefined;
};

describe('CNI network configuration lists', () => {
  it('accepts a list and a single plugin configuration (as a list of one)', () => {
    const list = parseNetworkConfigList({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'bridge', capabilities: { portMappings: false } }] }, 'test');
    assert.equal(list.plugins[0]!.type, 'bridge');
    assert.equal(list.disableCheck, false);
    const single = parseNetworkConfigList({ cniVersion: '0.4.0', name: 'n', type: 'bridge', bridge: 'b0' }, 'test');
    assert.deepEqual(single.plugins[0]!.raw, { type: 'bridge', bridge: 'b0' });
  });

  it('names the field of every mistake', () => {
    assert.equal(fieldOf([]), '(root)');
    assert.equal(fieldOf({ name: 'n', plugins: [{ type: 'x' }] }), 'cniVersion');
    assert.equal(fieldOf({ cniVersion: '2.0.0', name: 'n', plugins: [{ type: 'x' }] }), 'cniVersion');
    assert.equal(fieldOf({ cniVersion: '1.0.0', name: 'bad name', plugins: [{ type: 'x' }] }), 'name');
    assert.equal(fieldOf({ cniVersion: '1.0.0', name: 'n', plugins: [] }), 'plugins');
    assert.equal(fieldOf({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'loopback' }, { bridge: 'b' }] }), 'plugins[1].type');
    assert.equal(fieldOf({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: '../evil' }] }), 'plugins[0].type');
    assert.equal(fieldOf({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'x', capabilities: { portMappings: 'yes' } }] }), 'plugins[0].capabilities');
    assert.equal(fieldOf({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'x', prevResult: {} }] }), 'plugins[0].prevResult');
    assert.equal(fieldOf({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'x', ipam: {} }] }), 'plugins[0].ipam.type');
    assert.equal(fieldOf({ cniVersion: '1.0.0', name: 'n', disableCheck: 'no', plugins: [{ type: 'x' }] }), 'disableCheck');
  });

  it('reports a bad network in the config file under its key, and a bad .conflist file by its path and field', () => {
    const inline = withFile('berth.json', JSON.stringify({ network: { cni: { config: { cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'loopback' }, {}] } } } }));
    assert.throws(() => loadConfig(inline, {}), /config: network\.cni\.config\.plugins\[1\]\.type: must name a plugin executable/);
    const conflist = withFile('bad.conflist', JSON.stringify({ cniVersion: '1.0.0', plugins: [{ type: 'bridge' }] }));
    assert.throws(() => loadConfig(undefined, { BERTH_CNI_CONFIG_FILE: conflist }), new RegExp(`config: network\\.cni\\.configFile: "${conflist.replace(/[.]/g, '\\.')}": name: must match`));
    assert.throws(() => loadConfig(undefined, { BERTH_CNI_CONFIG_FILE: '/nonexistent.conflist' }), /network\.cni\.configFile: cannot read "\/nonexistent\.conflist"/);
    const both = withFile('both.json', JSON.stringify({ network: { cni: { config: { cniVersion: '1.0.0', name: 'n', type: 'bridge' }, configFile: conflist } } }));
    assert.throws(() => loadConfig(both, {}), /set either network\.cni\.config or network\.cni\.configFile/);
  });

  it('defaults to a bridge with host-local and portmap (portmap left out for tasks without host ports), and takes a file that replaces it', () => {
    const defaults = loadConfig(undefined, {}).network;
    assert.equal(defaults.pauseImage, 'registry.k8s.io/pause:3.9');
    assert.deepEqual(
      defaults.cni.config.plugins.map((p) => p.type),
      ['bridge', 'portmap'],
    );
    assert.deepEqual(defaults.cni.config.plugins[1]!.capabilities, { portMappings: true });
    assert.deepEqual(
      defaults.cni.withoutPorts?.plugins.map((p) => p.type),
      ['bridge'],
    );
    assert.equal(defaults.cni.withoutPorts?.name, 'berth', 'the same network');
    const file = withFile('mine.conflist', JSON.stringify({ cniVersion: '0.4.0', name: 'mine', plugins: [{ type: 'ptp', ipam: { type: 'host-local', subnet: '10.1.0.0/24' } }] }));
    const mine = loadConfig(undefined, { BERTH_CNI_CONFIG_FILE: file, BERTH_PAUSE_IMAGE: 'registry.example/pause:1' }).network;
    assert.equal(mine.cni.config.name, 'mine');
    assert.equal(mine.cni.withoutPorts, undefined, "a list of the user's runs whole");
    assert.equal(mine.pauseImage, 'registry.example/pause:1');
    // berth masquerades its default network's subnet itself; a list of the user's is left to its plugins.
    assert.deepEqual(defaults.cni.masquerade, { subnet: '10.89.0.0/16', bridge: 'berth0' });
    assert.equal(defaults.cni.config.plugins[0]!.raw.ipMasq, false);
    assert.equal(mine.cni.masquerade, undefined);
  });

  it('shapes the default network by network.cni.subnet and network.cni.bridge, and names the key of a bad one', () => {
    const shaped = loadConfig(withFile('shaped.json', JSON.stringify({ network: { cni: { subnet: '172.30.0.0/20', bridge: 'tasks0' } } })), {}).network.cni;
    const bridge = shaped.config.plugins[0]!.raw as { bridge: string; ipam: { ranges: { subnet: string }[][] } };
    assert.equal(bridge.bridge, 'tasks0');
    assert.equal(bridge.ipam.ranges[0]![0]!.subnet, '172.30.0.0/20');
    assert.deepEqual(shaped.masquerade, { subnet: '172.30.0.0/20', bridge: 'tasks0' });

    const bad: [object, RegExp][] = [
      [{ subnet: '10.89.0.0' }, /config: network\.cni\.subnet: must be an IPv4 subnet such as "10\.89\.0\.0\/16"/],
      [{ subnet: 'fd00::/64' }, /config: network\.cni\.subnet: must be an IPv4 subnet/],
      [{ subnet: '10.300.0.0/16' }, /config: network\.cni\.subnet: "10\.300\.0\.0\/16" is not an IPv4 address/],
      [{ subnet: '10.89.0.0/31' }, /config: network\.cni\.subnet: the prefix must be 8 to 30 bits/],
      [{ subnet: '10.89.3.1/16' }, /config: network\.cni\.subnet: "10\.89\.3\.1\/16" has host bits set: the subnet is 10\.89\.0\.0\/16/],
      [{ bridge: 'a-bridge-name-too-long' }, /config: network\.cni\.bridge: must be an interface name of 1 to 15/],
      [{ bridge: 'br;rm' }, /config: network\.cni\.bridge: must be an interface name/],
      [
        { subnet: '10.1.0.0/16', config: { cniVersion: '1.0.0', name: 'n', type: 'bridge' } },
        /config: network\.cni\.subnet: shapes berth's default network only: with network\.cni\.config, set it in the network list/,
      ],
    ];
    for (const [cni, message] of bad) {
      assert.throws(() => loadConfig(withFile('bad-shape.json', JSON.stringify({ network: { cni } })), {}), message, JSON.stringify(cni));
    }
  });
});

describe('CNI results and errors', () => {
  const result = {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'br0' }, { name: 'veth1' }, { name: 'eth0', sandbox: '/run/netns/x' }, { name: 'lo', sandbox: '/run/netns/x' }],
    ips: [
      { address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 2 },
      { address: '10.1.0.1/24', interface: 0 },
      { address: '127.0.0.1/8', interface: 3 },
      { address: 'fd00::5/64', gateway: 'fd00::1', interface: 2 },
    ],
  };

  it('reports the addresses inside the namespace, loopback and host-side ones excluded', () => {
    assert.deepEqual(taskAddresses(parseCniResult(result)), { ipAddresses: ['10.1.0.5/24', 'fd00::5/64'], gateways: ['10.1.0.1', 'fd00::1'] });
    // 0.3.x plugins may leave out the interface index.
    assert.deepEqual(taskAddresses(parseCniResult({ cniVersion: '0.3.1', ips: [{ version: '4', address: '10.2.0.2/16' }] })).ipAddresses, ['10.2.0.2/16']);
    assert.throws(() => parseCniResult({ ips: [{ gateway: '1.2.3.4' }] }), /no address/);
  });

  it("reads a plugin's error result, and nothing else", () => {
    assert.deepEqual(parsePluginError('{"cniVersion":"1.0.0","code":7,"msg":"invalid config","details":"no bridge"}'), { code: 7, msg: 'invalid config', details: 'no bridge' });
    assert.equal(parsePluginError('panic: runtime error'), undefined);
    assert.equal(parsePluginError('{"cniVersion":"1.0.0"}'), undefined);
  });
});

describe('CNI_ARGS', () => {
  it('joins the arguments, and refuses a value that would add or change one', () => {
    assert.equal(cniArgs('ADD', 'bridge', { IgnoreUnknown: '1', BERTH_FAMILY: 'web' }), 'IgnoreUnknown=1;BERTH_FAMILY=web');
    for (const family of ['x;IP=10.89.0.200', 'a=b', 'nul\0']) {
      assert.throws(
        () => cniArgs('ADD', 'bridge', { BERTH_FAMILY: family }),
        (error: unknown) => error instanceof CniError && /CNI_ARGS "BERTH_FAMILY"/.test(error.message),
      );
    }
  });
});
