import type { SecretPurpose, SecretRequester, SecretResolver } from '../../src/engine/tasks/container-environment.js';

/** Secrets kept in memory, for unit tests of the engine's rules: each resolution is recorded, a missing one fails. */
export class FakeSecrets implements SecretResolver {
  readonly values = new Map<string, string>();
  readonly requests: { reference: string; purpose: SecretPurpose; requester: SecretRequester }[] = [];

  async resolve(reference: string, purpose: SecretPurpose, requester: SecretRequester): Promise<string> {
    this.requests.push({ reference, purpose, requester });
    const value = this.values.get(reference);
    if (value === undefined) throw new Error('no such secret in the test store');
    return value;
  }
}
