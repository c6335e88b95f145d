import { readFileSync } from 'node:fs';
import { credentials, Metadata, status, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import type { Task, TaskStatus } from '../gen/berth/agent/v1/task.js';
import { TaskServiceClient, type ListTasksRequest, type ListTasksResponse } from '../gen/berth/agent/v1/task_service.js';
import { readStatusDetails } from '../api/status-details.js';

/** berthctl's exit codes. `exec` passes the command's own exit code through instead. */
export const EXIT = {
  ok: 0,
  /** The agent answered with an error (not found, invalid, refused…), or a task ended badly. */
  failed: 1,
  /** The command line or a file given to it is wrong. */
  usage: 2,
  /** The agent cannot be reached (not running, wrong address, TLS mismatch). */
  unreachable: 3,
} as const;

/** An error berthctl reports in one message, and exits with. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export const DEFAULT_ADDRESS = 'unix:///run/berth/berth.sock';

export interface ConnectionOptions {
  /** A unix socket (unix:///path or /path) or host:port. */
  address: string;
  tls: boolean;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** The name to expect in the server's certificate, when it differs from the host in the address. */
  serverName?: string;
}

/** The target grpc-js understands for an address. */
export function grpcTarget(address: string): string {
  if (address.startsWith('unix:')) return address;
  if (address.startsWith('/')) return `unix://${address}`;
  return address;
}

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new CliError(`cannot read the ${what} ${file}: ${(error as Error).message}`, EXIT.usage);
  }
}

/** The HTTP/2 receive window berthctl asks for: more than the largest message the agent sends. */
const RECEIVE_WINDOW_BYTES = 4 * 1024 * 1024;

export function connect(options: ConnectionOptions): TaskServiceClient {
  let channel: ChannelCredentials = credentials.createInsecure();
  if (options.tls || options.caFile || options.certFile) {
    if ((options.certFile === undefined) !== (options.keyFile === undefined)) throw new CliError('--cert and --key go together (a client certificate and its key)', EXIT.usage);
    channel = credentials.createSsl(
      options.caFile ? read(options.caFile, 'CA certificate') : null,
      options.keyFile ? read(options.keyFile, 'client key') : null,
      options.certFile ? read(options.certFile, 'client certificate') : null,
    );
  }
  const channelOptions = {
    // A page of ListTasks or a part of the snapshot (up to 3 MiB) arrives without waiting for
    // window updates: HTTP/2's default window of 64 KiB takes a round trip for each 64 KiB.
    'grpc-node.flow_control_window': RECEIVE_WINDOW_BYTES,
    ...(options.serverName ? { 'grpc.ssl_target_name_override': options.serverName, 'grpc.default_authority': options.serverName } : {}),
  };
  return new TaskServiceClient(grpcTarget(options.address), channel, channelOptions);
}

/** Calls a unary method with a deadline. */
export function unary<Req, Res>(client: TaskServiceClient, method: keyof TaskServiceClient, request: Req, timeoutMs = 30_000): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = client[method] as unknown as (r: Req, m: object, o: object, cb: (e: ServiceError | null, v: Res) => void) => void;
    fn.call(client, request, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (error, value) => (error ? reject(error) : resolve(value)));
  });
}

/**
 * What to tell the user about a failed call: the agent's message, the fields it named, and what
 * to do next; with the exit code that goes with it.
 */
export function explain(error: unknown, address: string): CliError {
  if (error instanceof CliError) return error;
  const e = error as Partial<ServiceError>;
  if (typeof e.code !== 'number') return new CliError(error instanceof Error ? error.message : String(error), EXIT.failed);
  const details = readStatusDetails(e.metadata);
  const message = (e.details || e.message || 'unknown error').replace(/\.? *Resolution note: *$/, '');
  switch (e.code) {
    case status.UNAVAILABLE:
      if (details.errorInfo?.reason === 'RUNTIME_UNAVAILABLE') {
        return new CliError(`${message}\nThe agent runs, but its container runtime does not answer; \`berthctl info\` shows its state.`, EXIT.failed);
      }
      return new CliError(
        `cannot reach the berth agent at ${address}: ${message}\nIs the agent running? Point berthctl at it with --addr or BERTH_ADDR (a unix socket or host:port), and use --tls/--cacert/--cert/--key if it serves TLS.`,
        EXIT.unreachable,
      );
    case status.DEADLINE_EXCEEDED:
      return new CliError(`the agent at ${address} did not answer in time: ${message}`, EXIT.unreachable);
    case status.INVALID_ARGUMENT: {
      const fields = details.badRequest?.fieldViolations ?? [];
      return new CliError(fields.length > 0 ? `the agent refused the request:\n${fields.map((f) => `  ${f.field}: ${f.description}`).join('\n')}` : message, EXIT.failed);
    }
    case status.NOT_FOUND:
      return new CliError(`${message}\nList the tasks with \`berthctl ps -a\`.`, EXIT.failed);
    case status.PERMISSION_DENIED:
      return new CliError(`${message}\nThe agent's config must allow it (the setting is named above).`, EXIT.failed);
    case status.ALREADY_EXISTS:
      return new CliError(`${message}\nGive the task another id (--id), or stop the one that exists.`, EXIT.failed);
    case status.RESOURCE_EXHAUSTED: {
      const quota = details.quotaFailure?.violations.map((v) => `  ${v.description}`).join('\n');
      return new CliError(quota ? `${message}\n${quota}` : message, EXIT.failed);
    }
    case status.FAILED_PRECONDITION:
      return new CliError(message, EXIT.failed);
    default:
      return new CliError(message, EXIT.failed);
  }
}

/** Every task ListTasks has for the filter, following its pages. */
export async function listAllTasks(client: TaskServiceClient, filter: { statuses: TaskStatus[]; family: string }): Promise<Task[]> {
  const tasks: Task[] = [];
  let pageToken = '';
  // Bounded: a page holds at least one task, and ids only grow from page to page.
  for (let page = 0; page < 1_000_000; page++) {
    const response = await unary<ListTasksRequest, ListTasksResponse>(client, 'listTasks', { ...filter, pageSize: 1000, pageToken });
    tasks.push(...response.tasks);
    if (!response.nextPageToken) break;
    pageToken = response.nextPageToken;
  }
  return tasks;
}
