import type { TaskDefinition } from '../engine/model/task-definition.js';
import type { TaskSnapshot } from '../engine/model/task-snapshot.js';
import { Task } from '../gen/berth/agent/v1/task.js';
import { TaskDefinition as PbTaskDefinition } from '../gen/berth/agent/v1/task_definition.js';
import { toPbDefinition, toPbTaskStatus } from './mapping.js';
import { lengthDelimited } from './wire-format.js';

/** Field number of Task.definition. */
const TASK_DEFINITION_FIELD = 1;

/**
 * Each task's definition as the encoded `definition` field of a Task message. A definition never
 * changes once validated, and it is most of a task's bytes: it is mapped and encoded once, and
 * the entry goes with the definition.
 */
const definitionFields = new WeakMap<TaskDefinition, Buffer>();

/**
 * `bytes` in memory of their own. Node hands out small buffers as slices of a shared 8 KiB block,
 * which lives as long as any slice of it does: a definition's few hundred bytes, kept for the
 * task's life while what was allocated beside it goes, would keep the whole block.
 */
function ownCopy(bytes: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(copy);
  return copy;
}

function definitionField(definition: TaskDefinition): Buffer {
  let field = definitionFields.get(definition);
  if (!field) {
    field = ownCopy(Buffer.concat(lengthDelimited(TASK_DEFINITION_FIELD, [Buffer.from(PbTaskDefinition.encode(toPbDefinition(definition)).finish())])));
    definitionFields.set(definition, field);
  }
  return field;
}

/**
 * A task as a Task message, encoded: its definition's field (kept) followed by the fields that
 * change (a message's fields may come in any order).
 */
export const encodedTask = (task: TaskSnapshot): Buffer => Buffer.concat([definitionField(task.definition), Task.encode(toPbTaskStatus(task)).finish()]);

/**
 * The bytes of a response whose field 1 is the task (GetTaskResponse, StopTaskResponse,
 * RunTaskResponse), followed by `rest`, the response's other fields encoded.
 */
export function taskResponse(task: TaskSnapshot, rest: Uint8Array = new Uint8Array(0)): Buffer {
  return Buffer.concat([...lengthDelimited(1, [encodedTask(task)]), rest]);
}
