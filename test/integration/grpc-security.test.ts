import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { connect } from '../../src/client/berth-client.js';
import type { ConnectOptions } from '../../src/client/connection.js';
import { BerthError } from '../../src/client/errors.js';
import type { GetAgentInfoResponse } from '../../src/gen/berth/agent/v1/task_service.js';
import { startTestAgent, type TestAgent } from '../harness/agent.js';
import { TestPki, type Certificate } from '../harness/certificates.js';
import { freeLoopbackPort } from '../harness/processes.js';
import { berthctl } from '../harness/berthctl.js';

// Runtime-independent: the agent starts (and serves) while its runtime is unreachable.
const NO_DOCKER = 'unix:///nonexistent/berth-test-docker.sock';

/** GetAgentInfo over TCP through the project's client with the given TLS options: the answer, or the error. */
async function agentInfo(address: string, tls: ConnectOptions['tls']): Promise<GetAgentInfoResponse | BerthError> {
  const client = connect({ address, tls });
  try {
    return await client.getAgentInfo({ timeoutMs: 5000 });
  } catch (error) {
    if (error instanceof BerthError) return error;
    throw error;
  } finally {
    client.close();
  }
}

const isError = (value: unknown): value is BerthError => value instanceof BerthError;

describe("the API over TCP with TLS and mTLS, and the unix socket's mode and group", () => {
  const pki = new TestPki();
  let ca: Certificate;
  let server: Certificate;
  let clientCa: Certificate;
  let client: Certificate;
  let rogueClient: Certificate;
  const agents: TestAgent[] = [];

  before(() => {
    ca = pki.authority('server-ca');
    server = pki.issue(ca, 'berth-server', 'server');
    clientCa = pki.authority('client-ca');
    client = pki.issue(clientCa, 'control-plane', 'client');
    rogueClient = pki.issue(pki.authority('rogue-ca'), 'rogue', 'client');
  });
  after(async () => {
    for (const agent of agents) await agent.stop();
  });

  it('serves TLS to clients that trust its CA, and nothing to plaintext clients or clients that trust another CA', async () => {
    const address = `127.0.0.1:${await freeLoopbackPort()}`;
    agents.push(await startTestAgent(NO_DOCKER, { grpc: { tcpAddress: address, tls: { certFile: server.certFile, keyFile: server.keyFile } } }));
    const ok = await agentInfo(address, { ca: ca.cert });
    assert.ok(!isError(ok), String(ok));
    assert.equal(ok.agentId, agents[0]!.config.agentId);
    const fromFile = await agentInfo(address, { caFile: ca.certFile, serverName: 'localhost' });
    assert.ok(!isError(fromFile), String(fromFile));
    const otherName = await agentInfo(address, { caFile: ca.certFile, serverName: 'other.example' });
    assert.ok(isError(otherName), 'a server name its certificate does not carry is refused');
    const plaintext = await agentInfo(address, false);
    assert.ok(isError(plaintext), 'a plaintext client gets no answer');
    const wrongCa = await agentInfo(address, { ca: clientCa.cert });
    assert.ok(isError(wrongCa), "a client that does not trust the server's CA gets no answer");
  });

  it('with a client CA (mTLS), answers only clients with a certificate that CA signed', async () => {
    const address = `127.0.0.1:${await freeLoopbackPort()}`;
    agents.push(await startTestAgent(NO_DOCKER, { grpc: { tcpAddress: address, tls: { certFile: server.certFile, keyFile: server.keyFile, clientCaFile: clientCa.certFile } } }));
    const ok = await agentInfo(address, { ca: ca.cert, key: client.key, cert: client.cert });
    assert.ok(!isError(ok), String(ok));
    const fromFiles = await agentInfo(address, { caFile: ca.certFile, keyFile: client.keyFile, certFile: client.certFile });
    assert.ok(!isError(fromFiles), String(fromFiles));
    const withoutCertificate = await agentInfo(address, { ca: ca.cert });
    assert.ok(isError(withoutCertificate), 'refused without a client certificate');
    assert.equal(withoutCertificate.code, 14, 'UNAVAILABLE');
    const rogue = await agentInfo(address, { ca: ca.cert, key: rogueClient.key, cert: rogueClient.cert });
    assert.ok(isError(rogue), 'refused with a certificate of another CA');
  });

  it('lets berthctl in with --cacert, --cert and --key (or BERTH_TLS_*), and says what to do without them', async () => {
    const address = `127.0.0.1:${await freeLoopbackPort()}`;
    const agent = await startTestAgent(NO_DOCKER, { grpc: { tcpAddress: address, tls: { certFile: server.certFile, keyFile: server.keyFile, clientCaFile: clientCa.certFile } } });
    agents.push(agent);
    const withFlags = await berthctl(['--addr', address, '--cacert', ca.certFile, '--cert', client.certFile, '--key', client.keyFile, 'info', '-o', 'json']);
    assert.equal(withFlags.code, 0, withFlags.stderr);
    assert.equal(JSON.parse(withFlags.stdout).agentId, agent.config.agentId);
    const withEnv = await berthctl(['info'], { env: { BERTH_ADDR: address, BERTH_TLS_CA: ca.certFile, BERTH_TLS_CERT: client.certFile, BERTH_TLS_KEY: client.keyFile } });
    assert.equal(withEnv.code, 0, withEnv.stderr);
    assert.match(withEnv.stdout, new RegExp(`Agent: +${agent.config.agentId}`));
    const noCertificate = await berthctl(['--addr', address, '--cacert', ca.certFile, 'info']);
    assert.equal(noCertificate.code, 3, 'unreachable without a client certificate');
    assert.match(noCertificate.stderr, /cannot reach the berth agent at 127\.0\.0\.1:\d+/);
    assert.match(noCertificate.stderr, /--tls\/--cacert\/--cert\/--key/);
    const plaintext = await berthctl(['--addr', address, 'info']);
    assert.equal(plaintext.code, 3);
  });

  it('creates the unix socket with the configured mode and group', async () => {
    const agent = await startTestAgent(NO_DOCKER, { grpc: { socketMode: '0600', socketGroup: 'nogroup' } });
    agents.push(agent);
    const stat = statSync(agent.socketPath);
    assert.equal(stat.mode & 0o777, 0o600);
    assert.equal(stat.gid, 65534);
  });
});
