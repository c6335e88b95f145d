/** One piece of a session's output, with the stream it came on. */
export interface SessionOutput {
  stream: 'stdout' | 'stderr';
  data: Buffer;
}

/**
 * Yields what several streams give as it comes, each piece labelled, reading one piece ahead of
 * the consumer per stream at most (so a slow consumer holds the streams back). A stream that
 * fails or is destroyed counts as ended.
 */
export async function* mergeOutputs(sources: { stream: SessionOutput['stream']; from: NodeJS.ReadableStream }[]): AsyncGenerator<SessionOutput> {
  const readers = sources.map((source) => ({ stream: source.stream, iterator: source.from[Symbol.asyncIterator]() }));
  type Reader = (typeof readers)[number];
  const next = (reader: Reader) =>
    reader.iterator.next().then(
      (result) => ({ reader, result }),
      () => ({ reader, result: { done: true as const, value: undefined } }),
    );
  const pending = new Map(readers.map((reader) => [reader, next(reader)]));
  try {
    while (pending.size > 0) {
      const { reader, result } = await Promise.race(pending.values());
      if (result.done) {
        pending.delete(reader);
        continue;
      }
      const data = typeof result.value === 'string' ? Buffer.from(result.value) : (result.value as Buffer);
      yield { stream: reader.stream, data };
      pending.set(reader, next(reader));
    }
  } finally {
    for (const reader of pending.keys()) void reader.iterator.return?.().catch(() => undefined);
  }
}

/** Resolves once `data` is accepted by `to` (at once, or when it has drained). */
export function writeWithBackpressure(to: NodeJS.WritableStream, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    to.once('error', onError);
    const accepted = to.write(data, () => undefined);
    const done = () => {
      to.removeListener('error', onError);
      resolve();
    };
    if (accepted) done();
    else to.once('drain', done);
  });
}
