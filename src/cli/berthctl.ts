#!/usr/bin/env node
/**
 * berthctl: the command line of a berth agent. Talks to it over its gRPC API (the unix socket by
 * default; --addr or BERTH_ADDR for another socket or host:port, with TLS flags).
 */
import { parseArgs } from 'node:util';
import { AGENT_VERSION } from '../version.js';
import { connect } from '../client/berth-client.js';
import { CliError, DEFAULT_ADDRESS, EXIT, explain } from './client.js';
import type { Command } from './command.js';
import { execCommand, logsCommand, statsCommand } from './commands/containers.js';
import { attachCommand, portForwardCommand } from './commands/sessions.js';
import { runCommand } from './commands/run.js';
import { describeCommand, infoCommand, psCommand, stopCommand } from './commands/tasks.js';
import { watchCommand } from './commands/watch.js';
import { clusterCommand } from './commands/cluster.js';

const COMMANDS: Command[] = [runCommand, psCommand, describeCommand, stopCommand, watchCommand, logsCommand, execCommand, attachCommand, portForwardCommand, statsCommand, infoCommand, clusterCommand];

const GLOBAL_OPTIONS = {
  addr: { type: 'string' },
  tls: { type: 'boolean' },
  cacert: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  'server-name': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

const GLOBAL_HELP = `Global options (anywhere on the line):
      --addr ADDRESS      the agent: unix:///path, /path or host:port (env BERTH_ADDR; default ${DEFAULT_ADDRESS})
      --tls               use TLS (implied by --cacert or --cert)
      --cacert FILE       the CA that signed the agent's certificate (env BERTH_TLS_CA)
      --cert FILE         a client certificate, for an agent that wants one (env BERTH_TLS_CERT)
      --key FILE          its key (env BERTH_TLS_KEY)
      --server-name NAME  the name in the agent's certificate, when not the host in --addr
  -h, --help              help for berthctl or a command

Exit codes: 0 done; 1 the agent refused or failed the request (or a task stopped while waited
for); 2 wrong usage or task file; 3 the agent cannot be reached; exec: the command's exit code.`;

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => [c.name, ...(c.aliases ?? [])].join(', ').length));
  return `berthctl — run and inspect tasks on a berth agent

Usage: berthctl [global options] COMMAND [options] [arguments]

Commands:
${COMMANDS.map((c) => `  ${[c.name, ...(c.aliases ?? [])].join(', ').padEnd(width)}  ${c.summary}`).join('\n')}

${GLOBAL_HELP}

berthctl help COMMAND shows a command's options.`;
}

/** Splits argv at the first `--` (what follows is a command to run, for exec). */
function splitRest(argv: string[]): [string[], string[]] {
  const index = argv.indexOf('--');
  return index < 0 ? [argv, []] : [argv.slice(0, index), argv.slice(index + 1)];
}

async function main(argv: string[], env: NodeJS.ProcessEnv, stdout: NodeJS.WriteStream, stderr: NodeJS.WriteStream): Promise<number> {
  const [args, rest] = splitRest(argv);
  // The command is the first word that is not a global option or its value.
  let commandIndex = -1;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('-')) {
      commandIndex = i;
      break;
    }
    const name = arg.replace(/^--?/, '').split('=')[0]!;
    const option = (GLOBAL_OPTIONS as Record<string, { type: string }>)[name];
    if (option?.type === 'string' && !arg.includes('=')) i++;
  }
  let name = commandIndex >= 0 ? args[commandIndex]! : undefined;
  let helpFor: string | undefined;
  if (name === 'help') {
    helpFor = args[commandIndex + 1];
    if (!helpFor) {
      stdout.write(`${mainHelp()}\n`);
      return EXIT.ok;
    }
    name = helpFor;
  }
  const command = name ? COMMANDS.find((c) => c.name === name || c.aliases?.includes(name!)) : undefined;
  const words = commandIndex >= 0 ? [...args.slice(0, commandIndex), ...args.slice(commandIndex + 1)] : args;
  if (!command) {
    if (words.includes('--version')) {
      stdout.write(`berthctl ${AGENT_VERSION}\n`);
      return EXIT.ok;
    }
    if (!name && (words.includes('--help') || words.includes('-h'))) {
      stdout.write(`${mainHelp()}\n`);
      return EXIT.ok;
    }
    stderr.write(name ? `berthctl: unknown command "${name}"\n\n${mainHelp()}\n` : `${mainHelp()}\n`);
    return EXIT.usage;
  }
  if (helpFor) {
    stdout.write(`${command.usage}\n\n${GLOBAL_HELP}\n`);
    return EXIT.ok;
  }

  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: words, options: { ...GLOBAL_OPTIONS, ...command.options }, allowPositionals: true, strict: true });
  } catch (error) {
    stderr.write(`berthctl ${command.name}: ${(error as Error).message}\n\n${command.usage}\n`);
    return EXIT.usage;
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  if (values.help) {
    stdout.write(`${command.usage}\n\n${GLOBAL_HELP}\n`);
    return EXIT.ok;
  }
  const address = (values.addr as string | undefined) ?? env.BERTH_ADDR ?? DEFAULT_ADDRESS;
  const shutdown = new AbortController();
  const onSignal = () => shutdown.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let client;
  try {
    const caFile = (values.cacert as string | undefined) ?? env.BERTH_TLS_CA;
    const certFile = (values.cert as string | undefined) ?? env.BERTH_TLS_CERT;
    const keyFile = (values.key as string | undefined) ?? env.BERTH_TLS_KEY;
    if ((certFile === undefined) !== (keyFile === undefined)) throw new CliError('--cert and --key go together (a client certificate and its key)', EXIT.usage);
    const tls = Boolean(values.tls) || caFile !== undefined || certFile !== undefined;
    client = connect({ address, tls: tls && { caFile, certFile, keyFile, serverName: values['server-name'] as string | undefined } });
    return await command.run({ client, address, stdin: process.stdin, stdout, stderr, signal: shutdown.signal }, values, parsed.positionals, rest);
  } catch (error) {
    const failure = error instanceof CliError ? error : explain(error, address);
    stderr.write(`berthctl: ${failure.message}\n`);
    return failure.exitCode;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    client?.close();
  }
}

// A reader that went away (berthctl logs … | head) ends the command, quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(EXIT.ok);
    throw error;
  });
}
const code = await main(process.argv.slice(2), process.env, process.stdout, process.stderr);
// Let the output drain before the process ends.
process.exitCode = code;
