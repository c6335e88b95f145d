import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { RuntimeMonitor, type RuntimeAvailability } from '../../src/engine/runtime-monitor.js';
import { RuntimeError } from '../../src/runtime/errors.js';
import { FakeRuntime } from '../harness/fake-runtime.js';

describe('runtime monitor', () => {
  it('retries with back-off while the runtime is down and logs once per outage, not once per try', async () => {
    const lines: { msg: string }[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()));
        done();
      },
    });
    const runtime = new FakeRuntime();
    let failures = 4;
    let pings = 0;
    runtime.ping = async () => {
      pings++;
      if (failures-- > 0) throw new RuntimeError('unavailable', 'ping docker', 'connect ENOENT');
      return { name: 'docker', version: 'fake', apiVersion: '1' };
    };
    const monitor = new RuntimeMonitor(runtime, { checkIntervalMs: 60_000, initialBackoffMs: 5, maxBackoffMs: 20 }, pino({ level: 'info' }, sink));
    const changes: RuntimeAvailability[] = [];
    const up = new Promise<void>((resolve) =>
      monitor.on('change', (availability) => {
        changes.push(availability);
        if (availability.available) resolve();
      }),
    );
    await monitor.start();
    assert.equal(monitor.availability.available, false);
    await up;
    monitor.stop();
    assert.equal(pings, 5);
    assert.deepEqual(
      changes.map((c) => c.available),
      [false, true],
    );
    const messages = lines.map((l) => l.msg);
    assert.deepEqual(messages, ['container runtime is unavailable; retrying with back-off', 'container runtime is available']);
  });
});
