import { access, constants, readFile, stat } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import type { Logger } from 'pino';
import type { RegistryCredentialSource } from '../engine/images/image-manager.js';
import type { RegistryAuth } from '../runtime/types.js';
import { runBounded } from './bounded-run.js';

export interface DockerCredentialSettings {
  /** A Docker config.json: its `auths`, `credHelpers` and `credsStore`. Unset: helpers none, auths none. */
  configFile?: string;
  /** Directories searched for `docker-credential-<name>` before the agent's PATH. */
  helperDirs: string[];
  /** How long credentials from a helper or the file are used before they are asked for again. */
  cacheTtlMs: number;
  /** Longest a helper run may take. */
  helperTimeoutMs: number;
}

/** What berth reads of a Docker config file. */
interface DockerConfig {
  auths: Record<string, { auth?: string; username?: string; password?: string }>;
  credHelpers: Record<string, string>;
  credsStore?: string;
}

const MAX_CONFIG_BYTES = 1024 * 1024;
const MAX_HELPER_ANSWER_BYTES = 64 * 1024;
const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** The server URL Docker gives helpers (and keys `auths` by) for Docker Hub. */
const DOCKER_HUB = 'https://index.docker.io/v1/';

/** How Docker names a registry to helpers and in `auths`: its host, or Docker Hub's URL. */
function serverUrlOf(host: string): string {
  return host === 'docker.io' || host === 'index.docker.io' || host === 'registry-1.docker.io' ? DOCKER_HUB : host;
}

/**
 * Registry credentials the way Docker finds them in its config.json: `credHelpers[host]`, else
 * the `credsStore` helper, else `auths[host]`. A helper is `docker-credential-<name>`, run as
 * `docker-credential-<name> get` with the server URL on stdin, answering `{"ServerURL",
 * "Username", "Secret"}` (Debian's amazon-ecr-credential-helper works unchanged). What it gives
 * is cached in memory for `cacheTtlMs`, or until the registry refuses it; never written anywhere.
 * The file is read again at every cache miss, so an edit takes effect without a restart.
 */
export class DockerCredentials implements RegistryCredentialSource {
  private readonly cache = new Map<string, { auth: RegistryAuth | undefined; until: number }>();
  private readonly inFlight = new Map<string, Promise<RegistryAuth | undefined>>();

  constructor(
    private readonly settings: DockerCredentialSettings,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  invalidate(host: string): void {
    this.cache.delete(host);
  }

  credentialsFor(host: string): Promise<RegistryAuth | undefined> {
    const cached = this.cache.get(host);
    if (cached && cached.until > this.now()) return Promise.resolve(cached.auth);
    let flight = this.inFlight.get(host);
    if (!flight) {
      flight = this.lookUp(host)
        .then((auth) => {
          this.cache.set(host, { auth, until: this.now() + this.settings.cacheTtlMs });
          return auth;
        })
        .finally(() => this.inFlight.delete(host));
      this.inFlight.set(host, flight);
    }
    return flight;
  }

  private async lookUp(host: string): Promise<RegistryAuth | undefined> {
    const config = await this.readConfig();
    const serverUrl = serverUrlOf(host);
    const helper = config.credHelpers[host] ?? config.credHelpers[serverUrl] ?? config.credsStore;
    if (helper) {
      const auth = await this.runHelper(helper, serverUrl);
      if (auth) return auth;
    }
    const entry = config.auths[host] ?? config.auths[serverUrl] ?? config.auths[`https://${host}`];
    if (!entry) return undefined;
    if (entry.username && entry.password) return { username: entry.username, password: entry.password };
    const decoded = Buffer.from(entry.auth ?? '', 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new Error(`the auths entry for ${host} in the Docker config file is not base64 of "username:password"`);
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }

  private async readConfig(): Promise<DockerConfig> {
    const empty: DockerConfig = { auths: {}, credHelpers: {} };
    const file = this.settings.configFile;
    if (!file) return empty;
    const info = await stat(file).catch(() => undefined);
    if (!info) return empty;
    if (!info.isFile() || info.size > MAX_CONFIG_BYTES) throw new Error(`the Docker config file ${file} is not a regular file of at most ${MAX_CONFIG_BYTES} bytes`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(file, 'utf8'));
    } catch {
      // The parser's message could quote the file, which holds credentials.
      throw new Error(`the Docker config file ${file} is not valid JSON`);
    }
    const config = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
    const objectOf = (value: unknown) => (typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {});
    const credHelpers: Record<string, string> = {};
    for (const [registry, name] of Object.entries(objectOf(config.credHelpers))) if (typeof name === 'string') credHelpers[registry] = name;
    const auths: DockerConfig['auths'] = {};
    for (const [registry, entry] of Object.entries(objectOf(config.auths))) {
      const e = objectOf(entry);
      auths[registry] = {
        auth: typeof e.auth === 'string' ? e.auth : undefined,
        username: typeof e.username === 'string' ? e.username : undefined,
        password: typeof e.password === 'string' ? e.password : undefined,
      };
    }
    return { auths, credHelpers, credsStore: typeof config.credsStore === 'string' && config.credsStore !== '' ? config.credsStore : undefined };
  }

  /** `docker-credential-<name>`, in the configured directories first, then the PATH. */
  private async helperPath(name: string): Promise<string> {
    if (!HELPER_NAME.test(name)) throw new Error(`"${name.slice(0, 64)}" is not a credential helper name`);
    const dirs = [...this.settings.helperDirs, ...(process.env.PATH ?? '').split(delimiter).filter(Boolean)];
    for (const dir of dirs) {
      const path = join(dir, `docker-credential-${name}`);
      if (
        await access(path, constants.X_OK).then(
          () => true,
          () => false,
        )
      )
        return path;
    }
    throw new Error(`the credential helper docker-credential-${name} is not installed (searched ${dirs.length} directories)`);
  }

  /**
   * Runs `docker-credential-<name> get`. "credentials not found" (exit 1 with that message, the
   * protocol's answer) is no credentials; any other failure fails, without quoting the helper's
   * output (it could hold a secret).
   */
  private async runHelper(name: string, serverUrl: string): Promise<RegistryAuth | undefined> {
    const path = await this.helperPath(name);
    const { code, stdout } = await runBounded(path, ['get'], `${serverUrl}\n`, { what: `docker-credential-${name}`, timeoutMs: this.settings.helperTimeoutMs, maxBytes: MAX_HELPER_ANSWER_BYTES });
    if (code !== 0) {
      if (/credentials not found/i.test(stdout)) return undefined;
      this.log.warn({ helper: name, exitCode: code }, 'a credential helper failed');
      throw new Error(`docker-credential-${name} get failed with exit code ${code}`);
    }
    let answer: { Username?: unknown; Secret?: unknown };
    try {
      answer = JSON.parse(stdout) as typeof answer;
    } catch {
      throw new Error(`docker-credential-${name} did not answer with JSON`);
    }
    if (typeof answer.Username !== 'string' || typeof answer.Secret !== 'string' || answer.Secret === '') throw new Error(`docker-credential-${name} answered without Username and Secret`);
    // "<token>" names an identity token (OAuth refresh), which registries take otherwise.
    if (answer.Username === '<token>') throw new Error(`docker-credential-${name} gave an identity token, which berth does not support`);
    return { username: answer.Username, password: answer.Secret };
  }
}
