/**
 * Bounds on what one request may carry. Every repeated and free-text field of a task definition
 * has one, so that validating and storing a definition costs time and memory in proportion to a
 * bound, never to what a client chose to send. Each is a config key under `limits` (README, Limits).
 */
export interface RequestLimits {
  /** Containers in one task. */
  containersPerTask: number;
  /** Port mappings of one container. */
  portMappingsPerContainer: number;
  /** Host path mounts of one container. */
  mountPointsPerContainer: number;
  /** Environment variables of one container… */
  environmentEntries: number;
  /** …and their names and values together, in bytes. */
  environmentBytes: number;
  /** Labels of one container… */
  labelsPerContainer: number;
  /** …and their keys and values together, in bytes. */
  labelBytes: number;
  /** Arguments of a command, an entrypoint or a health-check command… */
  commandArguments: number;
  /** …and all their arguments together, in bytes. */
  commandBytes: number;
  /** Any other single string: paths, user, working directory, family, host IP, credentials. */
  stringBytes: number;
  /** A reason given with StopTask. */
  reasonBytes: number;
  /** Task ids one WatchEvents request may filter on. */
  watchTaskIds: number;
  /** WatchEvents streams open at once, on the whole agent. */
  watchers: number;
  /** Logs requests with follow open at once. */
  logFollows: number;
  /** Stats streams open at once. */
  statsStreams: number;
  /** Exec commands running at once (health checks not counted). */
  concurrentExecs: number;
}

export const DEFAULT_REQUEST_LIMITS: RequestLimits = {
  containersPerTask: 64,
  portMappingsPerContainer: 100,
  mountPointsPerContainer: 100,
  environmentEntries: 1000,
  environmentBytes: 256 * 1024,
  labelsPerContainer: 100,
  labelBytes: 64 * 1024,
  commandArguments: 1000,
  commandBytes: 128 * 1024,
  stringBytes: 4096,
  reasonBytes: 1024,
  watchTaskIds: 1000,
  watchers: 256,
  logFollows: 128,
  statsStreams: 128,
  concurrentExecs: 64,
};

/** The longest duration berth accepts anywhere: Node's timers hold at most 2^31-1 ms (about 24.8 days). */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** UTF-8 length of a string, without encoding it when its length alone settles the question. */
export function byteLength(value: string): number {
  return Buffer.byteLength(value, 'utf8');
}

/** Total UTF-8 size of a string map's keys and values. */
export function mapBytes(map: Record<string, string>): number {
  let total = 0;
  for (const key in map) total += byteLength(key) + byteLength(map[key] ?? '');
  return total;
}

/** Total UTF-8 size of a list of strings. */
export function listBytes(list: string[]): number {
  let total = 0;
  for (const item of list) total += byteLength(item);
  return total;
}
