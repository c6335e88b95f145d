import { Writable } from 'node:stream';
import { RuntimeError } from './errors.js';

/**
 * The standard input of a session or an attachment as its caller holds it: writes go to
 * `target` (a hijacked connection, a FIFO) and complete when it has taken them, with a
 * "conflict" once it is gone; ending it runs `end` after every write has completed.
 */
export function inputInto(target: NodeJS.WritableStream & { readonly destroyed: boolean }, operation: string, gone: string, end: () => Promise<void> | void): Writable {
  const input = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      if (target.destroyed) done(new RuntimeError('conflict', operation, gone));
      else target.write(chunk, (error?: Error | null) => done(error ?? undefined));
    },
    final: (done) => {
      Promise.resolve()
        .then(end)
        .then(
          () => done(),
          (error: unknown) => done(error as Error),
        );
    },
  });
  input.on('error', () => undefined);
  return input;
}
