import { spawn } from 'node:child_process';
import type { SecretPurpose, SecretRequester } from '../engine/tasks/container-environment.js';
import { MAX_ENVIRONMENT_FILE_BYTES } from '../engine/tasks/container-environment.js';
import type { SecretProvider } from './secret-provider.js';

export interface ExecProviderSettings {
  /** The plugin's absolute path. */
  command: string;
  args: string[];
  /** Longest a plugin run may take; it is killed then. */
  timeoutMs: number;
}

/** The request a plugin reads on stdin (one JSON object). */
export interface SecretRequest {
  apiVersion: 'berth.dev/v1';
  kind: 'SecretRequest';
  /** The whole reference, prefix included. */
  reference: string;
  /** "secret" (a variable's value) or "environment-file" (the text of a file of VARIABLE=VALUE lines). */
  purpose: SecretPurpose;
  task: { id: string; family: string; revision: number };
  container: string;
}

/** Room for a JSON-escaped value of the largest size, and the rest of the answer. */
const MAX_ANSWER_BYTES = 6 * MAX_ENVIRONMENT_FILE_BYTES + 4096;

/**
 * A plugin program that resolves references, in the spirit of kubelet's credential provider
 * plugins: berth runs it (no shell) with a SecretRequest on stdin and reads one JSON object on
 * stdout, `{"value": "…"}` or `{"error": "…"}`. A non-zero exit, a timeout, an answer that is not
 * such an object or is too large fails the secret; the plugin's stderr is never read into a reason
 * or a log (it could hold the value).
 */
export class ExecSecretProvider implements SecretProvider {
  constructor(private readonly settings: ExecProviderSettings) {}

  resolve(_name: string, reference: string, purpose: SecretPurpose, requester: SecretRequester): Promise<string> {
    const request: SecretRequest = {
      apiVersion: 'berth.dev/v1',
      kind: 'SecretRequest',
      reference,
      purpose,
      task: { id: requester.taskId, family: requester.family, revision: requester.revision },
      container: requester.containerName,
    };
    return new Promise((resolve, reject) => {
      const child = spawn(this.settings.command, this.settings.args, { stdio: ['pipe', 'pipe', 'ignore'] });
      const chunks: Buffer[] = [];
      let size = 0;
      let failure: string | undefined;
      const fail = (reason: string) => {
        failure ??= reason;
        child.kill('SIGKILL');
      };
      const timer = setTimeout(() => fail(`the secret plugin did not answer within ${this.settings.timeoutMs} ms`), this.settings.timeoutMs);
      child.stdout.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) fail(`the secret plugin's answer is larger than ${MAX_ANSWER_BYTES} bytes`);
        else chunks.push(chunk);
      });
      child.stdin.on('error', () => undefined);
      child.on('error', (error: NodeJS.ErrnoException) => fail(`the secret plugin cannot be run (${error.code ?? 'error'})`));
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (failure) return reject(new Error(failure));
        if (code !== 0) return reject(new Error(`the secret plugin exited with ${code === null ? `signal ${signal}` : `code ${code}`}`));
        let answer: unknown;
        try {
          answer = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return reject(new Error('the secret plugin did not answer with JSON'));
        }
        const { value, error } = (typeof answer === 'object' && answer !== null ? answer : {}) as { value?: unknown; error?: unknown };
        if (typeof error === 'string' && error !== '') return reject(new Error(`the secret plugin says: ${error.slice(0, 512)}`));
        if (typeof value !== 'string') return reject(new Error('the secret plugin answered without a string "value"'));
        resolve(value);
      });
      child.stdin.end(JSON.stringify(request));
    });
  }
}
