import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { PACKAGE_ROOT } from '../../src/package-root.js';
import { readLogFile, readOutput } from '../../src/runtime/containerd/log-file.js';
import type { LogLine, LogOptions } from '../../src/runtime/types.js';

const record = (i: number, stream = i % 3 === 0 ? 'stderr' : 'stdout', tag = 'F') =>
  `2026-11-28T12:00:${String(i % 60).padStart(2, '0')}.${String(i).padStart(9, '0')}Z ${stream} ${tag} line ${i} ${'x'.repeat(i % 50)}\n`;

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

  it("reads an empty or missing file as no lines, and a process's output with its pieces joined", async () => {
    assert.deepEqual(await read(join(dir, 'missing.log'), { tail: 5 }), []);
    const output = join(dir, 'exec.log');
    writeFileSync(output, [record(1, 'stdout', 'F'), record(2, 'stderr', 'P'), record(3, 'stderr', 'F')].join(''));
    assert.equal((await readOutput(output, 1 << 20)).toString(), `line 1 ${'x'}\nline 2 ${'x'.repeat(2)}line 3 ${'x'.repeat(3)}\n`);
    assert.equal((await readOutput(output, 5)).toString(), 'line ');
  });
});

describe('rotated containerd log files', () => {
  const records = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => record(from + i)).join('');
  const names = (lines: string[]) => lines.map((l) => l.split(':')[1]);

  it('reads the rotated files before the current one, and a tail that reaches into them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-rotated-'));
    const path = join(dir, 'container.log');
    writeFileSync(`${path}.2`, records(0, 100));
    writeFileSync(`${path}.1`, records(100, 200));
    writeFileSync(path, records(200, 250));
    const all = await read(path, {});
    assert.deepEqual(
      names(all),
      Array.from({ length: 250 }, (_, i) => `line ${i}`),
    );
    assert.deepEqual(
      names(await read(path, { tail: 120 })),
      Array.from({ length: 120 }, (_, i) => `line ${130 + i}`),
    );
    assert.deepEqual(await read(path, { tail: 1000 }), all);
  });

  it('follows a log across a rotation: the rest of the old file, then the new one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-rotating-'));
    const path = join(dir, 'container.log');
    writeFileSync(path, records(0, 10));
    let exit!: () => void;
    const exited = new Promise<void>((resolve) => (exit = resolve));
    const seen: string[] = [];
    const follow = (async () => {
      for await (const line of readLogFile(path, { follow: true, signal: new AbortController().signal }, exited)) seen.push(line.text.toString('utf8').split(' ').slice(0, 2).join(' '));
    })();
    while (seen.length < 10) await new Promise((resolve) => setTimeout(resolve, 20));
    // What the writer does: a last record in the old file, the rename, a new file.
    appendFileSync(path, records(10, 12));
    renameSync(path, `${path}.1`);
    writeFileSync(path, records(12, 20));
    exit();
    await follow;
    assert.deepEqual(
      seen,
      Array.from({ length: 20 }, (_, i) => `line ${i}`),
    );
  });

  it('stamps each line the log writer takes with the UTC time it arrived', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'berth-stamps-')), 'container.log');
    const writer = spawn('perl', [join(PACKAGE_ROOT ?? '.', 'libexec', 'berth-log-writer'), 'file', path], { stdio: ['ignore', 'ignore', 'inherit', 'pipe', 'pipe', 'pipe'] });
    const exited = once(writer, 'exit');
    const before = Date.now();
    (writer.stdio[3] as Writable).end('to stdout\n');
    (writer.stdio[4] as Writable).end('to stderr\n');
    assert.deepEqual(await exited, [0, null]);
    const after = Date.now();
    const lines: LogLine[] = [];
    for await (const line of readLogFile(path, { follow: false, signal: new AbortController().signal }, undefined)) lines.push(line);
    assert.deepEqual(lines.map((l) => `${l.stream} ${l.text.toString('utf8')}`).sort(), ['stderr to stderr', 'stdout to stdout']);
    for (const line of lines) {
      // The file's own stamp, to the nanosecond: date and time of day as the clock gave them (a
      // month or year formatted wrong would land far outside the write's second).
      assert.ok(
        line.time.getTime() >= before - 1000 && line.time.getTime() <= after + 1000,
        `${line.time.toISOString()} is within [${new Date(before).toISOString()}, ${new Date(after).toISOString()}]`,
      );
    }
    const stamps = readFileSync(path, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((record) => record.split(' ')[0]);
    for (const stamp of stamps) assert.match(stamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  });

  it('reads each line once while the log writer rotates the files under it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-rotating-'));
    const path = join(dir, 'container.log');
    // berth's log writer, as the containerd shim runs it, rotating at 8 KiB into three files in all.
    const writerPath = join(PACKAGE_ROOT ?? '.', 'libexec', 'berth-log-writer');
    const writer = spawn('perl', [writerPath, 'file', path, 'max-size', '8192', 'max-files', '3'], { stdio: ['ignore', 'ignore', 'inherit', 'pipe', 'pipe', 'pipe'] });
    const stdout = writer.stdio[3] as Writable;
    const exited = once(writer, 'exit');
    let rotationsSeen = 0;
    let previousFirst = 0;
    try {
      // 20,000 numbered lines (about 40 rotations), 50 at a time; after each write, a read while the writer takes it.
      for (let i = 1; i <= 20_000; i += 50) {
        if (!stdout.write(Array.from({ length: 50 }, (_, j) => `${i + j}\n`).join(''))) await once(stdout, 'drain');
        const numbers: number[] = [];
        for await (const line of readLogFile(path, { follow: false, signal: new AbortController().signal }, undefined)) numbers.push(Number(line.text.toString()));
        if (numbers.length === 0) continue;
        assert.deepEqual(
          numbers,
          Array.from({ length: numbers.length }, (_, n) => numbers[0] + n),
          `read after line ${i + 49}: every line once, in order`,
        );
        if (numbers[0] !== previousFirst) rotationsSeen++;
        previousFirst = numbers[0];
      }
      stdout.end();
      (writer.stdio[4] as Writable).end();
      await exited;
    } finally {
      writer.kill();
    }
    assert.ok(rotationsSeen > 1, `the reads saw ${rotationsSeen} rotations`);
  });
});
