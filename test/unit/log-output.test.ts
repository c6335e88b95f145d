import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const LOG_OUTPUT = join(import.meta.dirname, '../../src/log-output.ts');

/**
 * A process that logs through standardOutputLog (a bound of 64 KiB) in batches, a turn of its event
 * loop apart, so that its reader can keep up if it reads. It tells over IPC when its batches are
 * done (and how many lines it dropped), then logs one last line when told, and ends when told.
 */
const LOGGER = `
const { standardOutputLog, droppedLogLines } = await import(${JSON.stringify(LOG_OUTPUT)});
const { pino } = await import('pino');
const logger = pino({ base: undefined }, standardOutputLog(64 * 1024));
const text = 'x'.repeat(1000);
for (let batch = 0; batch < 100; batch++) {
  for (let i = 0; i < 20; i++) logger.info({ batch, i }, text);
  await new Promise((resolve) => setImmediate(resolve));
}
process.send({ dropped: droppedLogLines() });
process.once('message', () => {
  // Logged while the process goes on: written then, not only by the flush at its exit.
  logger.info('last line');
  process.once('message', () => process.disconnect());
});
`;

describe('the log on standard output', () => {
  it('drops lines past its bound while nobody reads them, goes on working, and writes whole lines once read, without waiting for the exit', { timeout: 120_000 }, async (t) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', LOGGER], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    t.after(() => child.kill('SIGKILL'));
    const stdout = child.stdout!;
    // Nobody reads the pipe yet: the logger's writes wait for the reader.
    stdout.pause();
    const [report] = (await once(child, 'message')) as [{ dropped: number }];
    // 2,000 lines of about 1 KiB could not all wait in a pipe, the stream's buffer and a bound of 64 KiB.
    assert.ok(report.dropped > 1000, `dropped ${report.dropped} lines`);
    assert.ok(report.dropped < 2000, 'the lines up to the bound were kept');
    let output = '';
    // The lines left when the paused write ended, and the last one, come while the process still runs.
    const lastLine = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the last line did not come while the process ran; got ${output.length} characters`)), 60_000);
      stdout.setEncoding('utf8').on('data', (chunk: string) => {
        output += chunk;
        if (!output.includes('"msg":"last line"')) return;
        clearTimeout(timer);
        resolve();
      });
    });
    stdout.resume();
    child.send({ type: 'go on' });
    await lastLine;
    child.send({ type: 'exit' });
    const [code] = (await once(child, 'exit')) as [number];
    assert.equal(code, 0);
    const lines = output.trimEnd().split('\n');
    for (const line of lines) JSON.parse(line);
    assert.equal(lines.length, 2000 - report.dropped + 1, 'every line not dropped arrived whole');
    assert.equal((JSON.parse(lines.at(-1)!) as { msg: string }).msg, 'last line', 'logging went on once the reader read');
  });
});
