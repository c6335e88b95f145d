import { constants } from 'node:os';
import type { FieldViolation } from '../errors.js';
import { listBytes, type RequestLimits } from './request-limits.js';
import type { TerminalSize } from '../../runtime/types.js';

/** A terminal's columns and rows are each at most this. */
export const MAX_TERMINAL_CELLS = 10_000;
/** Variables one session may add to the container's environment. */
export const MAX_SESSION_ENVIRONMENT = 100;

/** What an interactive exec asks for, as the server hands it to the engine. */
export interface ExecSessionRequest {
  taskId: string;
  containerName: string;
  command: string[];
  tty: boolean;
  terminalSize?: TerminalSize;
  env: Record<string, string>;
  user: string;
  workingDir: string;
  stdin: boolean;
}

type Limits = Pick<RequestLimits, 'commandArguments' | 'commandBytes' | 'stringBytes' | 'environmentBytes'>;

/** Problems of a command to run in a container (Exec's and ExecSession's alike). */
export function commandViolations(command: string[], limits: Limits, field = 'command'): FieldViolation[] {
  const { commandArguments, commandBytes } = limits;
  if (command.length > commandArguments) return [{ field, description: `must have at most ${commandArguments} arguments (limit limits.commandArguments)` }];
  if (listBytes(command) > commandBytes) return [{ field, description: `must total at most ${commandBytes} bytes (limit limits.commandBytes)` }];
  if (command.length === 0 || command[0] === '') return [{ field, description: 'must name the program to run' }];
  if (command.some((argument) => argument.includes('\0'))) return [{ field, description: 'arguments must not contain a NUL byte' }];
  return [];
}

/** Problems of a terminal size. */
export function terminalSizeViolations(size: TerminalSize, field: string): FieldViolation[] {
  const ok = (n: number) => Number.isInteger(n) && n >= 1 && n <= MAX_TERMINAL_CELLS;
  return ok(size.columns) && ok(size.rows) ? [] : [{ field, description: `columns and rows must each be between 1 and ${MAX_TERMINAL_CELLS} (got ${size.columns}x${size.rows})` }];
}

/** Every problem of an ExecSession's start, each with its field. */
export function execSessionViolations(request: ExecSessionRequest, limits: Limits): FieldViolation[] {
  const violations = commandViolations(request.command, limits, 'start.command');
  if (request.terminalSize) violations.push(...terminalSizeViolations(request.terminalSize, 'start.terminal_size'));
  const env = Object.entries(request.env);
  if (env.length > MAX_SESSION_ENVIRONMENT) violations.push({ field: 'start.environment', description: `must have at most ${MAX_SESSION_ENVIRONMENT} variables` });
  else if (env.reduce((sum, [name, value]) => sum + Buffer.byteLength(name) + Buffer.byteLength(value), 0) > limits.environmentBytes) {
    violations.push({ field: 'start.environment', description: `must total at most ${limits.environmentBytes} bytes (limit limits.environmentBytes)` });
  } else {
    for (const [name, value] of env) {
      if (name === '' || name.includes('=') || name.includes('\0') || value.includes('\0')) {
        violations.push({ field: `start.environment[${JSON.stringify(name.slice(0, 64))}]`, description: 'a name must be non-empty without "=" or NUL, a value without NUL' });
        break;
      }
    }
  }
  const { stringBytes } = limits;
  if (Buffer.byteLength(request.user) > stringBytes) violations.push({ field: 'start.user', description: `must be at most ${stringBytes} bytes (limit limits.stringBytes)` });
  else if (request.user !== '' && !/^[^:\s\0]+(:[^:\s\0]+)?$/.test(request.user)) violations.push({ field: 'start.user', description: 'must be "user", "uid", "user:group" or "uid:gid"' });
  if (Buffer.byteLength(request.workingDir) > stringBytes) violations.push({ field: 'start.working_directory', description: `must be at most ${stringBytes} bytes (limit limits.stringBytes)` });
  else if (request.workingDir !== '' && (!request.workingDir.startsWith('/') || request.workingDir.includes('\0'))) {
    violations.push({ field: 'start.working_directory', description: 'must be an absolute path without NUL' });
  }
  return violations;
}

/** A signal by its name, with or without "SIG" ("SIGINT", "int"), or undefined for none Linux knows. */
export function signalByName(name: string): NodeJS.Signals | undefined {
  const upper = name.toUpperCase();
  const full = (upper.startsWith('SIG') ? upper : `SIG${upper}`) as NodeJS.Signals;
  return Object.hasOwn(constants.signals, full) ? full : undefined;
}
