import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * The secret part of each container's metadata URI: an HMAC of its task id and name under a key
 * kept in the agent's data directory. The same container gets the same token after a restart of
 * the agent (its environment cannot change); nobody can make up another container's.
 */
export class MetadataTokens {
  private readonly key: Buffer;

  constructor(keyFile: string) {
    this.key = MetadataTokens.loadKey(keyFile);
  }

  private static loadKey(file: string): Buffer {
    try {
      const key = readFileSync(file);
      if (key.length >= 32) return key;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const key = randomBytes(32);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, key, { mode: 0o600 });
    return key;
  }

  tokenFor(taskId: string, containerName: string): string {
    return createHmac('sha256', this.key).update(`${taskId}\0${containerName}`).digest('hex').slice(0, 40);
  }
}
