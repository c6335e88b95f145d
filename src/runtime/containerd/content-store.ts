import { createHash } from 'node:crypto';
import { status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { WriteAction, type WriteContentRequest, type WriteContentResponse } from '../../gen/containerd/services/content/v1/content.js';
import { RuntimeError } from '../errors.js';
import type { OciDescriptor } from '../oci/media-types.js';
import { containerdError, type ContainerdClient } from './containerd-client.js';

/** Bytes sent per Content.Write WRITE message. */
const WRITE_CHUNK = 1024 * 1024;

/**
 * Content.Write is lockstep: one response for every request. This wraps the duplex stream so that
 * each request can be awaited with its response.
 */
class LockstepWriter {
  private readonly waiting: { resolve: (r: WriteContentResponse) => void; reject: (e: unknown) => void }[] = [];
  private failure: unknown;

  constructor(private readonly stream: ClientDuplexStream<WriteContentRequest, WriteContentResponse>) {
    stream.on('data', (response: WriteContentResponse) => this.waiting.shift()?.resolve(response));
    stream.on('error', (error: unknown) => {
      this.failure = error;
      for (const waiter of this.waiting.splice(0)) waiter.reject(error);
    });
    stream.on('end', () => {
      const error = new RuntimeError('internal', 'write content', 'containerd ended the stream');
      for (const waiter of this.waiting.splice(0)) waiter.reject(error);
    });
  }

  send(request: Partial<WriteContentRequest>): Promise<WriteContentResponse> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.stream.write({ action: WriteAction.STAT, ref: '', total: 0, expected: '', offset: 0, data: Buffer.alloc(0), labels: {}, ...request });
    });
  }

  close(): void {
    this.stream.end();
  }
}

/**
 * Writes a blob into containerd's content store under `lease`, unless it is already there. The
 * data comes from `open(offset)` (so an interrupted write resumes where it stopped); containerd
 * checks size and digest on commit, and so does this writer when it saw the whole blob.
 * Returns the number of bytes that had to be sent.
 */
export async function writeBlob(
  client: ContainerdClient,
  lease: string,
  descriptor: OciDescriptor,
  labels: Record<string, string>,
  open: (offset: number) => Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>,
  onBytes: (bytes: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  const operation = `write ${descriptor.digest}`;
  const stream = client.content.write(client.metadata({ lease }));
  const onAbort = () => stream.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  const writer = new LockstepWriter(stream);
  const ref = `berth-${descriptor.digest.replace(':', '-')}`;
  try {
    let status0: WriteContentResponse;
    try {
      status0 = await writer.send({ action: WriteAction.STAT, ref, total: descriptor.size, expected: descriptor.digest });
    } catch (error) {
      if (isAlreadyExists(error)) return;
      throw error;
    }
    let offset = status0.offset;
    if (offset < descriptor.size) {
      const hash = offset === 0 ? createHash('sha256') : undefined;
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      const flush = async () => {
        if (pendingBytes === 0) return;
        const data = Buffer.concat(pending, pendingBytes);
        pending = [];
        pendingBytes = 0;
        await writer.send({ action: WriteAction.WRITE, ref, offset, data });
        offset += data.length;
        onBytes(data.length);
      };
      for await (const chunk of await open(offset)) {
        hash?.update(chunk);
        pending.push(Buffer.from(chunk));
        pendingBytes += chunk.length;
        if (pendingBytes >= WRITE_CHUNK) await flush();
      }
      await flush();
      if (offset !== descriptor.size) throw new RuntimeError('internal', operation, `expected ${descriptor.size} bytes, got ${offset}`);
      const digest = hash ? `sha256:${hash.digest('hex')}` : undefined;
      if (digest && digest !== descriptor.digest) throw new RuntimeError('internal', operation, `digest mismatch: got ${digest}`);
    }
    try {
      // The offset must be given: a WRITE or COMMIT at offset 0 makes containerd truncate the blob.
      await writer.send({ action: WriteAction.COMMIT, ref, offset, total: descriptor.size, expected: descriptor.digest, labels });
    } catch (error) {
      if (!isAlreadyExists(error)) throw error;
    }
  } catch (error) {
    throw containerdError(operation, error);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    writer.close();
  }
}

function isAlreadyExists(error: unknown): boolean {
  return (error as Partial<ServiceError>).code === status.ALREADY_EXISTS;
}

/** Reads a whole (small) blob from the content store: a manifest or an image config. */
export async function readBlob(client: ContainerdClient, digest: string, timeoutMs: number): Promise<Buffer> {
  const stream = client.content.read({ digest, offset: 0, size: 0 }, client.metadata(), { deadline: new Date(Date.now() + timeoutMs) });
  const chunks: Buffer[] = [];
  try {
    for await (const response of stream as AsyncIterable<{ data: Buffer }>) chunks.push(Buffer.from(response.data));
  } catch (error) {
    throw containerdError(`read ${digest}`, error);
  }
  return Buffer.concat(chunks);
}

/** Sets labels on a blob already in the content store. */
export async function labelBlob(client: ContainerdClient, digest: string, labels: Record<string, string>, lease?: string): Promise<void> {
  await client.call(
    'label content',
    client.content,
    client.content.update,
    {
      info: { digest, size: 0, createdAt: undefined, updatedAt: undefined, labels },
      updateMask: Object.keys(labels).map((key) => `labels.${key}`),
    },
    { lease },
  );
}
