import { status } from '@grpc/grpc-js';
import { ConnectOptionsError } from '../client/connection.js';
import { toBerthError } from '../client/errors.js';

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

export { DEFAULT_ADDRESS } from '../client/connection.js';

/**
 * What to tell the user about a failed call: the agent's message, the fields it named, and what
 * to do next; with the exit code that goes with it.
 */
export function explain(error: unknown, address: string): CliError {
  if (error instanceof CliError) return error;
  if (error instanceof ConnectOptionsError) return new CliError(error.message, EXIT.usage);
  // Anything without a gRPC status (a task that stopped while waited for…) is UNKNOWN: its message, exit 1.
  const e = toBerthError(error);
  const details = e.statusDetails;
  const message = e.message.replace(/\.? *Resolution note: *$/, '');
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
