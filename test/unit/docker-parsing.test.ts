import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { registryHost, withDefaultTag } from '../../src/runtime/image-reference.js';
import { toRuntimeError } from '../../src/runtime/docker/docker-errors.js';
import { parseDockerEvent } from '../../src/runtime/docker/docker-events.js';
import { PullProgressTracker } from '../../src/runtime/docker/docker-pull.js';
import { dockerTerminalLogLines } from '../../src/runtime/docker/docker-logs.js';

describe('Docker adapter parsing', () => {
  it('turns die events into exits with their code', () => {
    const event = parseDockerEvent({ Type: 'container', Action: 'die', Actor: { ID: 'abc', Attributes: { exitCode: '137' } }, timeNano: 1_700_000_000_000_000_000 });
    assert.deepEqual(event, { type: 'exit', containerId: 'abc', exitCode: 137, time: new Date(1_700_000_000_000) });
    assert.equal(parseDockerEvent({ Type: 'container', Action: 'attach', Actor: { ID: 'abc' } }), undefined);
    assert.equal(parseDockerEvent({ Type: 'network', Action: 'connect', Actor: { ID: 'n' } }), undefined);
  });

  it('sums pull progress over layers', () => {
    const tracker = new PullProgressTracker();
    tracker.record({ id: 'a', status: 'Downloading', progressDetail: { current: 10, total: 100 } });
    tracker.record({ id: 'b', status: 'Downloading', progressDetail: { current: 5, total: 50 } });
    assert.deepEqual(tracker.record({ id: 'a', status: 'Download complete' }), { bytesDone: 105, bytesTotal: 150 });
    assert.equal(tracker.record({ status: 'Digest: sha256:…' }), undefined);
  });

  it('classifies daemon errors by status code and image errors by message', () => {
    assert.equal(toRuntimeError('x', { statusCode: 404, json: { message: 'No such container: a' } }).kind, 'not-found');
    assert.equal(toRuntimeError('x', { statusCode: 409, json: { message: 'Conflict. The container name "/a" is already in use' } }).kind, 'already-exists');
    assert.equal(toRuntimeError('x', { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' }).kind, 'unavailable');
    assert.equal(toRuntimeError('pull', { statusCode: 500, json: { message: 'Head "http://r/v2/a/manifests/1": no basic auth credentials' } }, 'image').kind, 'unauthorized');
    assert.equal(toRuntimeError('pull', { statusCode: 500, json: { message: 'manifest unknown' } }, 'image').kind, 'not-found');
    assert.equal(toRuntimeError('start', { statusCode: 500, json: { message: 'permission denied' } }).kind, 'internal');
  });

  it('finds the registry host of a reference', () => {
    assert.equal(registryHost('busybox'), 'docker.io');
    assert.equal(registryHost('library/busybox:1'), 'docker.io');
    assert.equal(registryHost('127.0.0.1:5000/a/b:1'), '127.0.0.1:5000');
    assert.equal(registryHost('localhost/a'), 'localhost');
    assert.equal(withDefaultTag('127.0.0.1:5000/a'), '127.0.0.1:5000/a:latest');
    assert.equal(withDefaultTag('a@sha256:00'), 'a@sha256:00');
  });

  it('reads the raw log stream of a container with a terminal: lines split across chunks, all stdout, a last partial line', async () => {
    async function* chunks() {
      yield Buffer.from('2026-12-03T10:00:00.000000001Z /dev/pts/0\r\n2026-12-03T10:00:00.5Z stdout: ter');
      yield Buffer.from('minal\r\n2026-12-03T10:00:01Z $ ');
    }
    const lines = [];
    for await (const line of dockerTerminalLogLines(chunks())) lines.push({ ...line, text: line.text.toString('utf8'), time: line.time.toISOString() });
    assert.deepEqual(lines, [
      { time: '2026-12-03T10:00:00.000Z', stream: 'stdout', text: '/dev/pts/0\r', partial: false },
      { time: '2026-12-03T10:00:00.500Z', stream: 'stdout', text: 'stdout: terminal\r', partial: false },
      { time: '2026-12-03T10:00:01.000Z', stream: 'stdout', text: '$ ', partial: true },
    ]);
  });
});
