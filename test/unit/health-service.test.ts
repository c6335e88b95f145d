import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Client, credentials, Server, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import { addHealth, TASK_SERVICE_NAME } from '../../src/server/health.js';
import { HealthCheckClient } from '../harness/grpc-clients.js';

/** The runtime monitor and the state store as health sees them: a flag each, and their change events. */
class Flag extends EventEmitter {
  constructor(public value: boolean) {
    super();
  }
  get availability() {
    return { available: this.value, reason: this.value ? '' : 'down' };
  }
  get writable() {
    return this.value;
  }
  readonly failureReason = undefined;
  set(value: boolean): void {
    this.value = value;
    this.emit('change', value);
  }
}

/** Collects a Watch stream's statuses; `next` waits for the one after those seen. */
function collect(stream: NodeJS.ReadableStream) {
  const seen: string[] = [];
  let waiting: (() => void) | undefined;
  let error: ServiceError | undefined;
  stream.on('data', (m: { status: string }) => {
    seen.push(m.status);
    waiting?.();
  });
  stream.on('error', (e: ServiceError) => {
    error = e;
    waiting?.();
  });
  return {
    seen,
    get error() {
      return error;
    },
    next: (count: number) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${count} statuses not seen: ${seen.join(',')}`)), 10_000);
        const check = () => {
          if (seen.length < count && !error) return;
          clearTimeout(timer);
          waiting = undefined;
          resolve();
        };
        waiting = check;
        check();
      }),
  };
}

/** A real gRPC server with health alone, on a unix socket, and a client of it. */
async function healthServer(dir: string, name: string, maxWatchers?: number) {
  const socket = join(dir, `${name}.sock`);
  const runtime = new Flag(true);
  const store = new Flag(true);
  const server = new Server();
  addHealth(server, runtime, store, maxWatchers);
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (error) => (error ? reject(error) : resolve())));
  const client = new HealthCheckClient(socket);
  return {
    socket,
    runtime,
    store,
    client,
    close: () => {
      client.close();
      server.forceShutdown();
    },
  };
}

describe('grpc.health.v1 (a real gRPC server, read by a client built from the published health.proto)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-health-'));
  let served: Awaited<ReturnType<typeof healthServer>>;
  let client: HealthCheckClient;
  let runtime: Flag;
  let store: Flag;
  let socket: string;

  before(async () => {
    served = await healthServer(dir, 'health');
    ({ client, runtime, store, socket } = served);
  });
  after(() => {
    served?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers Check and List for the server and the task service, NOT_FOUND for another name', async () => {
    assert.equal(await client.check(''), 'SERVING');
    assert.equal(await client.check(TASK_SERVICE_NAME), 'SERVING');
    assert.deepEqual(await client.list(), { '': 'SERVING', [TASK_SERVICE_NAME]: 'SERVING' });
    await assert.rejects(client.check('other.Service'), (e: ServiceError) => e.code === status.NOT_FOUND && /other\.Service/.test(e.details));
  });

  it('sends a Watch the status now and at each change, once per change', async () => {
    const watch = client.watch(TASK_SERVICE_NAME);
    const statuses = collect(watch);
    await statuses.next(1);
    store.set(false);
    await statuses.next(2);
    runtime.set(false); // still NOT_SERVING: nothing to send
    runtime.set(true);
    store.set(true);
    await statuses.next(3);
    assert.deepEqual(statuses.seen, ['SERVING', 'NOT_SERVING', 'SERVING']);
    assert.equal(await client.check(''), 'SERVING');
    watch.cancel();
  });

  it('answers a Watch of an unknown name SERVICE_UNKNOWN, and refuses Watches past the limit until one ends', async () => {
    const limited = await healthServer(dir, 'limited', 3);
    try {
      await watchesPastTheLimit(limited.client);
    } finally {
      limited.close();
    }
  });

  async function watchesPastTheLimit(client: HealthCheckClient): Promise<void> {
    const streams = [client.watch('nobody'), client.watch(''), client.watch('')];
    const collected = streams.map(collect);
    await Promise.all(collected.map((c) => c.next(1)));
    assert.deepEqual(
      collected.map((c) => c.seen[0]),
      ['SERVICE_UNKNOWN', 'SERVING', 'SERVING'],
    );
    const refused = collect(client.watch(''));
    await refused.next(1);
    assert.equal(refused.error?.code, status.RESOURCE_EXHAUSTED);
    assert.match(refused.error?.details ?? '', /at most 3/);
    streams[0]!.cancel();
    // The cancel reaches the server a moment later: tried again a bounded number of times.
    let accepted = false;
    for (let i = 0; i < 50 && !accepted; i++) {
      const stream = client.watch('');
      const attempt = collect(stream);
      await attempt.next(1);
      accepted = !attempt.error;
      stream.cancel();
      if (!accepted) await delay(100);
    }
    assert.ok(accepted, 'a Watch is taken again once one ended');
    for (const stream of streams) stream.cancel();
  }

  it('answers a request that does not decode INVALID_ARGUMENT', async () => {
    const raw = new Client(`unix://${socket}`, credentials.createInsecure());
    try {
      const error = await new Promise<ServiceError>((resolve) =>
        raw.makeUnaryRequest(
          '/grpc.health.v1.Health/Check',
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.from([0x0a, 0x7f]), // field 1, 127 bytes announced, none there
          (e) => resolve(e!),
        ),
      );
      assert.equal(error.code, status.INVALID_ARGUMENT);
      assert.match(error.details, /cannot decode the request/);
    } finally {
      raw.close();
    }
  });
});
