/**
 * A MessagePack reader for the tests' Forward protocol receivers: the types Docker's fluentd driver
 * and berth's log writer send (nil, booleans, integers, strings, binaries, arrays, maps, and
 * fluentd's EventTime extension, read as { seconds, nanoseconds }).
 */
export function decodeMessagePack(bytes: Buffer): { values: unknown[]; rest: Buffer } {
  let at = 0;
  const need = (n: number) => {
    if (at + n > bytes.length) throw new RangeError('incomplete');
  };
  const str = (n: number) => {
    need(n);
    const s = bytes.toString('utf8', at, at + n);
    at += n;
    return s;
  };
  const array = (n: number): unknown[] => Array.from({ length: n }, () => value());
  const map = (n: number): Record<string, unknown> => Object.fromEntries(Array.from({ length: n }, () => [String(value()), value()]));
  const uint = (size: 1 | 2 | 4) => {
    need(size);
    const v = size === 1 ? bytes.readUInt8(at) : size === 2 ? bytes.readUInt16BE(at) : bytes.readUInt32BE(at);
    at += size;
    return v;
  };
  const value = (): unknown => {
    need(1);
    const type = bytes[at++]!;
    if (type <= 0x7f) return type;
    if (type >= 0xe0) return type - 0x100;
    if ((type & 0xf0) === 0x80) return map(type & 0x0f);
    if ((type & 0xf0) === 0x90) return array(type & 0x0f);
    if ((type & 0xe0) === 0xa0) return str(type & 0x1f);
    switch (type) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4: {
        const n = uint(1);
        need(n);
        at += n;
        return Buffer.from(bytes.subarray(at - n, at));
      }
      case 0xd9:
        return str(uint(1));
      case 0xda:
        return str(uint(2));
      case 0xdb:
        return str(uint(4));
      case 0xcc:
        return uint(1);
      case 0xcd:
        return uint(2);
      case 0xce:
        return uint(4);
      case 0xd0:
        need(1);
        return bytes.readInt8(at++);
      case 0xd1:
        need(2);
        at += 2;
        return bytes.readInt16BE(at - 2);
      case 0xd2:
        need(4);
        at += 4;
        return bytes.readInt32BE(at - 4);
      case 0xd7: {
        need(9);
        const extType = bytes.readInt8(at);
        const seconds = bytes.readUInt32BE(at + 1);
        const nanoseconds = bytes.readUInt32BE(at + 5);
        at += 9;
        if (extType !== 0) throw new Error(`extension type ${extType}`);
        return { seconds, nanoseconds };
      }
      case 0xdc:
        return array(uint(2));
      case 0xdd:
        return array(uint(4));
      case 0xde:
        return map(uint(2));
      case 0xdf:
        return map(uint(4));
      default:
        throw new Error(`MessagePack type 0x${type.toString(16)} is not read here`);
    }
  };
  const values: unknown[] = [];
  let complete = 0;
  try {
    while (at < bytes.length) {
      values.push(value());
      complete = at;
    }
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
  }
  return { values, rest: bytes.subarray(complete) };
}
