import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readLogFile, readOutput } from '../../src/runtime/containerd/log-file.js';
import type { LogLine, LogOptions } from '../../src/runtime/types.js';

const record = (i: number, stream = i % 3 === 0 ? 'stderr' : 'stdout', tag = 'F') => `2026-11-28T12:00:${String(i % 60).padStart(2, '0')}.${String(i).padStart(9, '0')}Z ${stream} ${tag} line ${i} ${'x'.repeat(i % 50)}\n`;

async function read(path: string, options: Partial<LogOptions>): Promise<string[]> {
  const lines: LogLine[] = [];
  for await (const line of readLogFile(path, { follow: false, signal: new AbortController().signal, ...options }, undefined)) lines.push(line);
  return lines.map((l) => `${l.stream}:${l.text.toString('utf8').split(' ').slice(0, 2).join(' ')}${l.partial ? '…' : ''}`);
}

describe('containerd log files (berth-log-writer records)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-logfile-'));
  const path = join(dir, 'container.log');
  // 20,000 records, several chunks' worth, and half a record being written at the end.
  writeFileSync(path, Array.from({ length: 20_000 }, (_, i) => record(i)).join(''));
  appendFileSync(path, '2026-11-28T12:00:00.000000000Z stdout F half a rec');

  it('reads the last lines from the end, over chunk boundaries, with the stream filter, leaving out a record being written', async () => {
    const everything = await read(path, {});
    assert.equal(everything.length, 20_000);
    for (const tail of [0, 1, 7, 1000, 2999, 20_000, 50_000]) {
      assert.deepEqual(await read(path, { tail }), tail === 0 ? [] : everything.slice(-tail), `tail ${tail}`);
    }
    const stderr = everything.filter((l) => l.startsWith('stderr:'));
    assert.deepEqual(await read(path, { tail: 2500, streams: ['stderr'] }), stderr.slice(-2500));
  });

  it('reads an empty or missing file as no lines, and a process\'s output with its pieces joined', async () => {
    assert.deepEqual(await read(join(dir, 'missing.log'), { tail: 5 }), []);
    const output = join(dir, 'exec.log');
    writeFileSync(output, [record(1, 'stdout', 'F'), record(2, 'stderr', 'P'), record(3, 'stderr', 'F')].join(''));
    assert.equal((await readOutput(output, 1 << 20)).toString(), `line 1 ${'x'}\nline 2 ${'x'.repeat(2)}line 3 ${'x'.repeat(3)}\n`);
    assert.equal((await readOutput(output, 5)).toString(), 'line ');
  });
});
