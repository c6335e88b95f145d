import { open, realpath } from 'node:fs/promises';
import { constants } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { SecretPurpose, SecretRequester } from '../engine/tasks/container-environment.js';
import { MAX_ENVIRONMENT_FILE_BYTES, MAX_SECRET_BYTES } from '../engine/tasks/container-environment.js';
import type { SecretProvider } from './secret-provider.js';

/**
 * Secrets kept as files in one directory on the host: the reference names a file inside it
 * (subdirectories allowed), and nothing outside it can be reached, by `..` or by a symbolic link.
 * A secret's value is the file's content without one trailing newline; an environment file is
 * given whole.
 */
export class FileSecretProvider implements SecretProvider {
  constructor(private readonly directory: string) {}

  async resolve(name: string, _reference: string, purpose: SecretPurpose, _requester: SecretRequester): Promise<string> {
    if (name === '' || isAbsolute(name) || name.includes('\0')) throw new Error('must name a file inside the secret directory');
    const root = await realpath(this.directory).catch(() => {
      throw new Error('the secret directory does not exist');
    });
    const path = await realpath(resolve(root, name)).catch(() => {
      throw new Error('no such file in the secret directory');
    });
    const inside = relative(root, path);
    if (inside === '' || inside.startsWith(`..${sep}`) || inside === '..' || isAbsolute(inside)) throw new Error('names a file outside the secret directory');
    const limit = purpose === 'environment-file' ? MAX_ENVIRONMENT_FILE_BYTES : MAX_SECRET_BYTES;
    // Read one byte more than allowed, to tell a file over the limit (a FIFO or device would not end).
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => {
      throw new Error('the file cannot be opened');
    });
    try {
      if (!(await handle.stat()).isFile()) throw new Error('is not a regular file');
      const buffer = Buffer.alloc(limit + 1);
      let length = 0;
      while (length < buffer.length) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
        if (bytesRead === 0) break;
        length += bytesRead;
      }
      if (length > limit) throw new Error(`the file is larger than ${limit} bytes`);
      const text = buffer.subarray(0, length).toString('utf8');
      return purpose === 'secret' ? text.replace(/\r?\n$/, '') : text;
    } finally {
      await handle.close();
    }
  }
}
