/**
 * Random and mutated requests for every RPC of TaskService (fast-check), and a driver that sends
 * them to a running agent and checks what comes back: only documented status codes, never
 * INTERNAL or UNKNOWN; valid definitions accepted; GetAgentInfo answered throughout.
 */
import assert from 'node:assert/strict';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import fc from 'fast-check';
import { DependencyCondition, NetworkMode, TransportProtocol, type ContainerDefinition, type TaskDefinition } from '../../src/gen/berth/agent/v1/task_definition.js';
import { LogStream, TaskServiceClient } from '../../src/gen/berth/agent/v1/task_service.js';
import { container, task } from './task-builders.js';

/** Codes the API documents; anything else (INTERNAL, UNKNOWN, …) fails the fuzz test. */
export const DOCUMENTED_CODES = new Set([
  status.OK,
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.ALREADY_EXISTS,
  status.RESOURCE_EXHAUSTED,
  status.FAILED_PRECONDITION,
  status.PERMISSION_DENIED,
  status.DEADLINE_EXCEEDED,
  status.OUT_OF_RANGE,
  status.UNAVAILABLE,
  status.CANCELLED,
]);

const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/);
/** Strings a sloppy or hostile client sends: empty, unicode, NUL, separators, long. */
const anyString = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', ' ', '\0', 'a;b=c', '../../etc/passwd', '//', 'Not::A@@Valid/Reference', 'x'.repeat(5000), '\u{1F600}'),
);
const anyInt = fc.oneof(fc.integer({ min: -5, max: 70_000 }), fc.constantFrom(-(2 ** 31), 2 ** 31 - 1, 0, 1, 65535, 65536));
const anyEnum = fc.oneof(fc.integer({ min: 0, max: 6 }), fc.constantFrom(-1, 99, 2 ** 31 - 1));
const anyDuration = fc.option(
  fc.record({ seconds: fc.oneof(fc.integer({ min: -10, max: 100_000 }), fc.constantFrom(2 ** 40, 2 ** 52, -(2 ** 40))), nanos: fc.integer({ min: -999_999_999, max: 999_999_999 }) }),
  { nil: undefined },
);

/** A definition the agent must accept: 1 to 3 containers of `image`, quick to run. */
export function validDefinition(
  image: string,
  idPrefix: string,
  extra: Partial<ContainerDefinition> = {},
  networkModes = [NetworkMode.NETWORK_MODE_NONE, NetworkMode.NETWORK_MODE_UNSPECIFIED, NetworkMode.NETWORK_MODE_BRIDGE],
): fc.Arbitrary<TaskDefinition> {
  return fc
    .record({
      suffix: fc.stringMatching(/^[a-z0-9]{6,12}$/),
      names: fc.uniqueArray(name, { minLength: 1, maxLength: 3 }),
      environment: fc.dictionary(
        fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,10}$/),
        fc.string({ maxLength: 30 }).filter((v) => !v.includes('\0')),
        { maxKeys: 5 },
      ),
      labels: fc.dictionary(
        fc.stringMatching(/^[a-z][a-z0-9.-]{0,10}$/).filter((k) => !k.startsWith('berth.')),
        fc.string({ maxLength: 20 }).filter((v) => !v.includes('\0')),
        { maxKeys: 3 },
      ),
      port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
      networkMode: fc.constantFrom(...networkModes),
      family: fc.option(fc.stringMatching(/^[a-z][a-z0-9_-]{0,20}$/), { nil: '' }),
    })
    .map(({ suffix, names, environment, labels, port, networkMode, family }) => {
      const withPort = port !== undefined && networkMode !== NetworkMode.NETWORK_MODE_NONE;
      return task(
        `${idPrefix}-${suffix}`,
        names.map((n, i) =>
          container(n, image, {
            environment,
            labels,
            essential: i === 0 ? undefined : false,
            portMappings: withPort && i === 0 ? [{ containerPort: port, hostPort: 0, protocol: TransportProtocol.TRANSPORT_PROTOCOL_TCP, hostIp: '', containerPortRange: '' }] : [],
            ...extra,
          }),
        ),
        { networkMode, family: family ?? '' },
      );
    });
}

/** A valid definition with one field replaced by what a careless or hostile client might send. */
export function mutatedDefinition(image: string, idPrefix: string): fc.Arbitrary<TaskDefinition> {
  const mutations: fc.Arbitrary<(t: TaskDefinition) => void>[] = [
    anyString.map((v) => (t) => void (t.id = v)),
    anyString.map((v) => (t) => void (t.family = v)),
    anyEnum.map((v) => (t) => void (t.networkMode = v)),
    anyInt.map((v) => (t) => void (t.cpuUnits = v)),
    fc.oneof(anyInt, fc.constantFrom(2 ** 50)).map((v) => (t) => void (t.memoryMib = v)),
    anyString.map((v) => (t) => void (t.containers[0]!.name = v)),
    anyString.map((v) => (t) => void (t.containers[0]!.image = v)),
    fc.array(anyString, { maxLength: 5 }).map((v) => (t) => void (t.containers[0]!.command = v)),
    fc.dictionary(anyString, anyString, { maxKeys: 4 }).map((v) => (t) => void (t.containers[0]!.environment = v)),
    fc.dictionary(anyString, anyString, { maxKeys: 4 }).map((v) => (t) => void (t.containers[0]!.labels = v)),
    anyString.map((v) => (t) => void (t.containers[0]!.workingDirectory = v)),
    anyString.map((v) => (t) => void (t.containers[0]!.user = v)),
    anyInt.map((v) => (t) => void (t.containers[0]!.memoryMib = v)),
    anyInt.map((v) => (t) => void (t.containers[0]!.memoryReservationMib = v)),
    anyInt.map((v) => (t) => void (t.containers[0]!.pidsLimit = v)),
    fc.integer({ min: 0, max: 2 ** 32 - 1 }).map((v) => (t) => void (t.containers[0]!.gpuCount = v)),
    fc
      .array(fc.record({ containerPort: fc.integer({ min: 0, max: 70_000 }), hostPort: fc.integer({ min: 0, max: 70_000 }), protocol: anyEnum, hostIp: anyString, containerPortRange: anyString }), {
        maxLength: 4,
      })
      .map((v) => (t) => void (t.containers[0]!.portMappings = v)),
    fc.array(fc.record({ containerName: anyString, condition: anyEnum }), { maxLength: 3 }).map((v) => (t) => void (t.containers[0]!.dependsOn = v)),
    fc
      .array(fc.record({ hostPath: anyString, containerPath: anyString, readOnly: fc.boolean(), sourceVolume: anyString }), { maxLength: 3 })
      .map((v) => (t) => void (t.containers[0]!.mountPoints = v)),
    fc
      .array(
        fc.record({
          name: anyString,
          host: fc.option(fc.record({ sourcePath: anyString }), { nil: undefined }),
          dockerVolumeConfiguration: fc.option(
            fc.record({
              scope: anyEnum,
              autoprovision: fc.boolean(),
              driver: anyString,
              driverOpts: fc.dictionary(anyString, anyString, { maxKeys: 3 }),
              labels: fc.dictionary(anyString, anyString, { maxKeys: 3 }),
            }),
            { nil: undefined },
          ),
        }),
        { maxLength: 3 },
      )
      .map((v) => (t) => void (t.volumes = v)),
    fc.array(fc.record({ sourceContainer: anyString, readOnly: fc.boolean() }), { maxLength: 3 }).map((v) => (t) => void (t.containers[0]!.volumesFrom = v)),
    fc.array(fc.record({ name: anyString, softLimit: anyInt, hardLimit: anyInt }), { maxLength: 3 }).map((v) => (t) => void (t.containers[0]!.ulimits = v)),
    fc
      .record({
        capabilities: fc.option(fc.record({ add: fc.array(anyString, { maxLength: 3 }), drop: fc.array(anyString, { maxLength: 3 }) }), { nil: undefined }),
        initProcessEnabled: fc.boolean(),
        sharedMemorySizeMib: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        tmpfs: fc.array(fc.record({ containerPath: anyString, sizeMib: fc.integer({ min: 0, max: 2 ** 32 - 1 }), mountOptions: fc.array(anyString, { maxLength: 3 }) }), { maxLength: 2 }),
        devices: fc.array(fc.record({ hostPath: anyString, containerPath: anyString, permissions: fc.array(anyString, { maxLength: 4 }) }), { maxLength: 2 }),
        maxSwapMib: fc.option(anyInt, { nil: undefined }),
        swappiness: fc.option(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { nil: undefined }),
      })
      .map((v) => (t) => void (t.containers[0]!.linuxParameters = v)),
    fc
      .record({
        hostname: anyString,
        stopSignal: anyString,
        dnsServers: fc.array(anyString, { maxLength: 4 }),
        dnsSearchDomains: fc.array(anyString, { maxLength: 7 }),
        readonlyRootFilesystem: fc.boolean(),
      })
      .map((v) => (t) => void Object.assign(t.containers[0]!, v)),
    fc.array(fc.record({ hostname: anyString, ipAddress: anyString }), { maxLength: 3 }).map((v) => (t) => void (t.containers[0]!.extraHosts = v)),
    fc.array(fc.record({ namespace: anyString, value: anyString }), { maxLength: 3 }).map((v) => (t) => void (t.containers[0]!.systemControls = v)),
    fc.array(anyString, { maxLength: 3 }).map((v) => (t) => void (t.containers[0]!.dockerSecurityOptions = v)),
    fc.boolean().map((v) => (t) => void (t.containers[0]!.disableNetworking = v)),
    fc.array(anyString, { maxLength: 3 }).map((v) => (t) => void (t.containers[0]!.links = v)),
    fc.record({ pid: anyEnum, ipc: anyEnum }).map((v) => (t) => void Object.assign(t, { pidMode: v.pid, ipcMode: v.ipc })),
    anyDuration.map((v) => (t) => void (t.containers[0]!.stopTimeout = v)),
    anyDuration.map((v) => (t) => void (t.containers[0]!.startTimeout = v)),
    fc
      .record({ command: fc.array(anyString, { maxLength: 3 }), interval: anyDuration, timeout: anyDuration, retries: fc.integer({ min: 0, max: 2 ** 32 - 1 }), startPeriod: anyDuration })
      .map((v) => (t) => void (t.containers[0]!.healthCheck = v)),
    fc
      .record({ enabled: fc.boolean(), ignoredExitCodes: fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 60 }), restartAttemptPeriod: anyDuration })
      .map((v) => (t) => void (t.containers[0]!.restartPolicy = v)),
    fc.record({ username: anyString, password: anyString }).map((v) => (t) => void (t.containers[0]!.registryCredentials = v)),
    fc.boolean().map((v) => (t) => void (t.containers[0]!.privileged = v)),
    fc
      .integer({ min: 0, max: 80 })
      .map(
        (n) => (t) =>
          void (t.containers = Array.from({ length: n }, (_, i) =>
            container(`c${i}`, image, { dependsOn: i > 0 ? [{ containerName: `c${i - 1}`, condition: DependencyCondition.DEPENDENCY_CONDITION_START }] : [] }),
          )),
      ),
  ];
  return fc.tuple(validDefinition(image, idPrefix, {}, [NetworkMode.NETWORK_MODE_NONE]), fc.array(fc.oneof(...mutations), { minLength: 1, maxLength: 3 })).map(([t, changes]) => {
    for (const change of changes) if (t.containers.length > 0) change(t);
    return t;
  });
}

/** One request of any RPC, for a task id chosen from `ids` or made up. */
export type FuzzRequest =
  /** `valid`: generated to be accepted (its id is made unique when sent). */
  | { rpc: 'runTask'; task: TaskDefinition; valid: boolean }
  | { rpc: 'stopTask'; taskId: string; reason: string }
  | { rpc: 'getTask'; taskId: string }
  | { rpc: 'listTasks'; statuses: number[]; family: string; pageSize: number; pageToken: string }
  | { rpc: 'exec'; taskId: string; containerName: string; command: string[]; timeout?: { seconds: number; nanos: number } }
  | { rpc: 'watchEvents'; fromSequence: number; includeSnapshot: boolean; taskIds: string[]; maxEventsPerMessage: number; maxBatchDelayMs: number }
  | { rpc: 'logs'; taskId: string; containerName: string; follow: boolean; tail: number; streams: number[] }
  | { rpc: 'stats'; taskId: string; containerName: string; stream: boolean; interval?: { seconds: number; nanos: number } }
  | { rpc: 'raw'; method: string; bytes: Uint8Array };

export function anyRequest(image: string, idPrefix: string, ids: () => string[], networkModes?: NetworkMode[]): fc.Arbitrary<FuzzRequest> {
  const taskId = fc.oneof(
    fc.constant(null).map(() => ids()[0] ?? 'none'),
    anyString,
  );
  const seq = fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.constantFrom(2 ** 40, 2 ** 53 - 1));
  return fc.oneof(
    { weight: 3, arbitrary: mutatedDefinition(image, idPrefix).map((t) => ({ rpc: 'runTask' as const, task: t, valid: false })) },
    { weight: 2, arbitrary: validDefinition(image, idPrefix, {}, networkModes).map((t) => ({ rpc: 'runTask' as const, task: t, valid: true })) },
    { weight: 1, arbitrary: fc.record({ taskId, reason: anyString }).map((r) => ({ rpc: 'stopTask' as const, ...r })) },
    { weight: 1, arbitrary: taskId.map((id) => ({ rpc: 'getTask' as const, taskId: id })) },
    {
      weight: 1,
      arbitrary: fc
        .record({ statuses: fc.array(anyEnum, { maxLength: 4 }), family: anyString, pageSize: fc.oneof(fc.constant(0), anyInt), pageToken: fc.oneof(fc.constant(''), anyString) })
        .map((r) => ({ rpc: 'listTasks' as const, ...r })),
    },
    { weight: 1, arbitrary: fc.record({ taskId, containerName: anyString, command: fc.array(anyString, { maxLength: 4 }), timeout: anyDuration }).map((r) => ({ rpc: 'exec' as const, ...r })) },
    {
      weight: 1,
      arbitrary: fc
        .record({
          fromSequence: seq,
          includeSnapshot: fc.boolean(),
          taskIds: fc.array(anyString, { maxLength: 3 }),
          maxEventsPerMessage: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 32 - 1 })),
          maxBatchDelayMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 0, max: 2 ** 32 - 1 })),
        })
        .map((r) => ({ rpc: 'watchEvents' as const, ...r })),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({ taskId, containerName: anyString, follow: fc.boolean(), tail: fc.integer({ min: 0, max: 100_000 }), streams: fc.array(anyEnum, { maxLength: 3 }) })
        .map((r) => ({ rpc: 'logs' as const, ...r })),
    },
    { weight: 1, arbitrary: fc.record({ taskId, containerName: anyString, stream: fc.boolean(), interval: anyDuration }).map((r) => ({ rpc: 'stats' as const, ...r })) },
    {
      weight: 1,
      arbitrary: fc
        .record({ method: fc.constantFrom('RunTask', 'StopTask', 'GetTask', 'ListTasks', 'Exec', 'GetAgentInfo'), bytes: fc.uint8Array({ maxLength: 200 }) })
        .map((r) => ({ rpc: 'raw' as const, ...r })),
    },
  );
}

/** What one request got back: its status code (OK for a stream that began well) and details. */
export interface FuzzOutcome {
  code: status;
  details: string;
}

const identity = (b: Buffer) => b;

/** Sends one request; streams are read for a moment, then cancelled. */
export function send(client: TaskServiceClient, request: FuzzRequest): Promise<FuzzOutcome> {
  const deadline = new Date(Date.now() + 5000);
  const unary = <Req>(method: 'runTask' | 'stopTask' | 'getTask' | 'listTasks' | 'exec', body: Req) =>
    new Promise<FuzzOutcome>((resolve) => {
      (client[method] as unknown as (r: Req, m: Metadata, o: object, cb: (e: ServiceError | null) => void) => void).call(client, body, new Metadata(), { deadline }, (error) =>
        resolve({ code: error?.code ?? status.OK, details: error?.details ?? '' }),
      );
    });
  const streaming = <Req>(method: 'watchEvents' | 'logs' | 'stats', body: Req) =>
    new Promise<FuzzOutcome>((resolve) => {
      const call = (client[method] as unknown as (r: Req, o: object) => NodeJS.EventEmitter & { cancel(): void }).call(client, body, { deadline });
      let settled = false;
      const settle = (outcome: FuzzOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        call.cancel();
        resolve(outcome);
      };
      // A stream still open after a moment has begun well.
      const timer = setTimeout(() => settle({ code: status.OK, details: 'open' }), 100);
      call.on('data', () => undefined);
      call.on('error', (error: ServiceError) => settle({ code: error.code, details: error.details }));
      call.on('end', () => settle({ code: status.OK, details: 'ended' }));
    });
  switch (request.rpc) {
    case 'runTask':
      return unary('runTask', { task: request.task });
    case 'stopTask':
      return unary('stopTask', { taskId: request.taskId, reason: request.reason });
    case 'getTask':
      return unary('getTask', { taskId: request.taskId });
    case 'listTasks':
      return unary('listTasks', { statuses: request.statuses, family: request.family, pageSize: request.pageSize, pageToken: request.pageToken });
    case 'exec':
      return unary('exec', { taskId: request.taskId, containerName: request.containerName, command: request.command, timeout: request.timeout });
    case 'watchEvents':
      return streaming('watchEvents', {
        fromSequence: request.fromSequence,
        includeSnapshot: request.includeSnapshot,
        taskIds: request.taskIds,
        maxEventsPerMessage: request.maxEventsPerMessage,
        maxBatchDelayMs: request.maxBatchDelayMs,
      });
    case 'logs':
      return streaming('logs', { taskId: request.taskId, containerName: request.containerName, follow: request.follow, tail: request.tail, since: undefined, streams: request.streams as LogStream[] });
    case 'stats':
      return streaming('stats', { taskId: request.taskId, containerName: request.containerName, stream: request.stream, interval: request.interval });
    case 'raw':
      return new Promise((resolve) => {
        client.makeUnaryRequest(`/berth.agent.v1.TaskService/${request.method}`, identity, identity, Buffer.from(request.bytes), new Metadata(), { deadline }, (error) =>
          resolve({ code: error?.code ?? status.OK, details: error?.details ?? '' }),
        );
      });
  }
}

/**
 * Sends GetAgentInfo every `everyMs` until stopped, keeping every answer's time (ms) in `samples`;
 * `stop` returns the slowest: proof that no request stalls the agent.
 */
export function probeAgentInfo(client: TaskServiceClient, everyMs = 50): { samples: number[]; stop(): Promise<number> } {
  const samples: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const start = performance.now();
      await new Promise<void>((resolve, reject) => client.getAgentInfo({}, (error) => (error ? reject(error) : resolve())));
      samples.push(performance.now() - start);
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    samples,
    async stop() {
      running = false;
      await loop;
      return Math.max(0, ...samples);
    },
  };
}

/** Checks one outcome: a documented code, and OK for a definition that is valid. */
export function checkOutcome(request: FuzzRequest, outcome: FuzzOutcome, valid: boolean): void {
  assert.ok(DOCUMENTED_CODES.has(outcome.code), `${request.rpc} answered ${status[outcome.code]}: ${outcome.details}`);
  if (valid) assert.equal(outcome.code, status.OK, `a valid definition was refused: ${outcome.details}`);
}

/**
 * Sends `runs` random requests to the agent behind `client` (one at a time, GetAgentInfo probed
 * alongside) and checks every answer. Valid definitions get ids of their own. Returns the ids of
 * the tasks it created and the slowest GetAgentInfo answer in ms.
 */
export async function fuzzAgent(
  client: TaskServiceClient,
  options: { image: string; idPrefix: string; runs: number; seed?: number; networkModes?: NetworkMode[] },
): Promise<{ created: string[]; slowestInfoMs: number; codes: Map<string, number> }> {
  const created: string[] = [];
  const codes = new Map<string, number>();
  let counter = 0;
  const probe = probeAgentInfo(client);
  let slowestInfoMs = 0;
  try {
    await fc.assert(
      fc.asyncProperty(
        anyRequest(options.image, options.idPrefix, () => created.slice(-3), options.networkModes),
        async (request) => {
          if (request.rpc === 'runTask' && request.valid) request.task.id = `${options.idPrefix}-v${counter++}`;
          const outcome = await send(client, request);
          const key = `${request.rpc} ${status[outcome.code]}`;
          codes.set(key, (codes.get(key) ?? 0) + 1);
          try {
            checkOutcome(request, outcome, request.rpc === 'runTask' && request.valid);
          } catch (error) {
            // fast-check shows the request; the assertion says what came back.
            throw new Error(`${(error as Error).message}`);
          }
          if (request.rpc === 'runTask' && outcome.code === status.OK && !created.includes(request.task.id)) created.push(request.task.id);
        },
      ),
      { numRuns: options.runs, seed: options.seed, endOnFailure: true },
    );
  } finally {
    slowestInfoMs = await probe.stop();
  }
  return { created, slowestInfoMs, codes };
}
