import { readFileSync } from 'node:fs';
import { TaskStatus } from '../../gen/berth/agent/v1/task.js';
import { PlacementState, PlacementStrategy } from '../../gen/berth/cluster/v1/cluster_task.js';
import type { FleetClient } from '../../cluster/fleet-client.js';
import { CliError, EXIT } from '../client.js';
import type { Command, CommandContext } from '../command.js';
import { age, table, taskStatusName } from '../format.js';
import { loadTaskFile, TaskFileError } from '../task-file.js';
import { execCommand, logsCommand } from './containers.js';

const USAGE = `berthctl cluster VERB [options] [arguments]   (a fleet of agents in etcd)

  nodes                          the agents: address, attributes, free resources, tasks, cordon/drain
  run -f FILE [--id ID] [--constraint ATTR==VALUE]... [--strategy binpack|spread[:ATTR]] [--replace]
                                 submit a cluster task (a berth task file or ECS task definition)
  ps                             cluster tasks: where each runs and how it stands
  stop ID                        stop a cluster task wherever it runs
  cordon AGENT | uncordon AGENT  no new placements on an agent / lift that (and a drain)
  drain AGENT                    cordon an agent and move its tasks (those submitted with --replace)
  logs ID [CONTAINER] [logs options]   a container's output, from the agent that runs it
  exec ID [CONTAINER] -- COMMAND...    run a command there (see berthctl help exec)

Options:
      --etcd ENDPOINTS     etcd's client URLs, comma-separated (env BERTH_ETCD_ENDPOINTS)
      --etcd-prefix P      the fleet's key prefix (env BERTH_ETCD_PREFIX; default /berth/)
      --etcd-cacert FILE   CA of etcd's certificate (env BERTH_ETCD_CA)
      --etcd-cert FILE     client certificate for etcd (env BERTH_ETCD_CERT), with --etcd-key (env BERTH_ETCD_KEY)
  -f, --file FILE          the task file ("-": standard input)
      --constraint C       ATTR==VALUE or ATTR!=VALUE, alternatives with |; repeatable ("agent" is the agent's id)
      --strategy S         binpack (default), or spread:ATTR (spread by an attribute; "spread" alone: by agent)
      --replace            place the task again elsewhere when its agent is lost or drained
      --id ID              the cluster task's id (default: the file's, or the family and a random suffix)
The agent's TLS options (--cacert, --cert, --key) apply to logs and exec, which go to the agent.`;

const PLACEMENT_NAMES: Record<number, string> = {
  [PlacementState.PLACEMENT_STATE_PENDING]: 'PENDING',
  [PlacementState.PLACEMENT_STATE_ASSIGNED]: 'ASSIGNED',
  [PlacementState.PLACEMENT_STATE_RUNNING]: 'RUNNING',
  [PlacementState.PLACEMENT_STATE_STOPPED]: 'STOPPED',
  [PlacementState.PLACEMENT_STATE_LOST]: 'LOST',
};

/** The fleet client's module (and etcd's client), loaded only by cluster commands. */
type FleetModule = typeof import('../../cluster/fleet-client.js');

function fleetOf(fleetModule: FleetModule, values: Record<string, unknown>, env: NodeJS.ProcessEnv): FleetClient {
  const endpoints = ((values.etcd as string | undefined) ?? env.BERTH_ETCD_ENDPOINTS ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  if (endpoints.length === 0) throw new CliError('cluster commands need etcd: --etcd host:port[,…] or BERTH_ETCD_ENDPOINTS', EXIT.usage);
  const caFile = (values['etcd-cacert'] as string | undefined) ?? env.BERTH_ETCD_CA;
  const certFile = (values['etcd-cert'] as string | undefined) ?? env.BERTH_ETCD_CERT;
  const keyFile = (values['etcd-key'] as string | undefined) ?? env.BERTH_ETCD_KEY;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new CliError('--etcd-cert and --etcd-key go together', EXIT.usage);
  if (certFile && !caFile) throw new CliError('--etcd-cert needs --etcd-cacert', EXIT.usage);
  const prefix = (values['etcd-prefix'] as string | undefined) ?? env.BERTH_ETCD_PREFIX ?? '/berth/';
  if (!/^\/.*\/$/.test(prefix)) throw new CliError(`--etcd-prefix must start and end with "/" (got "${prefix}")`, EXIT.usage);
  try {
    return fleetModule.connectFleet({ endpoints, tls: caFile ? { caFile, certFile, keyFile } : undefined, prefix });
  } catch (error) {
    throw new CliError(`cannot use the etcd TLS files: ${(error as Error).message}`, EXIT.usage);
  }
}

function strategyOf(text: string | undefined): { strategy: PlacementStrategy; spreadAttribute: string } {
  if (text === undefined || text === 'binpack') return { strategy: PlacementStrategy.PLACEMENT_STRATEGY_BINPACK, spreadAttribute: '' };
  const match = /^spread(?::([A-Za-z0-9][A-Za-z0-9_./-]{0,62}))?$/.exec(text);
  if (!match) throw new CliError(`--strategy must be binpack, spread or spread:ATTRIBUTE (got "${text}")`, EXIT.usage);
  return { strategy: PlacementStrategy.PLACEMENT_STRATEGY_SPREAD, spreadAttribute: match[1] ?? 'agent' };
}

async function nodes(ctx: CommandContext, fleet: FleetClient): Promise<number> {
  const rows = (await fleet.listNodes()).map(({ node, control }) => [
    node.agentId,
    node.address,
    control?.draining ? 'draining' : control?.cordoned ? 'cordoned' : node.runtimeAvailable ? 'ready' : 'runtime down',
    `${node.free?.cpuUnits ?? 0}/${node.capacity?.cpuUnits ?? 0}`,
    `${node.free?.memoryMib ?? 0}/${node.capacity?.memoryMib ?? 0}`,
    `${node.tasksRunning}/${node.tasksTotal} (${node.assignedTasks} assigned)`,
    Object.entries(node.attributes)
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
  ]);
  ctx.stdout.write(`${table(['AGENT', 'ADDRESS', 'STATE', 'CPU FREE', 'MEMORY FREE', 'RUNNING/TASKS', 'ATTRIBUTES'], rows)}\n`);
  return EXIT.ok;
}

async function ps(ctx: CommandContext, fleet: FleetClient): Promise<number> {
  const rows = (await fleet.listTasks()).map(({ task, placement }) => [
    task.id,
    placement ? (PLACEMENT_NAMES[placement.state] ?? '?') : 'SUBMITTED',
    task.desiredStatus === TaskStatus.TASK_STATUS_STOPPED ? 'STOPPED' : 'RUNNING',
    placement?.agentId ?? '',
    placement?.taskId ?? '',
    placement?.knownStatus ? taskStatusName(placement.knownStatus) : '',
    age(task.submittedAt),
    placement?.reason ?? '',
  ]);
  ctx.stdout.write(`${table(['ID', 'STATE', 'DESIRED', 'AGENT', 'AGENT TASK', 'KNOWN', 'AGE', 'REASON'], rows)}\n`);
  return EXIT.ok;
}

async function run(ctx: CommandContext, fleet: FleetClient, values: Record<string, unknown>, parseConstraint: FleetModule['parseConstraint']): Promise<number> {
  const file = values.file as string | undefined;
  if (!file) throw new CliError('cluster run needs a task file: berthctl cluster run -f FILE', EXIT.usage);
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read ${file}: ${(error as Error).message}`, EXIT.usage);
  }
  let definition;
  try {
    definition = loadTaskFile(file, text, values.id as string | undefined).definition;
  } catch (error) {
    if (error instanceof TaskFileError) throw new CliError(`invalid task file ${error.message}`, EXIT.usage);
    throw error;
  }
  const constraints = ((values.constraint as string[] | undefined) ?? []).map(parseConstraint);
  const { created } = await fleet.submit({
    id: definition.id,
    definition,
    constraints,
    ...strategyOf(values.strategy as string | undefined),
    replaceOnNodeLoss: Boolean(values.replace),
    desiredStatus: TaskStatus.TASK_STATUS_RUNNING,
  });
  ctx.stdout.write(`${definition.id}${created ? '' : ' (already submitted)'}\n`);
  return EXIT.ok;
}

/** logs and exec: the agent's own commands, on the agent that runs the cluster task. */
async function onAgent(ctx: CommandContext, fleet: FleetClient, command: Command, values: Record<string, unknown>, positionals: string[], rest: string[]): Promise<number> {
  const [clusterTaskId, ...more] = positionals;
  if (!clusterTaskId) throw new CliError(`usage: berthctl cluster ${command.name} ID [CONTAINER]`, EXIT.usage);
  const { client, taskId } = await fleet.agentOf(clusterTaskId, { tls: ctx.client.options.tls });
  try {
    if (more.length === 0) {
      // The container may be left out when the task has one.
      const containers = (await client.getTask(taskId)).containers;
      if (containers.length !== 1) throw new CliError(`cluster task ${clusterTaskId} has ${containers.length} containers: name one`, EXIT.usage);
      more.push(containers[0]!.name);
    }
    return await command.run({ ...ctx, client, address: `${clusterTaskId} on its agent` }, values as Record<string, string | boolean | string[] | undefined>, [taskId, ...more], rest);
  } finally {
    client.close();
  }
}

export const clusterCommand: Command = {
  name: 'cluster',
  summary: 'a fleet in etcd: nodes, run, ps, stop, cordon, uncordon, drain, logs, exec',
  usage: USAGE,
  options: {
    etcd: { type: 'string' },
    'etcd-prefix': { type: 'string' },
    'etcd-cacert': { type: 'string' },
    'etcd-cert': { type: 'string' },
    'etcd-key': { type: 'string' },
    file: { type: 'string', short: 'f' },
    id: { type: 'string' },
    constraint: { type: 'string', multiple: true },
    strategy: { type: 'string' },
    replace: { type: 'boolean' },
    reason: { type: 'string' },
    ...logsCommand.options,
    ...execCommand.options,
  },
  async run(ctx, values, positionals, rest) {
    const [verb, ...args] = positionals;
    const fleetModule = await import('../../cluster/fleet-client.js');
    const fleet = fleetOf(fleetModule, values, process.env);
    try {
      switch (verb) {
        case 'nodes':
          return await nodes(ctx, fleet);
        case 'ps':
          return await ps(ctx, fleet);
        case 'run':
          return await run(ctx, fleet, values, fleetModule.parseConstraint);
        case 'stop':
          if (args.length !== 1) throw new CliError('usage: berthctl cluster stop ID', EXIT.usage);
          await fleet.stopTask(args[0]!);
          ctx.stdout.write(`${args[0]}\n`);
          return EXIT.ok;
        case 'cordon':
        case 'uncordon':
        case 'drain':
          if (args.length !== 1) throw new CliError(`usage: berthctl cluster ${verb} AGENT`, EXIT.usage);
          if (verb === 'drain') await fleet.drain(args[0]!, (values.reason as string | undefined) ?? 'drained');
          else await fleet.cordon(args[0]!, verb === 'cordon', (values.reason as string | undefined) ?? '');
          ctx.stdout.write(`${args[0]}\n`);
          return EXIT.ok;
        case 'logs':
          return await onAgent(ctx, fleet, logsCommand, values, args, rest);
        case 'exec':
          return await onAgent(ctx, fleet, execCommand, values, args, rest);
        default:
          throw new CliError(`unknown cluster verb "${verb ?? ''}"\n\n${USAGE}`, EXIT.usage);
      }
    } catch (error) {
      if (error instanceof fleetModule.FleetError) throw new CliError(error.message, error.kind === 'invalid' ? EXIT.usage : EXIT.failed);
      if (error instanceof CliError || (error as { code?: unknown }).code !== undefined) throw error;
      throw new CliError(`etcd: ${(error as Error).message}`, EXIT.unreachable);
    } finally {
      fleet.close();
    }
  },
};
