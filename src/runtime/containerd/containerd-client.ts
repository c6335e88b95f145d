import { credentials, Metadata, status, type CallOptions, type Client, type ClientOptions, type ServiceError } from '@grpc/grpc-js';
import { ContainersClient } from '../../gen/containerd/services/containers/v1/containers.js';
import { ContentClient } from '../../gen/containerd/services/content/v1/content.js';
import { DiffClient } from '../../gen/containerd/services/diff/v1/diff.js';
import { EventsClient } from '../../gen/containerd/services/events/v1/events.js';
import { ImagesClient } from '../../gen/containerd/services/images/v1/images.js';
import { LeasesClient } from '../../gen/containerd/services/leases/v1/leases.js';
import { SnapshotsClient } from '../../gen/containerd/services/snapshots/v1/snapshots.js';
import { TasksClient } from '../../gen/containerd/services/tasks/v1/tasks.js';
import { VersionClient } from '../../gen/containerd/services/version/v1/version.js';
import { RuntimeError, type RuntimeErrorKind } from '../errors.js';

/** containerd's own limit; content reads and big lists need more than grpc-js's 4 MiB default. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export interface CallContext {
  /** Attaches what the call creates to this lease. */
  lease?: string;
  /** Deadline of the call in ms; omitted for calls that wait on purpose (Tasks.Wait). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Maps a gRPC status from containerd to the runtime error vocabulary. */
export function containerdError(operation: string, error: unknown): RuntimeError {
  if (error instanceof RuntimeError) return error;
  const e = error as Partial<ServiceError>;
  const kinds: Partial<Record<number, RuntimeErrorKind>> = {
    [status.NOT_FOUND]: 'not-found',
    [status.ALREADY_EXISTS]: 'already-exists',
    [status.UNAVAILABLE]: 'unavailable',
    [status.DEADLINE_EXCEEDED]: 'timeout',
    [status.INVALID_ARGUMENT]: 'invalid',
    [status.FAILED_PRECONDITION]: 'conflict',
    [status.UNAUTHENTICATED]: 'unauthorized',
    [status.PERMISSION_DENIED]: 'unauthorized',
    [status.CANCELLED]: 'unavailable',
  };
  const kind = (e.code !== undefined && kinds[e.code]) || 'internal';
  return new RuntimeError(kind, operation, e.details || e.message || String(error), { cause: error });
}

type Unary<Req, Res> = (request: Req, metadata: Metadata, options: Partial<CallOptions>, callback: (error: ServiceError | null, response: Res) => void) => unknown;

/**
 * One connection to containerd with a client per service. Every call carries the namespace (and a
 * lease when given), has a deadline unless it waits on purpose, and fails with a RuntimeError.
 */
export class ContainerdClient {
  readonly version: VersionClient;
  readonly leases: LeasesClient;
  readonly content: ContentClient;
  readonly images: ImagesClient;
  readonly snapshots: SnapshotsClient;
  readonly diff: DiffClient;
  readonly containers: ContainersClient;
  readonly tasks: TasksClient;
  readonly events: EventsClient;
  private readonly all: Client[];

  constructor(
    socketPath: string,
    readonly namespace: string,
    private readonly defaultTimeoutMs: number,
  ) {
    const address = `unix://${socketPath}`;
    // No channelz: nothing reads it, and it counts and timestamps every call and message.
    const options: ClientOptions = { 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES, 'grpc.enable_channelz': 0 };
    const insecure = credentials.createInsecure();
    this.version = new VersionClient(address, insecure, options);
    // All clients share the first one's channel.
    const shared = { ...options, channelOverride: this.version.getChannel() };
    this.leases = new LeasesClient(address, insecure, shared);
    this.content = new ContentClient(address, insecure, shared);
    this.images = new ImagesClient(address, insecure, shared);
    this.snapshots = new SnapshotsClient(address, insecure, shared);
    this.diff = new DiffClient(address, insecure, shared);
    this.containers = new ContainersClient(address, insecure, shared);
    this.tasks = new TasksClient(address, insecure, shared);
    this.events = new EventsClient(address, insecure, shared);
    this.all = [this.version, this.leases, this.content, this.images, this.snapshots, this.diff, this.containers, this.tasks, this.events];
  }

  metadata(context: CallContext = {}): Metadata {
    const metadata = new Metadata();
    metadata.set('containerd-namespace', this.namespace);
    if (context.lease) metadata.set('containerd-lease', context.lease);
    return metadata;
  }

  /** Calls a unary method: `client.call(this.client.tasks, this.client.tasks.get, request)`. */
  call<Req, Res>(operation: string, target: Client, method: Unary<Req, Res>, request: Req, context: CallContext = {}): Promise<Res> {
    const timeoutMs = context.timeoutMs ?? this.defaultTimeoutMs;
    const deadline = Number.isFinite(timeoutMs) ? new Date(Date.now() + timeoutMs) : undefined;
    return new Promise<Res>((resolve, reject) => {
      if (context.signal?.aborted) return reject(new RuntimeError('internal', operation, 'aborted'));
      const call = method.call(target, request, this.metadata(context), deadline ? { deadline } : {}, (error, response) => {
        context.signal?.removeEventListener('abort', onAbort);
        if (error) reject(containerdError(operation, error));
        else resolve(response);
      }) as { cancel(): void };
      const onAbort = () => call.cancel();
      context.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  close(): void {
    for (const client of this.all) client.close();
  }
}
