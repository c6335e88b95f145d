import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { ImageManager, type RegistryCredentialSource } from '../../src/engine/images/image-manager.js';
import type { RegistryAuth } from '../../src/runtime/types.js';
import { DockerCredentials } from '../../src/secrets/docker-credentials.js';
import { UNIT_IMAGE_SETTINGS } from '../harness/engine-harness.js';
import { FakeRuntime } from '../harness/fake-runtime.js';

const log = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'berth-credentials-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A helper script: logs each server URL it is asked for, and answers by it. */
function helper(name: string, body: string): void {
  const path = join(dir, `docker-credential-${name}`);
  writeFileSync(path, `#!/bin/sh\n[ "$1" = get ] || exit 2\nread url\necho "$url" >> '${join(dir, `${name}.asked`)}'\n${body}\n`);
  chmodSync(path, 0o755);
}
const asked = (name: string) =>
  readFileSync(join(dir, `${name}.asked`), 'utf8')
    .trim()
    .split('\n');

helper('ecr', `echo '{"ServerURL":"'"$url"'","Username":"AWS","Secret":"token-for-'"$url"'"}'`);
helper('store', 'case "$url" in registry.store:5000) echo \'{"Username":"u","Secret":"from-store"}\' ;; *) echo "credentials not found in native keychain"; exit 1 ;; esac');
helper('broken', 'echo "the secret would be here"; exit 7');
helper('token', 'echo \'{"Username":"<token>","Secret":"refresh"}\'');

describe('Docker credential helpers and config files', () => {
  const config = join(dir, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      auths: {
        'registry.auths:5000': { auth: Buffer.from('alice:pa:ss').toString('base64') },
        'registry.store:5000': { auth: Buffer.from('ignored:x').toString('base64') },
        'https://index.docker.io/v1/': { username: 'hub', password: 'hubpass' },
      },
      credHelpers: { 'ecr.example:443': 'ecr', 'broken.example': 'broken', 'token.example': 'token', 'missing.example': 'nothere' },
      credsStore: 'store',
    }),
  );
  let clock = 0;
  const credentials = new DockerCredentials({ configFile: config, helperDirs: [dir], cacheTtlMs: 1000, helperTimeoutMs: 5000 }, log, () => clock);

  it("asks a registry's credHelper with its server URL, else the credsStore, else the auths entry", async () => {
    assert.deepEqual(await credentials.credentialsFor('ecr.example:443'), { username: 'AWS', password: 'token-for-ecr.example:443' });
    assert.deepEqual(asked('ecr'), ['ecr.example:443']);
    assert.deepEqual(await credentials.credentialsFor('registry.store:5000'), { username: 'u', password: 'from-store' }, 'the store first');
    assert.deepEqual(await credentials.credentialsFor('registry.auths:5000'), { username: 'alice', password: 'pa:ss' }, "not in the store: the file's auths");
    assert.deepEqual(await credentials.credentialsFor('docker.io'), { username: 'hub', password: 'hubpass' });
    assert.ok(asked('store').includes('https://index.docker.io/v1/'), "Docker Hub is asked for by Docker's URL for it");
    assert.equal(await credentials.credentialsFor('nowhere.example'), undefined);
  });

  it('caches for the TTL, asks again after it or after invalidate, and never quotes what a failing helper printed', async () => {
    const before = asked('ecr').length;
    await credentials.credentialsFor('ecr.example:443');
    assert.equal(asked('ecr').length, before, 'cached');
    clock += 1001;
    await credentials.credentialsFor('ecr.example:443');
    assert.equal(asked('ecr').length, before + 1, 'expired');
    credentials.invalidate('ecr.example:443');
    await credentials.credentialsFor('ecr.example:443');
    assert.equal(asked('ecr').length, before + 2, 'refused by the registry');
    await assert.rejects(credentials.credentialsFor('broken.example'), (error: Error) => error.message === 'docker-credential-broken get failed with exit code 7');
    await assert.rejects(credentials.credentialsFor('token.example'), /identity token, which berth does not support/);
    await assert.rejects(credentials.credentialsFor('missing.example'), /docker-credential-nothere is not installed/);
  });
});

describe('image manager with a credential source', () => {
  const IMAGE = 'registry.test/private:1';
  /** Hands out a stale password first, the right one after an invalidate. */
  class RotatingSource implements RegistryCredentialSource {
    asked = 0;
    invalidated = 0;
    constructor(private readonly answers: (RegistryAuth | undefined)[]) {}
    async credentialsFor(): Promise<RegistryAuth | undefined> {
      return this.answers[Math.min(this.asked++, this.answers.length - 1)];
    }
    invalidate(): void {
      this.invalidated++;
    }
  }
  const setup = (source: RotatingSource) => {
    const runtime = new FakeRuntime();
    runtime.registry.add(IMAGE);
    runtime.privateImages.set(IMAGE, 'right');
    return { runtime, images: new ImageManager(runtime, UNIT_IMAGE_SETTINGS, log, undefined, undefined, source) };
  };

  it("pulls again with fresh credentials when the registry refuses the helper's, once", async () => {
    const source = new RotatingSource([
      { username: 'u', password: 'stale' },
      { username: 'u', password: 'right' },
    ]);
    const { runtime, images } = setup(source);
    assert.deepEqual(await images.prepare(IMAGE, undefined, new AbortController().signal), { ok: true, pulled: true });
    assert.deepEqual([source.asked, source.invalidated], [2, 1]);
    assert.equal(runtime.calls.filter((c) => c.startsWith('pull')).length, 2);
  });

  it('fails with the reason when the fresh credentials are the same, and never asks for the task that brings its own', async () => {
    const source = new RotatingSource([{ username: 'u', password: 'stale' }]);
    const { images } = setup(source);
    const result = await images.prepare(IMAGE, undefined, new AbortController().signal);
    assert.ok(!result.ok && /authentication required/.test(result.reason), JSON.stringify(result));
    const asked = source.asked;
    await images.prepare(IMAGE, { username: 'u', password: 'right' }, new AbortController().signal);
    assert.equal(source.asked, asked);
  });
});
