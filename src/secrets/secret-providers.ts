import type { SecretPurpose, SecretRequester, SecretResolver } from '../engine/tasks/container-environment.js';
import { ExecSecretProvider, type ExecProviderSettings } from './exec-secret-provider.js';
import { FileSecretProvider } from './file-secret-provider.js';
import type { SecretProvider } from './secret-provider.js';

/** One configured provider: the references it serves (by prefix) and where their values come from. */
export interface SecretProviderSettings {
  /** References that start with this go to this provider, the prefix removed; the longest match wins; "" matches all. */
  prefix: string;
  /** A directory on the host: the reference is a file name inside it. */
  file?: { directory: string };
  /** A plugin program speaking JSON on stdin and stdout. */
  exec?: ExecProviderSettings;
}

/**
 * The agent's secret providers, each serving the references that start with its prefix (as
 * `arn:aws:ssm:` to an exec plugin that asks SSM, `file:` to a directory). A reference no provider
 * serves fails, saying so. Values are returned to the caller only: never cached, stored or logged.
 */
export class SecretProviders implements SecretResolver {
  private readonly providers: { prefix: string; provider: SecretProvider }[];

  constructor(settings: SecretProviderSettings[]) {
    this.providers = settings
      .map((s) => ({ prefix: s.prefix, provider: s.file ? new FileSecretProvider(s.file.directory) : new ExecSecretProvider(s.exec!) }))
      .sort((a, b) => b.prefix.length - a.prefix.length);
  }

  async resolve(reference: string, purpose: SecretPurpose, requester: SecretRequester): Promise<string> {
    const match = this.providers.find((p) => reference.startsWith(p.prefix));
    if (!match) {
      throw new Error(this.providers.length === 0 ? 'the agent has no secret providers (secrets.providers)' : 'no secret provider serves this reference (by the prefixes in secrets.providers)');
    }
    return match.provider.resolve(reference.slice(match.prefix.length), reference, purpose, requester);
  }
}
