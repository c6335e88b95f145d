import type { SecretPurpose, SecretRequester } from '../engine/tasks/container-environment.js';

/** What resolves the part of a reference after its provider's prefix (`name`); `reference` is the whole one. */
export interface SecretProvider {
  resolve(name: string, reference: string, purpose: SecretPurpose, requester: SecretRequester): Promise<string>;
}
