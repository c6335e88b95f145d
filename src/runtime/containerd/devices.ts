import { stat } from 'node:fs/promises';
import { RuntimeError } from '../errors.js';
import type { ContainerSpec } from '../types.js';
import type { DeviceNode } from './oci-spec.js';

/** A host device as the spec wants it: its type and numbers, read from the host. */
export async function deviceNode(device: NonNullable<ContainerSpec['devices']>[number], operation: string): Promise<DeviceNode> {
  const info = await stat(device.hostPath).catch((error: NodeJS.ErrnoException) => {
    throw new RuntimeError('invalid', operation, `device ${device.hostPath}: ${error.code === 'ENOENT' ? 'not on this host' : error.message}`);
  });
  if (!info.isCharacterDevice() && !info.isBlockDevice()) throw new RuntimeError('invalid', operation, `${device.hostPath} is not a device`);
  // Linux's dev_t: the major number in bits 8-19 (and 32-43), the minor in bits 0-7 and 20-31.
  const rdev = BigInt(info.rdev);
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n));
  return { containerPath: device.containerPath, type: info.isCharacterDevice() ? 'c' : 'b', major, minor, fileMode: info.mode & 0o7777, uid: info.uid, gid: info.gid, access: device.access };
}
