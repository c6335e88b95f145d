import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { RegistryClient } from '../../src/runtime/oci/registry-client.js';
import { parseImageName } from '../../src/runtime/oci/image-name.js';
import { isRuntimeError } from '../../src/runtime/errors.js';

describe('the registry client (containerd pulls)', () => {
  const realFetch = globalThis.fetch;
  afterEach(() => {
    globalThis.fetch = realFetch;
  });

  /** Records the URLs asked for; every registry answers 404. */
  function recordUrls(): string[] {
    const urls: string[] = [];
    globalThis.fetch = (async (input: string | URL) => {
      urls.push(String(input));
      return new Response(null, { status: 404 });
    }) as typeof fetch;
    return urls;
  }

  it('speaks plain HTTP only to loopback registries and those named insecure; HTTPS to every other', async () => {
    const urls = recordUrls();
    const client = new RegistryClient({ insecureRegistries: ['10.0.0.9:5000'], requestTimeoutMs: 1000 });
    for (const reference of ['127.0.0.1:5000/a/b:1', 'localhost:5000/a/b:1', '10.0.0.9:5000/a/b:1', '10.0.0.8:5000/a/b:1', 'registry.example.com/a/b:1', 'busybox:1']) {
      await assert.rejects(client.resolve(parseImageName(reference), undefined), (error) => isRuntimeError(error, 'not-found'));
    }
    assert.deepEqual(
      urls.map((u) => u.split('/v2/')[0]),
      ['http://127.0.0.1:5000', 'http://localhost:5000', 'http://10.0.0.9:5000', 'https://10.0.0.8:5000', 'https://registry.example.com', 'https://registry-1.docker.io'],
    );
  });
});
