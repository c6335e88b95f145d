import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ImageReferenceError, normalizeImageReference, parseImageReference } from '../../src/runtime/image-reference.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('image references (distribution grammar)', () => {
  it('normalises Docker Hub names, hosts with ports, tags and digests', () => {
    const cases: [string, string][] = [
      ['busybox', 'docker.io/library/busybox:latest'],
      ['busybox:1.36', 'docker.io/library/busybox:1.36'],
      ['library/busybox', 'docker.io/library/busybox:latest'],
      ['docker.io/acme/app:v1', 'docker.io/acme/app:v1'],
      ['index.docker.io/acme/app', 'docker.io/acme/app:latest'],
      ['127.0.0.1:5000/acc/busybox:1', '127.0.0.1:5000/acc/busybox:1'],
      ['localhost/app', 'localhost/app:latest'],
      ['registry.example.com/a/b/c-d__e.f:1.0-rc_1', 'registry.example.com/a/b/c-d__e.f:1.0-rc_1'],
      [`127.0.0.1:5000/app@${DIGEST}`, `127.0.0.1:5000/app@${DIGEST}`],
      [`app:1@${DIGEST}`, `docker.io/library/app:1@${DIGEST}`],
      ['[::1]:5000/app:2', '[::1]:5000/app:2'],
    ];
    for (const [input, expected] of cases) assert.equal(normalizeImageReference(input), expected, input);
    assert.deepEqual(parseImageReference('127.0.0.1:5000/acc/busybox:1'), { host: '127.0.0.1:5000', path: 'acc/busybox', tag: '1', digest: undefined });
  });

  it('refuses what neither runtime should be asked to pull, saying why', () => {
    const cases: [string, RegExp][] = [
      ['127.0.0.1:5000//acc/busybox:1', /empty path component/],
      ['Not::A@@Valid/Reference', /not a digest/],
      ['127.0.0.1:5000/Acc/busybox', /"Acc" is not a repository path component/],
      ['Busybox', /not a repository path component/],
      ['busybox:', /is not a tag/],
      ['busybox:-x', /is not a tag/],
      ['app/', /empty path component/],
      ['/app', /empty path component/],
      ['app@sha256:abc', /not a digest/],
      [`app@md5:${'a'.repeat(32)}`, /not supported/],
      [`app@sha256:${'A'.repeat(64)}`, /lower case/],
      ['host:99999/app', /out of range/],
      ['-bad.host/app', /not a registry host/],
      [' busybox', /not a repository path component/],
      ['busybox\n', /is not a tag|not a repository path component/],
      ['', /must not be empty/],
      [`r/${'a'.repeat(300)}`, /longer than 255/],
    ];
    for (const [input, pattern] of cases) {
      assert.throws(
        () => parseImageReference(input),
        (error: unknown) => error instanceof ImageReferenceError && pattern.test(error.message),
        JSON.stringify(input),
      );
    }
  });
});
