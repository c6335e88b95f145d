import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import { readStatusDetails } from '../../src/client/status-details.js';
import { NotFoundError } from '../../src/engine/errors.js';
import { onInternalError } from '../../src/internal-errors.js';
import { toServiceError } from '../../src/server/error-status.js';

describe('errors as gRPC statuses', () => {
  it('answers an unexpected error with INTERNAL and an incident id, its internals only in the log', () => {
    const logged: { error: unknown; incident: string }[] = [];
    const stop = onInternalError((_source, error, incident) => logged.push({ error, incident }));
    try {
      const error = new Error('ENOENT: /var/lib/berth/secret-path');
      const answer = toServiceError(error) as ServiceError;
      assert.equal(answer.code, status.INTERNAL);
      assert.ok(!answer.details.includes('secret-path'), answer.details);
      const incident = readStatusDetails(answer.metadata).errorInfo?.metadata.incident;
      assert.match(incident ?? '', /^[0-9a-f]{12}$/);
      assert.ok(answer.details.includes(incident!));
      assert.deepEqual(logged, [{ error, incident }]);
    } finally {
      stop();
    }
  });

  it('maps an engine error to its code with details, counting nothing', () => {
    const logged: unknown[] = [];
    const stop = onInternalError((_source, error) => logged.push(error));
    try {
      const answer = toServiceError(new NotFoundError('task', 'web-1')) as ServiceError;
      assert.equal(answer.code, status.NOT_FOUND);
      assert.deepEqual(readStatusDetails(answer.metadata).errorInfo?.metadata, { task: 'web-1' });
      assert.deepEqual(logged, []);
    } finally {
      stop();
    }
  });
});
