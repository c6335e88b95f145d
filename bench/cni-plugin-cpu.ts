/**
 * What one ADD and one DEL of berth's default network cost the machine in CPU, by the environment
 * the plugins run in: the bridge plugin (which runs host-local) in a namespace of its own, one run
 * at a time, with Go's default number of Ps and with `GOMAXPROCS=1` (what berth gives plugins),
 * alternating. The CPU is the benchmark's children's user and system time (/proc/self/stat,
 * counted as each plugin is waited for, host-local within bridge). Usage:
 * npm run bench:cni-cpu -- [PAIRS=30]. Needs root and containernetworking-plugins.
 */
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { defaultNetworkConfigList } from '../src/engine/network/cni/network-config.js';
import { processStat } from './parts/process-cpu.js';
import { CNI_PLUGIN_DIR, createDefaultShapedNetwork, createNamespace } from '../test/harness/cni-network.js';

const PAIRS = Number(process.argv[2] ?? 30);
const VARIANTS: Record<string, Record<string, string>> = { "Go's default": {}, 'GOMAXPROCS=1': { GOMAXPROCS: '1' } };
/** The user and system CPU of this process's children that were waited for, in ms. */
function childrenCpu(): { user: number; system: number } {
  const stat = processStat('self')!;
  return { user: stat.reapedChildrenUserMs, system: stat.reapedChildrenSystemMs };
}

function main(): void {
  const network = createDefaultShapedNetwork();
  const list = defaultNetworkConfigList({ subnet: network.subnet, bridge: network.bridge });
  const bridge = (list.plugins as Record<string, unknown>[]).find((p) => p.type === 'bridge')!;
  const input = JSON.stringify({ ...bridge, name: list.name, cniVersion: list.cniVersion });
  const totals = new Map(Object.keys(VARIANTS).map((k) => [k, { ADD: { user: 0, system: 0 }, DEL: { user: 0, system: 0 } }]));
  try {
    for (let i = 0; i < PAIRS; i++) {
      for (const [variant, extra] of Object.entries(VARIANTS)) {
        const ns = createNamespace();
        try {
          for (const command of ['ADD', 'DEL'] as const) {
            const before = childrenCpu();
            const run = spawnSync(join(CNI_PLUGIN_DIR, 'bridge'), [], {
              input,
              encoding: 'utf8',
              timeout: 60_000,
              env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: ns.name, CNI_NETNS: ns.path, CNI_IFNAME: 'eth0', CNI_PATH: CNI_PLUGIN_DIR, ...extra },
            });
            if (run.status !== 0) throw new Error(`bridge ${command} failed: ${run.stdout}${run.stderr}`);
            const after = childrenCpu();
            const total = totals.get(variant)![command];
            total.user += after.user - before.user;
            total.system += after.system - before.system;
          }
        } finally {
          ns.remove();
        }
      }
    }
  } finally {
    network.remove();
  }
  console.log(
    `\nbridge (with host-local) one run at a time, ${PAIRS} ADD+DEL pairs each way, alternating, ${cpus().length} cores, node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`,
  );
  console.log('| | ADD: user / system / all (ms of CPU) | DEL: user / system / all |');
  console.log('|---|---:|---:|');
  const cell = (c: { user: number; system: number }) => `${(c.user / PAIRS).toFixed(1)} / ${(c.system / PAIRS).toFixed(1)} / ${((c.user + c.system) / PAIRS).toFixed(1)}`;
  for (const [variant, t] of totals) console.log(`| ${variant} | ${cell(t.ADD)} | ${cell(t.DEL)} |`);
}

main();
