import type { ContainerDefinition, TaskDefinition } from '../model/task-definition.js';

/** Who asks for a secret: given to the providers (an exec plugin may decide by it), never a value. */
export interface SecretRequester {
  taskId: string;
  family: string;
  revision: number;
  containerName: string;
}

/** What a reference is resolved for: a variable's value, a whole environment file, or a JSON {"username","password"} for a registry. */
export type SecretPurpose = 'secret' | 'environment-file' | 'registry-credentials';

/**
 * Resolves secret and environment-file references through the agent's providers. A failure is an
 * Error whose message says why without the value; it never holds one.
 */
export interface SecretResolver {
  resolve(reference: string, purpose: SecretPurpose, requester: SecretRequester): Promise<string>;
}

/** Who asks, for the providers: the task's identity and the container's name. */
function requesterOf(task: TaskDefinition, container: ContainerDefinition): SecretRequester {
  return { taskId: task.id, family: task.family, revision: task.revision, containerName: container.name };
}

/** The most a container's environment may hold once its files and secrets are added, in bytes. */
export const MAX_RESOLVED_ENVIRONMENT_BYTES = 1024 * 1024;
/** The most one environment file may hold. */
export const MAX_ENVIRONMENT_FILE_BYTES = 256 * 1024;
/** The most one secret's value may hold. */
export const MAX_SECRET_BYTES = 64 * 1024;

const VARIABLE_NAME = /^[^=\0]+$/;

/**
 * Parses an environment file as ECS reads one: `VARIABLE=VALUE` per line (the value is the rest
 * of the line, as it is: no quotes or escapes), `#` comments and blank lines skipped; the first
 * definition of a variable wins. A malformed line is an error naming its number, not its text.
 */
export function parseEnvironmentFile(text: string): { variables: Record<string, string> } | { badLine: number } {
  const variables: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const equals = line.indexOf('=');
    const name = equals > 0 ? line.slice(0, equals).trim() : '';
    if (!VARIABLE_NAME.test(name) || /\s/.test(name) || line.includes('\0')) return { badLine: i + 1 };
    if (!Object.hasOwn(variables, name)) variables[name] = line.slice(equals + 1);
  }
  return { variables };
}

/**
 * The variables a container gets beyond its `environment`: those of its environment files (the
 * first file that defines a variable wins, and `environment` wins over all of them) and its
 * secrets. Resolved each time the container is created, never kept. `problem` says why the
 * container cannot be created; it names the secret or file, never a value.
 */
export async function resolveEnvironment(
  task: TaskDefinition,
  container: ContainerDefinition,
  resolver: SecretResolver,
): Promise<{ fromFiles: Record<string, string>; secrets: Record<string, string> } | { problem: string }> {
  const requester = requesterOf(task, container);
  const fromFiles: Record<string, string> = {};
  for (const [i, file] of (container.environmentFiles ?? []).entries()) {
    let text: string;
    try {
      text = await resolver.resolve(file, 'environment-file', requester);
    } catch (error) {
      return { problem: `cannot read environment file ${i + 1} ("${file}"): ${(error as Error).message}` };
    }
    if (Buffer.byteLength(text) > MAX_ENVIRONMENT_FILE_BYTES) return { problem: `environment file ${i + 1} ("${file}") is larger than ${MAX_ENVIRONMENT_FILE_BYTES} bytes` };
    const parsed = parseEnvironmentFile(text);
    if ('badLine' in parsed) return { problem: `environment file ${i + 1} ("${file}"), line ${parsed.badLine}: not VARIABLE=VALUE` };
    for (const [name, value] of Object.entries(parsed.variables)) if (!Object.hasOwn(fromFiles, name)) fromFiles[name] = value;
  }
  const secrets: Record<string, string> = {};
  for (const secret of container.secrets ?? []) {
    let value: string;
    try {
      value = await resolver.resolve(secret.valueFrom, 'secret', requester);
    } catch (error) {
      return { problem: `cannot resolve secret "${secret.name}" (from "${secret.valueFrom}"): ${(error as Error).message}` };
    }
    if (Buffer.byteLength(value) > MAX_SECRET_BYTES) return { problem: `secret "${secret.name}" is larger than ${MAX_SECRET_BYTES} bytes` };
    if (value.includes('\0')) return { problem: `secret "${secret.name}" holds a NUL byte, which no environment variable can` };
    secrets[secret.name] = value;
  }
  let bytes = 0;
  for (const env of [fromFiles, container.environment, secrets]) for (const [k, v] of Object.entries(env)) bytes += Buffer.byteLength(k) + Buffer.byteLength(v) + 2;
  if (bytes > MAX_RESOLVED_ENVIRONMENT_BYTES) return { problem: `the environment with its files and secrets is ${bytes} bytes, over ${MAX_RESOLVED_ENVIRONMENT_BYTES}` };
  return { fromFiles, secrets };
}

/**
 * The registry credentials of a container whose definition names them by reference (ECS's
 * repositoryCredentials.credentialsParameter): a JSON object {"username", "password"}. Resolved
 * before each pull, never kept; `problem` names the reference, never the value.
 */
export async function resolveRegistryCredentials(
  task: TaskDefinition,
  container: ContainerDefinition,
  reference: string,
  resolver: SecretResolver,
): Promise<{ auth: { username: string; password: string } } | { problem: string }> {
  const requester = requesterOf(task, container);
  let text: string;
  try {
    text = await resolver.resolve(reference, 'registry-credentials', requester);
  } catch (error) {
    return { problem: `cannot resolve the registry credentials (from "${reference}"): ${(error as Error).message}` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const { username, password } = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as { username?: unknown; password?: unknown };
  if (typeof username !== 'string' || typeof password !== 'string' || username === '' || username.includes(':') || /[\0\r\n]/.test(username)) {
    return { problem: `the registry credentials (from "${reference}") are not a JSON object {"username": …, "password": …}` };
  }
  return { auth: { username, password } };
}

/** The log configuration a container is created with: its options, and its secret options resolved. */
export async function resolveLogConfiguration(
  task: TaskDefinition,
  container: ContainerDefinition,
  resolver: SecretResolver,
): Promise<{ logConfiguration?: { driver: string; options: Record<string, string> } } | { problem: string }> {
  const log = container.logConfiguration;
  if (!log) return {};
  const requester = requesterOf(task, container);
  const options = { ...log.options };
  for (const secret of log.secretOptions) {
    try {
      options[secret.name] = await resolver.resolve(secret.valueFrom, 'secret', requester);
    } catch (error) {
      return { problem: `cannot resolve the log option "${secret.name}" (from "${secret.valueFrom}"): ${(error as Error).message}` };
    }
  }
  return { logConfiguration: { driver: log.driver, options } };
}
