import { Task, TaskStatus } from '../../gen/berth/agent/v1/task.js';
import { GetAgentInfoResponse } from '../../gen/berth/agent/v1/task_service.js';
import { NetworkMode } from '../../gen/berth/agent/v1/task_definition.js';
import { CliError, EXIT } from '../client.js';
import type { Command } from '../command.js';
import { age, bytes, containerState, ports, runningCount, statusWithDesired, table, taskStatusName } from '../format.js';
import { waitForTask } from './wait.js';

const outputOption = { output: { type: 'string', short: 'o' } } as const;

function checkOutput(value: unknown): 'json' | undefined {
  if (value === undefined) return undefined;
  if (value !== 'json') throw new CliError(`unknown output format "${String(value)}" (json)`, EXIT.usage);
  return 'json';
}

export const psCommand: Command = {
  name: 'ps',
  aliases: ['ls'],
  summary: 'list the tasks (those not stopped; -a for all)',
  usage: `berthctl ps [-a] [--family FAMILY] [-o json]

  -a, --all         include stopped tasks
      --family F    only the tasks of this family
  -o, --output json print the tasks as JSON`,
  options: { all: { type: 'boolean', short: 'a' }, family: { type: 'string' }, ...outputOption },
  async run(ctx, values) {
    const output = checkOutput(values.output);
    const listed = await ctx.client.listAllTasks({ family: (values.family as string) ?? '' });
    const tasks = listed.filter((t) => values.all || t.knownStatus !== TaskStatus.TASK_STATUS_STOPPED).sort((a, b) => (a.createdAt?.getTime() ?? 0) - (b.createdAt?.getTime() ?? 0));
    if (output === 'json') {
      ctx.stdout.write(
        `${JSON.stringify(
          tasks.map((t) => Task.toJSON(t)),
          null,
          2,
        )}\n`,
      );
      return EXIT.ok;
    }
    const rows = tasks.map((t) => [
      t.definition!.id,
      t.definition!.family,
      statusWithDesired(taskStatusName(t.knownStatus), taskStatusName(t.desiredStatus)),
      runningCount(t),
      age(t.createdAt),
      t.network?.ipAddresses.join(',') || ports(t.containers.flatMap((c) => c.portBindings)),
      t.knownStatus === TaskStatus.TASK_STATUS_STOPPED ? t.reason : '',
    ]);
    ctx.stdout.write(`${table(['TASK ID', 'FAMILY', 'STATUS', 'RUNNING', 'AGE', 'ADDRESSES/PORTS', 'REASON'], rows)}\n`);
    return EXIT.ok;
  },
};

export const describeCommand: Command = {
  name: 'describe',
  summary: 'show a task: its status, containers, network and resources',
  usage: `berthctl describe TASK [-o json]

  -o, --output json print the task as JSON (the API's Task message)`,
  options: { ...outputOption },
  async run(ctx, values, positionals) {
    const output = checkOutput(values.output);
    const id = positionals[0];
    if (!id || positionals.length > 1) throw new CliError('describe takes one task id: berthctl describe TASK', EXIT.usage);
    const task = await ctx.client.getTask(id);
    if (output === 'json') {
      ctx.stdout.write(`${JSON.stringify(Task.toJSON(task), null, 2)}\n`);
      return EXIT.ok;
    }
    const d = task.definition!;
    const lines = [
      `Task:       ${d.id}`,
      `Family:     ${d.family}${d.revision ? `:${d.revision}` : ''}`,
      `Status:     ${statusWithDesired(taskStatusName(task.knownStatus), taskStatusName(task.desiredStatus))}`,
    ];
    if (task.reason) lines.push(`Reason:     ${task.reason}`);
    lines.push(`Created:    ${task.createdAt?.toISOString() ?? ''} (${age(task.createdAt)} ago)`);
    if (task.startedAt) lines.push(`Started:    ${task.startedAt.toISOString()}`);
    if (task.stoppedAt) lines.push(`Stopped:    ${task.stoppedAt.toISOString()}`);
    lines.push(
      `Network:    ${NetworkMode[d.networkMode]?.replace('NETWORK_MODE_', '').toLowerCase()}${task.network ? ` — ${task.network.ipAddresses.join(', ')} on ${task.network.networkName} (${task.network.interfaceName}), gateway ${task.network.gateways.join(', ')}` : ''}`,
    );
    const r = task.resources;
    if (r) {
      const held = [`${r.cpuUnits} CPU units`, `${r.memoryMib} MiB`];
      if (r.tcpPorts.length) held.push(`tcp ${r.tcpPorts.join(',')}`);
      if (r.udpPorts.length) held.push(`udp ${r.udpPorts.join(',')}`);
      if (r.gpuIds.length) held.push(`GPUs ${r.gpuIds.join(',')}`);
      lines.push(`Resources:  ${held.join(', ')}`);
    }
    lines.push('', 'Containers:');
    const rows = task.containers.map((c) => {
      const def = d.containers.find((x) => x.name === c.name);
      return [c.name, def?.image ?? '', containerState(c), c.essential ? 'yes' : 'no', ports(c.portBindings), c.reason];
    });
    lines.push(table(['NAME', 'IMAGE', 'STATUS', 'ESSENTIAL', 'PORTS', 'REASON'], rows).replace(/^/gm, '  '));
    const unhealthy = task.containers.filter((c) => c.healthOutput);
    for (const c of unhealthy) lines.push('', `Last health check of ${c.name}: ${c.healthOutput.trim()}`);
    ctx.stdout.write(`${lines.join('\n')}\n`);
    return EXIT.ok;
  },
};

export const stopCommand: Command = {
  name: 'stop',
  summary: 'stop tasks',
  usage: `berthctl stop TASK... [--reason TEXT] [--wait]

      --reason TEXT  recorded as the task's reason (default: "stopped by request")
      --wait         wait until every task has stopped`,
  options: { reason: { type: 'string' }, wait: { type: 'boolean' } },
  async run(ctx, values, positionals) {
    if (positionals.length === 0) throw new CliError('stop needs at least one task id: berthctl stop TASK...', EXIT.usage);
    for (const id of positionals) {
      const task = (await ctx.client.stopTask(id, (values.reason as string) ?? '')).task!;
      const final = values.wait ? await waitForTask(ctx, id, 'stopped') : task;
      ctx.stdout.write(`${id}\t${statusWithDesired(taskStatusName(final.knownStatus), taskStatusName(final.desiredStatus))}\n`);
    }
    return EXIT.ok;
  },
};

export const infoCommand: Command = {
  name: 'info',
  summary: "show the agent: version, runtime, the host's resources and what tasks hold",
  usage: `berthctl info [-o json]`,
  options: { ...outputOption },
  async run(ctx, values) {
    const output = checkOutput(values.output);
    const info = await ctx.client.getAgentInfo();
    if (output === 'json') {
      ctx.stdout.write(`${JSON.stringify(GetAgentInfoResponse.toJSON(info), null, 2)}\n`);
      return EXIT.ok;
    }
    const rt = info.runtime;
    const resources = (label: string, r = info.capacity) =>
      r ? `${label.padEnd(10)} ${String(r.cpuUnits).padStart(6)} CPU units  ${bytes(r.memoryMib * 1024 * 1024).padStart(10)}  GPUs ${r.gpuIds.length}` : '';
    const lines = [
      `Agent:      ${info.agentId}`,
      `Version:    ${info.version}`,
      `Runtime:    ${rt?.name ?? ''} ${rt?.version ?? ''}${rt && !rt.available ? ` — UNAVAILABLE: ${rt.reason}` : ''}`,
      `Events:     sequences ${info.oldestSequence}–${info.latestSequence}`,
      '',
      resources('Capacity', info.capacity),
      resources('Consumed', info.consumed),
      resources('Free', info.free),
      `Dynamic ports free: tcp ${info.free?.dynamicTcpPortsFree ?? 0}, udp ${info.free?.dynamicUdpPortsFree ?? 0}`,
      `Waiting for resources: ${info.queuedTaskIds.length > 0 ? info.queuedTaskIds.join(', ') : 'none'}`,
    ];
    ctx.stdout.write(`${lines.join('\n')}\n`);
    return EXIT.ok;
  },
};
