/**
 * Protocol buffers' wire format, for messages put together from parts encoded before (events,
 * tasks): a length-delimited field is its tag, its length as a varint, then its bytes. Fields
 * may come in any order and a message's encodings concatenated are one message (repeated fields
 * add up), so a message's scalar fields encoded by the generated code and its repeated message
 * fields appended this way are the same message as if encoded at once.
 */

function varint(value: number): Buffer {
  const bytes: number[] = [];
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

/** Field `fieldNumber` (wire type 2) holding `parts`, concatenated: tag, length, bytes. */
export function lengthDelimited(fieldNumber: number, parts: readonly Buffer[]): Buffer[] {
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  return [varint((fieldNumber << 3) | 2), varint(length), ...parts];
}
