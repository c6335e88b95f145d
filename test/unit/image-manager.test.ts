import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { ImageManager, type ImageSettings } from '../../src/engine/images/image-manager.js';
import { UNIT_IMAGE_SETTINGS } from '../harness/engine-harness.js';
import { FakeRuntime } from '../harness/fake-runtime.js';

const IMAGE = 'registry.test/app:1';
const log = pino({ level: 'silent' });

function setup(settings: Partial<ImageSettings> = {}, now = () => new Date()) {
  const runtime = new FakeRuntime();
  runtime.registry.add(IMAGE);
  return { runtime, images: new ImageManager(runtime, { ...UNIT_IMAGE_SETTINGS, ...settings }, log, undefined, now) };
}
const signal = () => new AbortController().signal;
const pulls = (runtime: FakeRuntime) => runtime.calls.filter((c) => c.startsWith('pull')).length;

describe('image manager', () => {
  it('default: pulls every time, and falls back to the cached image when the pull fails', async () => {
    const { runtime, images } = setup();
    assert.deepEqual(await images.prepare(IMAGE, undefined, signal()), { ok: true, pulled: true });
    await images.prepare(IMAGE, undefined, signal());
    assert.equal(pulls(runtime), 2);
    runtime.registry.delete(IMAGE);
    const fallback = await images.prepare(IMAGE, undefined, signal());
    assert.ok(fallback.ok && !fallback.pulled);
    assert.match(fallback.note ?? '', /the pull failed \(.*\); using the cached image/);
    const missing = await images.prepare('registry.test/none:1', undefined, signal());
    assert.ok(!missing.ok && /the registry has no such image/.test(missing.reason));
  });

  it('always: a failed pull fails, even with the image cached', async () => {
    const { runtime, images } = setup({ pullBehavior: 'always' });
    await images.prepare(IMAGE, undefined, signal());
    runtime.registry.delete(IMAGE);
    const result = await images.prepare(IMAGE, undefined, signal());
    assert.equal(result.ok, false);
  });

  it('once: pulls only until one pull succeeded; prefer-cached: only when absent', async () => {
    const once = setup({ pullBehavior: 'once' });
    await once.images.prepare(IMAGE, undefined, signal());
    await once.images.prepare(IMAGE, undefined, signal());
    assert.equal(pulls(once.runtime), 1);
    const cached = setup({ pullBehavior: 'prefer-cached' });
    cached.runtime.local.add(IMAGE);
    assert.deepEqual(await cached.images.prepare(IMAGE, undefined, signal()), { ok: true, pulled: false });
    assert.equal(pulls(cached.runtime), 0);
  });

  it('prefer-cached: launches of one image asking together share one presence check; a later one checks again', async () => {
    const { runtime, images } = setup({ pullBehavior: 'prefer-cached' });
    runtime.local.add(IMAGE);
    let inspects = 0;
    const inspect = runtime.inspectImage.bind(runtime);
    runtime.inspectImage = async (reference) => {
      inspects++;
      return inspect(reference);
    };
    const results = await Promise.all(Array.from({ length: 20 }, () => images.prepare(IMAGE, undefined, signal())));
    assert.ok(results.every((r) => r.ok && !r.pulled));
    assert.equal(inspects, 1);
    // Gone since: the next launch sees it and pulls.
    runtime.local.delete(IMAGE);
    assert.deepEqual(await images.prepare(IMAGE, undefined, signal()), { ok: true, pulled: true });
    assert.equal(inspects, 2);
    assert.equal(pulls(runtime), 1);
  });

  it('lets a task use a cached image pulled with credentials only if the registry accepts its own, for a while', async () => {
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const { runtime, images } = setup({ pullBehavior: 'prefer-cached', accessCheckValidityMs: 60_000 }, () => new Date(clock));
    runtime.privateImages.set(IMAGE, 'right');
    const right = { username: 'u', password: 'right' };
    assert.deepEqual(await images.prepare(IMAGE, right, signal()), { ok: true, pulled: true });
    const checks = () => runtime.calls.filter((c) => c.startsWith('check')).length;

    // The puller's own credentials were accepted by the pull itself: no question to the registry.
    assert.deepEqual(await images.prepare(IMAGE, right, signal()), { ok: true, pulled: false });
    assert.equal(checks(), 0);
    for (const auth of [{ username: 'u', password: 'guess' }, undefined]) {
      const refused = await images.prepare(IMAGE, auth, signal());
      assert.ok(!refused.ok && /the registry does not let this task's credentials pull registry\.test\/app:1 .*not used/.test(refused.reason), JSON.stringify(refused));
      assert.ok(!refused.ok && !refused.reason.includes('guess'));
    }
    assert.equal(checks(), 2, 'a refusal is not remembered');

    // Other credentials the registry accepts: checked once, then trusted until the validity ends.
    runtime.privateImages.set(IMAGE, 'rotated');
    const rotated = { username: 'u', password: 'rotated' };
    assert.deepEqual(await images.prepare(IMAGE, rotated, signal()), { ok: true, pulled: false });
    assert.deepEqual(await images.prepare(IMAGE, rotated, signal()), { ok: true, pulled: false });
    assert.equal(checks(), 3);
    clock += 60_001;
    assert.deepEqual(await images.prepare(IMAGE, rotated, signal()), { ok: true, pulled: false });
    assert.equal(checks(), 4);

    // A registry that cannot be asked does not stop the task; the note says what happened.
    clock += 60_001;
    runtime.registryDown = true;
    const unchecked = await images.prepare(IMAGE, rotated, signal());
    assert.ok(unchecked.ok && !unchecked.pulled);
    assert.match(unchecked.note ?? '', /the registry could not be asked whether this task's credentials may pull the image \(connection refused\); using the cached image/);
    assert.equal(pulls(runtime), 1);
  });

  it('uses a cached image pulled without credentials for any task, without asking the registry', async () => {
    const { runtime, images } = setup({ pullBehavior: 'once' });
    await images.prepare(IMAGE, undefined, signal());
    assert.deepEqual(await images.prepare(IMAGE, { username: 'u', password: 'p' }, signal()), { ok: true, pulled: false });
    assert.equal(runtime.calls.filter((c) => c.startsWith('check')).length, 0);
  });

  it('runs one pull for many callers of the same image, sharing its progress', async () => {
    const { runtime, images } = setup();
    runtime.heldPulls.set(IMAGE, () => undefined);
    const started = new Promise((resolve) => (runtime.onPull = resolve));
    const seen: number[] = [];
    const all = Array.from({ length: 10 }, (_, i) => images.prepare(IMAGE, undefined, signal(), () => seen.push(i)));
    await started;
    runtime.releasePull(IMAGE);
    const results = await Promise.all(all);
    assert.ok(results.every((r) => r.ok));
    assert.equal(pulls(runtime), 1);
  });

  it('runs at most maxConcurrentPulls pulls at once', async () => {
    const { runtime, images } = setup({ maxConcurrentPulls: 2 });
    const refs = ['r/a:1', 'r/b:1', 'r/c:1', 'r/d:1'];
    refs.forEach((r) => {
      runtime.registry.add(r);
      runtime.heldPulls.set(r, () => undefined);
    });
    let startedCount = 0;
    let twoStarted!: () => void;
    const two = new Promise<void>((resolve) => (twoStarted = resolve));
    runtime.onPull = () => {
      startedCount++;
      if (startedCount === 2) twoStarted();
    };
    const all = refs.map((r) => images.prepare(r, undefined, signal()));
    await two;
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(pulls(runtime), 2, 'only two pulls in flight');
    // Releases the two running pulls and un-holds the two waiting ones.
    for (const r of refs) runtime.releasePull(r);
    const results = await Promise.all(all);
    assert.ok(results.every((r) => r.ok));
    assert.equal(pulls(runtime), 4);
  });

  it('abandons a pull that makes no progress for the inactivity timeout', async () => {
    const { runtime, images } = setup({ pullInactivityTimeoutMs: 50 });
    runtime.heldPulls.set(IMAGE, () => undefined);
    const result = await images.prepare(IMAGE, undefined, signal());
    assert.ok(!result.ok && /no progress for 50 ms/.test(result.reason), JSON.stringify(result));
  });

  it('cleans up on its timer once started', async () => {
    const { runtime, images } = setup({ cleanup: { enabled: true, intervalMs: 20, minimumAgeMs: 0, perCycle: 5, exclude: [] } });
    await images.prepare(IMAGE, undefined, signal());
    const removed = new Promise<string>((resolve) => (runtime.onRemoveImage = resolve));
    images.startCleanup();
    // The cleanup timer does not hold the process open (unref): this test's wait does.
    const keepAlive = setTimeout(() => undefined, 10_000);
    try {
      assert.equal(await removed, IMAGE, 'the unused image went at a tick of the timer');
    } finally {
      clearTimeout(keepAlive);
      images.stop();
    }
    assert.ok(!runtime.local.has(IMAGE));
  });

  it('cleans up only unused images it pulled, old enough, not excluded, least recently used first', async () => {
    let now = 0;
    const { runtime, images } = setup({ cleanup: { enabled: true, intervalMs: 1000, minimumAgeMs: 100, perCycle: 2, exclude: ['r/excluded:1'] } }, () => new Date(now));
    for (const r of ['r/old:1', 'r/older:1', 'r/excluded:1', 'r/used:1', 'r/young:1', 'r/third:1']) runtime.registry.add(r);
    await images.prepare('r/older:1', undefined, signal());
    now = 10;
    await images.prepare('r/old:1', undefined, signal());
    await images.prepare('r/third:1', undefined, signal());
    await images.prepare('r/excluded:1', undefined, signal());
    images.use('task-1', 'r/used:1');
    await images.prepare('r/used:1', undefined, signal());
    now = 200;
    await images.prepare('r/young:1', undefined, signal());
    runtime.local.add('r/not-ours:1');
    assert.deepEqual(images.candidates(), ['r/older:1', 'r/old:1']);
    assert.deepEqual(await images.cleanupOnce(), ['r/older:1', 'r/old:1']);
    assert.ok(!runtime.local.has('r/older:1') && runtime.local.has('r/used:1') && runtime.local.has('r/excluded:1') && runtime.local.has('r/not-ours:1'));
    assert.deepEqual(images.candidates(), ['r/third:1']);
    images.release('task-1');
    now = 400;
    assert.deepEqual(images.candidates(), ['r/third:1', 'r/used:1']);
  });
});
