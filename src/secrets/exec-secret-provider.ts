import type { SecretPurpose, SecretRequester } from '../engine/tasks/container-environment.js';
import { MAX_ENVIRONMENT_FILE_BYTES } from '../engine/tasks/container-environment.js';
import type { SecretProvider } from './secret-provider.js';
import { runBounded } from './bounded-run.js';

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

  async resolve(_name: string, reference: string, purpose: SecretPurpose, requester: SecretRequester): Promise<string> {
    const request: SecretRequest = {
      apiVersion: 'berth.dev/v1',
      kind: 'SecretRequest',
      reference,
      purpose,
      task: { id: requester.taskId, family: requester.family, revision: requester.revision },
      container: requester.containerName,
    };
    const what = 'the secret plugin';
    const { code, signal, stdout } = await runBounded(this.settings.command, this.settings.args, JSON.stringify(request), { what, timeoutMs: this.settings.timeoutMs, maxBytes: MAX_ANSWER_BYTES });
    if (code !== 0) throw new Error(`${what} exited with ${code === null ? `signal ${signal}` : `code ${code}`}`);
    let answer: unknown;
    try {
      answer = JSON.parse(stdout);
    } catch {
      throw new Error(`${what} did not answer with JSON`);
    }
    const { value, error } = (typeof answer === 'object' && answer !== null ? answer : {}) as { value?: unknown; error?: unknown };
    if (typeof error === 'string' && error !== '') throw new Error(`${what} says: ${error.slice(0, 512)}`);
    if (typeof value !== 'string') throw new Error(`${what} answered without a string "value"`);
    return value;
  }
}
