import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { parseDuration } from '../../src/config/duration.js';

function withFile(content: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'berth-config-')), 'berth.json');
  writeFileSync(file, content);
  return file;
}

describe('config', () => {
  it('has working defaults', () => {
    const config = loadConfig(undefined, {});
    assert.equal(config.grpc.socketPath, '/run/berth/berth.sock');
    assert.equal(config.grpc.socketMode, 0o660);
    assert.equal(config.runtime.docker.host, 'unix:///var/run/docker.sock');
    assert.equal(config.engine.defaultStopTimeoutMs, 30_000);
    assert.equal(config.engine.taskCleanupWaitMs, 3 * 3_600_000);
    assert.equal(config.network.cni.maxParallelPlugins, 32);
  });

  it('takes DOCKER_HOST and BERTH_* from the environment over the file', () => {
    const file = withFile(JSON.stringify({ engine: { taskCleanupWait: '10m' }, grpc: { socket: '/tmp/from-file.sock' } }));
    const config = loadConfig(file, { DOCKER_HOST: 'unix:///tmp/d.sock', BERTH_SOCKET: '/tmp/from-env.sock' });
    assert.equal(config.runtime.docker.host, 'unix:///tmp/d.sock');
    assert.equal(config.grpc.socketPath, '/tmp/from-env.sock');
    assert.equal(config.engine.taskCleanupWaitMs, 600_000);
  });

  const bad: [string, object | string, RegExp][] = [
    ['an unknown key', { engine: { cleanupWait: '1h' } }, /config: engine\.cleanupWait: unknown key/],
    ['a bad duration', { engine: { taskCleanupWait: 'soon' } }, /config: engine\.taskCleanupWait: must be a duration/],
    ['an unknown runtime', { runtime: { kind: 'podman' } }, /config: runtime\.kind: must be one of "docker", "containerd"/],
    ['a relative socket', { grpc: { socket: 'berth.sock' } }, /config: grpc\.socket:/],
    ['TCP on a public address without TLS', { grpc: { tcpAddress: '0.0.0.0:7000' } }, /config: grpc\.tcpAddress: .*needs grpc\.tls/],
    ['plain TCP on loopback without grpc.allowInsecureTcp', { grpc: { tcpAddress: '127.0.0.1:7000' } }, /config: grpc\.tcpAddress: .*grpc\.allowInsecureTcp/],
    ['a duration no timer holds', { engine: { taskCleanupWait: '30d' } }, /config: engine\.taskCleanupWait: must be at most 24d/],
    ['a limit of 0', { limits: { containersPerTask: 0 } }, /config: limits\.containersPerTask: must be an integer of at least 1/],
    ['an invalid pause image', { network: { pauseImage: 'Registry//pause' } }, /config: network\.pauseImage: .*not an image reference/],
    ['a lag above retention', { events: { retain: 10, maxWatcherLag: 20 } }, /config: events\.maxWatcherLag: must not exceed/],
    ['a negative bound on plugins at once', { network: { cni: { maxParallelPlugins: -1 } } }, /config: network\.cni\.maxParallelPlugins: must be an integer of at least 0/],
    ['broken JSON', '{ not json', /is not valid JSON/],
  ];
  for (const [name, content, message] of bad) {
    it(`names the key for ${name}`, () => {
      const file = withFile(typeof content === 'string' ? content : JSON.stringify(content));
      assert.throws(
        () => loadConfig(file, {}),
        (error) => error instanceof ConfigError && message.test(error.message),
      );
    });
  }

  it('parses durations', () => {
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1500'), 1500);
    assert.equal(parseDuration('3 hours'), undefined);
    assert.equal(parseDuration(''), undefined);
  });

  it('serves metrics only when metrics.address is set, and checks it', () => {
    assert.equal(loadConfig(undefined, {}).metrics.address, undefined);
    assert.equal(loadConfig(undefined, { BERTH_METRICS_ADDRESS: '127.0.0.1:9464' }).metrics.address, '127.0.0.1:9464');
    assert.throws(() => loadConfig(undefined, { BERTH_METRICS_ADDRESS: '9464' }), /config: metrics\.address: must be host:port/);
  });

  it('accepts the example config of deploy/', () => {
    const config = loadConfig(new URL('../../deploy/berth.example.json', import.meta.url).pathname, {});
    assert.equal(config.runtime.kind, 'containerd');
    assert.equal(config.grpc.tls?.clientCaFile, '/etc/berth/tls/clients-ca.crt');
    assert.equal(config.metrics.address, '127.0.0.1:9464');
    assert.equal(config.security.allowPrivileged, false);
  });
});
