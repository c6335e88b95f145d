import type { BerthClient } from '../client/berth-client.js';

/** What every command is given. */
export interface CommandContext {
  client: BerthClient;
  /** The agent's address as the user gave it, for messages. */
  address: string;
  /** What the user types or pipes in (exec -i, exec -t). */
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  /** Aborted on SIGINT/SIGTERM: long-running commands (watch, logs -f, stats) end cleanly. */
  signal: AbortSignal;
}

export interface Command {
  name: string;
  aliases?: string[];
  /** One line for the command list. */
  summary: string;
  /** Usage lines and options, for `berthctl help <command>`. */
  usage: string;
  /** Options in util.parseArgs form. */
  options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;
  /** Runs the command; resolves to the exit code. `rest` is what followed `--`. */
  run(ctx: CommandContext, values: Record<string, string | boolean | string[] | undefined>, positionals: string[], rest: string[]): Promise<number>;
}
