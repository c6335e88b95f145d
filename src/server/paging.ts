import { InvalidArgumentError } from '../engine/errors.js';
import type { TaskSnapshot } from '../engine/model/task-snapshot.js';
import { ListTasksResponse } from '../gen/berth/agent/v1/task_service.js';
import { encodedTask } from './task-encoding.js';
import { lengthDelimited } from './wire-format.js';

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

function* encodedOneByOne(tasks: Iterable<TaskSnapshot>): Generator<Buffer> {
  for (const task of tasks) yield encodedTask(task);
}

/**
 * Tasks as encoded Task messages, cut into pages of at most `maxCount` tasks and MAX_PAGE_BYTES (a
 * larger task alone). Each task is encoded once, when its page is reached: a page's message is
 * put together from these bytes.
 */
export function encodedPagesOf(tasks: Iterable<TaskSnapshot>, maxCount = Number.MAX_SAFE_INTEGER): Generator<Buffer[]> {
  return boundedChunks(encodedOneByOne(tasks), maxCount, MAX_PAGE_BYTES, (task) => task.length + 8);
}

const encodeToken = (lastId: string) => Buffer.from(`after:${lastId}`, 'utf8').toString('base64url');

function decodeToken(token: string): string {
  const text = token.length <= 1024 ? Buffer.from(token, 'base64url').toString('utf8') : '';
  if (!text.startsWith('after:')) throw new InvalidArgumentError([{ field: 'page_token', description: 'is not a token from a previous page' }], 'invalid request');
  return text.slice('after:'.length);
}

/** Field number of ListTasksResponse.tasks. */
const LIST_TASKS_FIELD = 1;

/**
 * One page of tasks (already in id order) after `pageToken`, and the token of the next one: the
 * bytes of a ListTasksResponse. Only the tasks of the page are mapped and encoded, once.
 */
export function pageOfTasks(tasks: readonly TaskSnapshot[], pageSize: number, pageToken: string): Buffer {
  if (!Number.isInteger(pageSize) || pageSize < 0 || pageSize > MAX_PAGE_SIZE) {
    throw new InvalidArgumentError([{ field: 'page_size', description: `must be between 0 (for ${DEFAULT_PAGE_SIZE}) and ${MAX_PAGE_SIZE} (got ${pageSize})` }], 'invalid request');
  }
  const after = pageToken === '' ? undefined : decodeToken(pageToken);
  const rest = after === undefined ? tasks : tasks.filter((t) => t.definition.id > after);
  const page: Buffer[] = encodedPagesOf(rest, pageSize || DEFAULT_PAGE_SIZE).next().value ?? [];
  const more = rest.length > page.length;
  const nextPageToken = more ? encodeToken(rest[page.length - 1]?.definition.id ?? '') : '';
  return Buffer.concat([ListTasksResponse.encode({ tasks: [], nextPageToken }).finish(), ...page.flatMap((task) => lengthDelimited(LIST_TASKS_FIELD, [task]))]);
}
