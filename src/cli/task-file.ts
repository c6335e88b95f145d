import { randomBytes } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { parseDuration } from '../config/duration.js';
import { DependencyCondition, NetworkMode, TaskDefinition, TransportProtocol } from '../gen/berth/agent/v1/task_definition.js';
import { convertEcsTaskDefinition, isEcsTaskDefinition } from './ecs-task-definition.js';

/** A task file that cannot be used; `problems` name each field ("containers[0].image: …"). */
export class TaskFileError extends Error {
  override readonly name = 'TaskFileError';
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems.length === 1 ? problems[0] : `\n  ${problems.join('\n  ')}`}`);
  }
}

export interface LoadedTask {
  definition: TaskDefinition;
  /** "berth" for a berth task file, "ecs" for an ECS task definition. */
  format: 'berth' | 'ecs';
  /** Fields of an ECS task definition that berth does not apply, each with why. */
  warnings: string[];
  /** Those of `warnings` whose loss changes what a container does. */
  changesBehaviour: string[];
}

type FieldKind = 'string' | 'number' | 'boolean' | 'strings' | 'numbers' | 'map' | 'duration' | { message: string; repeated?: boolean } | { enum: string; values: object };

/** The fields of each message of a berth task file, in the proto's JSON names (camelCase). */
const SCHEMA: Record<string, Record<string, FieldKind>> = {
  task: {
    id: 'string',
    family: 'string',
    revision: 'number',
    networkMode: { enum: 'NETWORK_MODE_', values: NetworkMode },
    containers: { message: 'container', repeated: true },
    cpuUnits: 'number',
    memoryMib: 'number',
  },
  container: {
    name: 'string',
    image: 'string',
    command: 'strings',
    entrypoint: 'strings',
    environment: 'map',
    workingDirectory: 'string',
    user: 'string',
    cpuUnits: 'number',
    memoryMib: 'number',
    memoryReservationMib: 'number',
    portMappings: { message: 'portMapping', repeated: true },
    essential: 'boolean',
    dependsOn: { message: 'dependency', repeated: true },
    stopTimeout: 'duration',
    labels: 'map',
    registryCredentials: { message: 'credentials' },
    healthCheck: { message: 'healthCheck' },
    restartPolicy: { message: 'restartPolicy' },
    gpuCount: 'number',
    startTimeout: 'duration',
    pidsLimit: 'number',
    mountPoints: { message: 'mountPoint', repeated: true },
    privileged: 'boolean',
  },
  portMapping: { containerPort: 'number', hostPort: 'number', protocol: { enum: 'TRANSPORT_PROTOCOL_', values: TransportProtocol }, hostIp: 'string' },
  dependency: { containerName: 'string', condition: { enum: 'DEPENDENCY_CONDITION_', values: DependencyCondition } },
  credentials: { username: 'string', password: 'string' },
  healthCheck: { command: 'strings', interval: 'duration', timeout: 'duration', retries: 'number', startPeriod: 'duration' },
  restartPolicy: { enabled: 'boolean', ignoredExitCodes: 'numbers', restartAttemptPeriod: 'duration' },
  mountPoint: { hostPath: 'string', containerPath: 'string', readOnly: 'boolean' },
};

const camel = (key: string) => key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** The closest known name, for "did you mean". */
function closest(key: string, known: string[]): string | undefined {
  const distance = (a: string, b: string) => {
    const row = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
      let diagonal = row[0]!;
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const above = row[j]!;
        row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
        diagonal = above;
      }
    }
    return row[b.length]!;
  };
  const best = known.map((k) => ({ k, d: distance(key, k) })).sort((a, b) => a.d - b.d)[0];
  return best && best.d <= Math.max(2, Math.floor(key.length / 3)) ? best.k : undefined;
}

/**
 * Checks a berth task file's object against the schema and brings it to the proto's JSON form:
 * unknown fields are errors (with the closest known name), durations may be written "1m30s",
 * enums by their short names ("task", "udp", "healthy").
 */
function normalize(value: unknown, message: string, path: string, problems: string[]): Record<string, unknown> {
  const fields = SCHEMA[message]!;
  const out: Record<string, unknown> = {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push(`${path || 'the file'}: must be an object`);
    return out;
  }
  for (const [rawKey, raw] of Object.entries(value)) {
    const key = camel(rawKey);
    const at = path ? `${path}.${rawKey}` : rawKey;
    const kind = fields[key];
    if (!kind) {
      const hint = closest(key, Object.keys(fields));
      problems.push(`${at}: unknown field${hint ? ` (did you mean "${hint}"?)` : ''}`);
      continue;
    }
    if (raw === null || raw === undefined) continue;
    const wrong = (what: string) => problems.push(`${at}: must be ${what}`);
    if (typeof kind === 'object' && 'message' in kind) {
      if (kind.repeated) {
        if (!Array.isArray(raw)) wrong('a list');
        else out[key] = raw.map((item, i) => normalize(item, kind.message, `${at}[${i}]`, problems));
      } else {
        out[key] = normalize(raw, kind.message, at, problems);
      }
    } else if (typeof kind === 'object') {
      const upper = String(raw).toUpperCase().replace(/-/g, '_');
      const name = upper.startsWith(kind.enum) ? upper : `${kind.enum}${upper}`;
      const allowed = Object.keys(kind.values).filter((k) => /^[A-Z]/.test(k) && !k.endsWith('_UNSPECIFIED') && k !== 'UNRECOGNIZED');
      if (!allowed.includes(name)) wrong(`one of ${allowed.map((k) => k.slice(kind.enum.length).toLowerCase()).join(', ')}`);
      else out[key] = name;
    } else if (kind === 'duration') {
      const ms = parseDuration(typeof raw === 'string' && /^\d+(\.\d+)?$/.test(raw.trim()) ? `${raw}s` : typeof raw === 'number' ? `${raw}s` : raw);
      if (ms === undefined) wrong('a duration such as "30s", "1m30s" or a number of seconds');
      else out[key] = { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
    } else if (kind === 'map') {
      if (typeof raw !== 'object' || Array.isArray(raw)) wrong('a map of names to strings');
      else out[key] = Object.fromEntries(Object.entries(raw as object).map(([k, v]) => [k, String(v)]));
    } else if (kind === 'strings' || kind === 'numbers') {
      if (!Array.isArray(raw)) wrong(kind === 'strings' ? 'a list of strings' : 'a list of numbers');
      else out[key] = raw;
    } else if (kind === 'number') {
      if (typeof raw !== 'number' && !(typeof raw === 'string' && /^-?\d+$/.test(raw))) wrong('a number');
      else out[key] = Number(raw);
    } else if (kind === 'boolean') {
      if (typeof raw !== 'boolean') wrong('true or false');
      else out[key] = raw;
    } else {
      if (typeof raw === 'object') wrong('a string');
      else out[key] = String(raw);
    }
  }
  return out;
}

/** A task id for a file that names none: its family and a random suffix. */
export function newTaskId(family: string): string {
  const base =
    (family || 'task')
      .toLowerCase()
      .replace(/[^a-z0-9_.-]+/g, '-')
      .replace(/^[^a-z0-9]+/, '')
      .slice(0, 40) || 'task';
  return `${base}-${randomBytes(4).toString('hex')}`;
}

/**
 * Reads a task file: a berth task definition (JSON or YAML, the API's TaskDefinition) or an ECS
 * task definition (JSON, as `aws ecs register-task-definition` takes it or `describe-task-definition`
 * prints it), converted. `id` overrides the file's id; without either, one is made from the family.
 */
export function loadTaskFile(file: string, text: string, id?: string): LoadedTask {
  let document: unknown;
  try {
    document = /^\s*[{[]/.test(text) ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new TaskFileError(file, [`not valid JSON or YAML: ${(error as Error).message}`]);
  }
  if (isEcsTaskDefinition(document)) {
    const { definition, warnings, changesBehaviour, problems } = convertEcsTaskDefinition(document);
    if (problems.length > 0) throw new TaskFileError(file, problems);
    definition.id = id || newTaskId(definition.family);
    return { definition, format: 'ecs', warnings, changesBehaviour };
  }
  const problems: string[] = [];
  const normalized = normalize(document, 'task', '', problems);
  if (problems.length > 0) throw new TaskFileError(file, problems);
  const definition = TaskDefinition.fromJSON(normalized);
  definition.id = id || definition.id || newTaskId(definition.family);
  return { definition, format: 'berth', warnings: [], changesBehaviour: [] };
}
