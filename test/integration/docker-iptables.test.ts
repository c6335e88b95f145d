import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startTestAgent, watching, type TestAgent } from '../harness/agent.js';
import type { DockerNamespace } from '../harness/docker-daemon.js';
import { textOnceServed, waitUntil } from '../harness/processes.js';
import { startRuntimeEnvironment, type RuntimeEnvironment } from '../harness/runtime-environment.js';
import { container, containerOf, is, NetworkMode, task, taskId, TaskStatus } from '../harness/task-builders.js';

/** dockerd's NAT rules in its namespace, with their packet counters: `[rule, packets]`. */
function natRules(namespace: DockerNamespace): [string, number][] {
  const listing = execFileSync('ip', ['netns', 'exec', namespace.name, 'iptables', '-t', 'nat', '-L', 'DOCKER', '-v', '-n', '-x'], { encoding: 'utf8' });
  return listing
    .split('\n')
    .slice(2)
    .filter((line) => line.trim() !== '')
    .map((line) => [line.trim().split(/\s+/).slice(2).join(' '), Number(line.trim().split(/\s+/)[0])]);
}

/**
 * The other tests run dockerd with `--iptables=false`, where published ports reach containers only
 * through docker-proxy. A production dockerd manages iptables: here it does, in a network namespace
 * of its own, and the host reaches it over a veth pair as another machine would.
 */
describe('bridge mode on a dockerd that manages its own iptables rules', () => {
  let env: RuntimeEnvironment;
  let namespace: DockerNamespace;
  let agent: TestAgent;
  let server: Server;
  before(async () => {
    env = await startRuntimeEnvironment('iptables', 'docker', { dockerIptables: true });
    namespace = env.docker!.namespace!;
    agent = await startTestAgent(env, { resources: { dynamicPortRange: '40400-40499' } });
    // A server on the host's end of the veth: answers with the address the request came from.
    server = createServer((request, response) => response.end(request.socket.remoteAddress));
    await new Promise<void>((resolve) => server.listen(0, namespace.hostAddress, resolve));
  });
  after(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await agent?.stop();
    await env?.stop();
  });

  it("publishes a dynamic host port through dockerd's DNAT rule, masquerades the container's traffic, and removes the rule when the task stops", async () => {
    const id = taskId('iptables');
    await watching(agent.client, { taskIds: [id] }, async (watch) => {
      await agent.calls.run(
        task(
          id,
          [
            container('web', env.image, {
              registryCredentials: env.credentials,
              command: ['httpd', '-f', '-p', '8080', '-h', '/www'],
              portMappings: [{ containerPort: 8080, hostPort: 0, protocol: 0, hostIp: '', containerPortRange: '' }],
            }),
          ],
          { networkMode: NetworkMode.NETWORK_MODE_BRIDGE },
        ),
      );
      await watch.waitForEvent('task RUNNING', is.task(id, TaskStatus.TASK_STATUS_RUNNING), 60_000);
    });
    const web = containerOf(await agent.calls.get(id), 'web');
    const hostPort = web.portBindings[0]!.hostPort;
    assert.ok(hostPort >= 40400 && hostPort <= 40499, `port ${hostPort} from berth's range`);
    assert.ok((await agent.calls.info()).consumed?.tcpPorts.includes(hostPort), 'the host port is held');

    const rule = () => natRules(namespace).find(([text]) => text.includes(`dpt:${hostPort} `));
    assert.ok(rule(), `dockerd wrote a DNAT rule for port ${hostPort}: ${JSON.stringify(natRules(namespace))}`);
    assert.equal(rule()![1], 0);
    // From the host, to the namespace's address: the packets go through the DNAT rule.
    assert.equal(await textOnceServed(`http://${namespace.address}:${hostPort}/index.html`), 'hello from berth\n');
    assert.ok(rule()![1] > 0, 'the request went through the DNAT rule');

    // From the container to the host: masqueraded to the namespace's address.
    const port = (server.address() as AddressInfo).port;
    const seen = await agent.calls.exec(id, 'web', ['wget', '-q', '-O', '-', `http://${namespace.hostAddress}:${port}/`]);
    assert.equal(seen.exitCode, 0, Buffer.from(seen.output).toString());
    assert.equal(Buffer.from(seen.output).toString(), namespace.address);

    await agent.calls.stopAndWait(id);
    // dockerd removes the rule when it tears down the container's endpoint, which trails the exit
    // berth reports, and iptables offers nothing to await: poll it, bounded.
    await waitUntil('dockerd removed the DNAT rule with the container', 15_000, async () => (rule() === undefined ? true : undefined));
    assert.ok(!(await agent.calls.info()).consumed?.tcpPorts.includes(hostPort), 'the host port was released');
  });
});
