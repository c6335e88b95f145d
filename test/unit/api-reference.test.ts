import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { API_REFERENCE, DESCRIPTOR_SET, renderApiReference } from '../../scripts/api-reference.js';

describe('docs/api.md', () => {
  it('is in step with the proto files (regenerate it with `npm run docs:api`)', () => {
    const expected = renderApiReference(readFileSync(DESCRIPTOR_SET));
    assert.equal(readFileSync(API_REFERENCE, 'utf8'), expected);
    for (const method of ['RunTask', 'Exec', 'Logs', 'Stats', 'WatchEvents']) assert.match(expected, new RegExp(`^\\| ${method} \\|`, 'm'));
  });
});
