import { InvalidArgumentError } from '../engine/errors.js';
import { Task } from '../gen/berth/agent/v1/task.js';

/** No page of tasks (ListTasks, a snapshot part) grows past this: clients take 4 MiB by default. */
export const MAX_PAGE_BYTES = 3 * 1024 * 1024;
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

/**
 * Items cut into runs of at most `maxCount` items whose sizes add up to at most `maxBytes` (an
 * item larger than that alone), in order.
 */
export function* boundedChunks<T>(items: Iterable<T>, maxCount: number, maxBytes: number, sizeOf: (item: T) => number): Generator<T[]> {
  let chunk: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (chunk.length > 0 && (chunk.length >= maxCount || bytes + size > maxBytes)) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(item);
    bytes += size;
  }
  if (chunk.length > 0) yield chunk;
}

/** Tasks cut into pages of at most `maxCount` tasks and MAX_PAGE_BYTES (a larger task alone). */
export function pagesOf(tasks: Task[], maxCount = Number.MAX_SAFE_INTEGER): Generator<Task[]> {
  return boundedChunks(tasks, maxCount, MAX_PAGE_BYTES, (task) => Task.encode(task).finish().length + 8);
}

const encodeToken = (lastId: string) => Buffer.from(`after:${lastId}`, 'utf8').toString('base64url');

function decodeToken(token: string): string {
  const text = token.length <= 1024 ? Buffer.from(token, 'base64url').toString('utf8') : '';
  if (!text.startsWith('after:')) throw new InvalidArgumentError([{ field: 'page_token', description: 'is not a token from a previous page' }], 'invalid request');
  return text.slice('after:'.length);
}

/** One page of tasks (already in id order) after `pageToken`, and the token of the next one. */
export function pageOfTasks(tasks: Task[], pageSize: number, pageToken: string): { tasks: Task[]; nextPageToken: string } {
  if (!Number.isInteger(pageSize) || pageSize < 0 || pageSize > MAX_PAGE_SIZE) {
    throw new InvalidArgumentError([{ field: 'page_size', description: `must be between 0 (for ${DEFAULT_PAGE_SIZE}) and ${MAX_PAGE_SIZE} (got ${pageSize})` }], 'invalid request');
  }
  const after = pageToken === '' ? undefined : decodeToken(pageToken);
  const rest = after === undefined ? tasks : tasks.filter((t) => (t.definition?.id ?? '') > after);
  const page = pagesOf(rest, pageSize || DEFAULT_PAGE_SIZE).next().value ?? [];
  const more = rest.length > page.length;
  return { tasks: page, nextPageToken: more ? encodeToken(page.at(-1)?.definition?.id ?? '') : '' };
}
