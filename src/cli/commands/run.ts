import { readFileSync } from 'node:fs';
import { Task } from '../../gen/berth/agent/v1/task.js';
import { CliError, EXIT } from '../client.js';
import type { Command } from '../command.js';
import { loadTaskFile, TaskFileError } from '../task-file.js';
import { taskStatusName } from '../format.js';
import { waitForTask } from './wait.js';

export const runCommand: Command = {
  name: 'run',
  summary: 'run a task from a berth task file (JSON/YAML) or an ECS task definition (JSON)',
  usage: `berthctl run -f FILE [--id ID] [--wait] [--strict | --allow-unapplied] [-o json]

  -f, --file FILE     the task file; "-" reads standard input
      --id ID         the task's id (default: the file's, or the family and a random suffix)
      --wait          wait until the task runs (exit 0) or stops before it does (exit 1)
      --strict        refuse an ECS task definition with any field berth would not apply
      --allow-unapplied
                      run it even without fields whose loss changes what a container does
  -o, --output json   print the task as JSON

An ECS task definition (with "containerDefinitions") is converted; fields berth does not apply are
listed on standard error. Those whose loss changes what a container does (secrets, environment
files, log configuration, volumes berth cannot mount…) make run refuse the definition, unless
--allow-unapplied; with --strict, any field berth does not apply does.`,
  options: {
    file: { type: 'string', short: 'f' },
    id: { type: 'string' },
    wait: { type: 'boolean' },
    strict: { type: 'boolean' },
    'allow-unapplied': { type: 'boolean' },
    output: { type: 'string', short: 'o' },
  },
  async run(ctx, values) {
    const file = values.file as string | undefined;
    if (!file) throw new CliError('run needs a task file: berthctl run -f FILE', EXIT.usage);
    let text: string;
    try {
      text = readFileSync(file === '-' ? 0 : file, 'utf8');
    } catch (error) {
      throw new CliError(`cannot read ${file}: ${(error as Error).message}`, EXIT.usage);
    }
    let loaded;
    try {
      loaded = loadTaskFile(file, text, values.id as string | undefined);
    } catch (error) {
      if (error instanceof TaskFileError) throw new CliError(`invalid task file ${error.message}`, EXIT.usage);
      throw error;
    }
    if (values.strict && values['allow-unapplied']) throw new CliError('--strict and --allow-unapplied contradict each other', EXIT.usage);
    const list = (fields: string[]) => fields.map((w) => `  ${w}\n`).join('');
    const plural = (n: number) => `${n} field${n === 1 ? '' : 's'}`;
    if (values.strict && loaded.warnings.length > 0) {
      throw new CliError(`refused (--strict): berth would not apply ${plural(loaded.warnings.length)} of this ECS task definition:\n${list(loaded.warnings).trimEnd()}`, EXIT.usage);
    }
    if (!values['allow-unapplied'] && loaded.changesBehaviour.length > 0) {
      throw new CliError(
        `refused: without ${plural(loaded.changesBehaviour.length)} of this ECS task definition its containers would not do what it says:\n${list(loaded.changesBehaviour)}run it without them anyway with --allow-unapplied`,
        EXIT.usage,
      );
    }
    if (loaded.warnings.length > 0) {
      ctx.stderr.write(`warning: berth does not apply ${plural(loaded.warnings.length)} of this ECS task definition:\n${list(loaded.warnings)}`);
    }
    const response = await ctx.client.runTask(loaded.definition);
    let task = response.task!;
    if (values.wait) task = await waitForTask(ctx, task.definition!.id, 'running');
    if (values.output === 'json') ctx.stdout.write(`${JSON.stringify(Task.toJSON(task), null, 2)}\n`);
    else ctx.stdout.write(`${task.definition!.id}\t${response.created ? 'created' : 'exists'}\t${taskStatusName(task.knownStatus)}\n`);
    if (values.wait && taskStatusName(task.knownStatus) === 'STOPPED') {
      ctx.stderr.write(`task ${task.definition!.id} stopped: ${task.reason}\n`);
      return EXIT.failed;
    }
    return EXIT.ok;
  },
};
