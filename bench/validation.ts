/**
 * How long validation takes for the largest definition the limits allow, and for definitions far
 * over them (refused on their counts). Prints a Markdown table for BENCHMARKS.md ("Hardening").
 */
import { DEFAULT_REQUEST_LIMITS as L } from '../src/engine/admission/request-limits.js';
import { validateTaskDefinition, type TaskDefinitionInput } from '../src/engine/admission/task-validation.js';

function maximal(): TaskDefinitionInput {
  return {
    id: 'bench',
    family: 'bench',
    networkMode: 'BRIDGE',
    containers: Array.from({ length: L.containersPerTask }, (_, i) => ({
      name: `c${i}`,
      image: `127.0.0.1:5000/bench/c${i}:1`,
      essential: true,
      dependsOn: Array.from({ length: i }, (_, j) => ({ containerName: `c${j}`, condition: 'START' })),
      portMappings: Array.from({ length: L.portMappingsPerContainer }, (_, j) => ({ containerPort: 1000 + j })),
      mountPoints: Array.from({ length: L.mountPointsPerContainer }, (_, j) => ({ hostPath: `/srv/${j}`, containerPath: `/m/${j}` })),
      environment: Object.fromEntries(Array.from({ length: L.environmentEntries }, (_, j) => [`V${j}`, 'v'.repeat(200)])),
      labels: Object.fromEntries(Array.from({ length: L.labelsPerContainer }, (_, j) => [`l${j}`, 'v'.repeat(500)])),
      command: Array.from({ length: L.commandArguments }, () => 'a'.repeat(120)),
    })),
  };
}

function over(): TaskDefinitionInput {
  return { id: 'over', containers: [{ name: 'app', image: 'busybox', mountPoints: Array.from({ length: 150_000 }, (_, j) => ({ hostPath: `/srv/${j}`, containerPath: `/m/${j}` })) }] };
}

function chain(): TaskDefinitionInput {
  return { id: 'chain', containers: Array.from({ length: 40_000 }, (_, i) => ({ name: `c${i}`, image: 'busybox', dependsOn: i > 0 ? [{ containerName: `c${i - 1}`, condition: 'START' }] : [] })) };
}

function median(run: () => void, times = 15): number {
  const samples: number[] = [];
  for (let i = 0; i < times; i++) {
    const start = performance.now();
    run();
    samples.push(performance.now() - start);
  }
  return samples.sort((a, b) => a - b)[Math.floor(times / 2)]!;
}

const rows: [string, () => TaskDefinitionInput, boolean][] = [
  ['at every limit (64 containers, each with every list full)', maximal, true],
  ['150,000 mount points (refused)', over, false],
  ['40,000 containers chained by depends_on (refused)', chain, false],
];
console.log('| definition | JSON size | validation (median of 15) |\n|---|---|---|');
for (const [name, make, valid] of rows) {
  const input = make();
  const ms = median(() => {
    try {
      validateTaskDefinition(input);
      if (!valid) throw new Error(`${name} was accepted`);
    } catch (error) {
      if (valid || (error as Error).message.endsWith('was accepted')) throw error;
    }
  });
  console.log(`| ${name} | ${(JSON.stringify(input).length / 1024 / 1024).toFixed(1)} MiB | ${ms.toFixed(1)} ms |`);
}
