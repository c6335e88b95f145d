import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { channelFor, ConnectOptionsError, grpcTarget } from '../../src/client/connection.js';
import { BerthError, FailedPreconditionError, InvalidArgumentError, OutOfRangeError, PermissionDeniedError, ResourceExhaustedError, TaskStoppedError, toBerthError } from '../../src/client/errors.js';
import * as engine from '../../src/engine/errors.js';
import { Task, TaskStatus } from '../../src/gen/berth/agent/v1/task.js';
import { toServiceError } from '../../src/server/error-status.js';

/** The error a client gets for an engine error: through the server's mapping, then the client's. */
const asClientSees = (error: Error) => toBerthError(Object.assign(new Error('from the wire'), toServiceError(error)));

describe("the client's errors: a class per status code, the agent's details decoded", () => {
  it('INVALID_ARGUMENT names each bad field', () => {
    const error = asClientSees(new engine.InvalidArgumentError([{ field: 'task.containers[0].image', description: 'must not be empty' }]));
    assert.ok(error instanceof InvalidArgumentError);
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.equal(error.codeName, 'INVALID_ARGUMENT');
    assert.deepEqual(
      error.fieldViolations.map((v) => [v.field, v.description]),
      [['task.containers[0].image', 'must not be empty']],
    );
    // As grpc-js's ServiceError: `details` is the message, `metadata` the trailers.
    assert.equal(error.details, error.message);
    assert.match(error.details, /containers\[0\]\.image: must not be empty/);
    assert.ok(error.metadata.get('grpc-status-details-bin').length > 0);
  });

  it('RESOURCE_EXHAUSTED carries the limit (QuotaFailure and ErrorInfo); the too-slow watcher where to resume', () => {
    const limit = asClientSees(new engine.LimitExceededError('limits.watchers', 100, 'too many WatchEvents streams'));
    assert.ok(limit instanceof ResourceExhaustedError);
    assert.equal(limit.violations[0]?.subject, 'limits.watchers');
    assert.equal(limit.reason, 'LIMIT_EXCEEDED');
    assert.deepEqual(limit.info, { limit: 'limits.watchers', value: '100' });
    const slow = asClientSees(new engine.WatcherTooSlowError(41, 10));
    assert.ok(slow instanceof ResourceExhaustedError);
    assert.equal(slow.reason, 'WATCHER_TOO_SLOW');
    assert.equal(slow.info.resume_from_sequence, '42');
  });

  it('OUT_OF_RANGE, FAILED_PRECONDITION and PERMISSION_DENIED with what they name', () => {
    const expired = asClientSees(new engine.SequenceExpiredError(3, 90));
    assert.ok(expired instanceof OutOfRangeError);
    assert.equal(expired.reason, 'SEQUENCE_EXPIRED');
    assert.equal(expired.info.oldest_sequence, '90');
    const precondition = asClientSees(new engine.FailedPreconditionError('container app is not running', 'task/web/container/app'));
    assert.ok(precondition instanceof FailedPreconditionError);
    assert.equal(precondition.violations[0]?.subject, 'task/web/container/app');
    const denied = asClientSees(
      new engine.PermissionDeniedError([
        { field: 'a', setting: 'security.allowPrivileged', description: 'privileged' },
        { field: 'b', setting: 'security.allowHostNetwork', description: 'host network' },
      ]),
    );
    assert.ok(denied instanceof PermissionDeniedError);
    assert.deepEqual(
      denied.statusDetails.errorInfos.map((i) => i.metadata.setting),
      ['security.allowPrivileged', 'security.allowHostNetwork'],
    );
  });

  it('an error without a status code is UNKNOWN; details that do not decode are left out', () => {
    const plain = toBerthError(new TypeError('boom'));
    assert.equal(plain.code, status.UNKNOWN);
    assert.equal(plain.message, 'boom');
    const service = toServiceError(new engine.NotFoundError('task', 'web'));
    service.metadata!.set('grpc-status-details-bin', Buffer.from([0xff, 0xff, 0xff]));
    const garbled = toBerthError(Object.assign(new Error('x'), service));
    assert.ok(garbled instanceof BerthError);
    assert.equal(garbled.code, status.NOT_FOUND);
    assert.equal(garbled.reason, undefined);
  });

  it("TaskStoppedError says why: the task's reason and its containers'", () => {
    const task = Task.fromPartial({
      definition: { id: 'web' },
      knownStatus: TaskStatus.TASK_STATUS_STOPPED,
      reason: 'essential container app stopped',
      containers: [{ name: 'app', reason: 'CannotPullContainerError: not found' }, { name: 'side' }],
    });
    const error = new TaskStoppedError(task, TaskStatus.TASK_STATUS_RUNNING);
    assert.equal(error.message, 'task web stopped before it was TASK_STATUS_RUNNING: essential container app stopped; app: CannotPullContainerError: not found');
  });
});

describe("the client's connection options", () => {
  it('takes a unix path, a unix:// address or host:port', () => {
    assert.equal(grpcTarget('/run/berth/berth.sock'), 'unix:///run/berth/berth.sock');
    assert.equal(grpcTarget('unix:///run/berth/berth.sock'), 'unix:///run/berth/berth.sock');
    assert.equal(grpcTarget('node-7:7443'), 'node-7:7443');
  });

  it('refuses a certificate without its key, a PEM given twice, and a file it cannot read, naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-client-tls-'));
    try {
      const pem = join(dir, 'ca.pem');
      writeFileSync(pem, 'not a certificate');
      assert.throws(
        () => channelFor({ address: 'h:1', tls: { certFile: pem } }),
        (e) => e instanceof ConnectOptionsError && /go together/.test(e.message),
      );
      assert.throws(() => channelFor({ address: 'h:1', tls: { ca: 'x', caFile: pem } }), /give the CA certificate or its file, not both/);
      assert.throws(() => channelFor({ address: 'h:1', tls: { caFile: join(dir, 'missing.pem') } }), /cannot read the CA certificate .*missing\.pem/);
      assert.equal(channelFor({ address: 'h:1', tls: { serverName: 'agent.example' } }).options['grpc.ssl_target_name_override'], 'agent.example');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
