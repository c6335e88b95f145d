import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { ContainerRuntime } from '../../runtime/container-runtime.js';
import { isRuntimeError, RuntimeError } from '../../runtime/errors.js';
import { normalizeImageReference, registryHost, withDefaultTag } from '../../runtime/image-reference.js';
import type { PullProgress, RegistryAuth } from '../../runtime/types.js';
import { StoreUnavailableError } from '../errors.js';
import { pullFailureReason } from './pull-failure.js';
import { Semaphore } from '../semaphore.js';
import type { ImageRecordRow } from '../store/records.js';

export const PULL_BEHAVIORS = ['default', 'always', 'once', 'prefer-cached'] as const;
/**
 * default: pull; when the pull fails, use the cached image if there is one, unless the registry
 *   refused the credentials.
 * always: pull; a failed pull fails the container.
 * once: pull only if no pull of this image has succeeded before.
 * prefer-cached: pull only if the image is not present.
 * A cached image that was pulled with credentials is used without a pull only by a task whose own
 * credentials the registry accepts for it (see ImageManager.mayUseCached).
 */
export type PullBehavior = (typeof PULL_BEHAVIORS)[number];

export interface ImageSettings {
  pullBehavior: PullBehavior;
  /** Credentials per registry host, for images pulled without credentials of their own. */
  registryCredentials?: Record<string, RegistryAuth>;
  maxConcurrentPulls: number;
  pullTimeoutMs: number;
  /** A pull with no progress for this long is abandoned. */
  pullInactivityTimeoutMs: number;
  /** How long the registry's acceptance of one set of credentials for a cached private image holds. */
  accessCheckValidityMs: number;
  cleanup: {
    enabled: boolean;
    intervalMs: number;
    /** Only images pulled at least this long ago are removed. */
    minimumAgeMs: number;
    perCycle: number;
    /** References never removed. */
    exclude: string[];
  };
}

/** Where the image records are kept, so "once" and cleanup survive agent restarts. */
export interface ImageRecordStore {
  saveImage(image: ImageRecordRow): void;
  deleteImage(reference: string): void;
  loadImages(): ImageRecordRow[];
}

interface ImageRecord {
  reference: string;
  /** Set after a successful pull. */
  pulledAt?: Date;
  lastUsedAt: Date;
  /** Tasks that use the image; an image with users is never removed. */
  users: Set<string>;
  /** The last successful pull brought credentials: the image may be private. */
  pulledWithCredentials: boolean;
  /** Credentials (by fingerprint) the registry accepted for this image, until when (ms). */
  accepted: Map<string, number>;
}

interface InFlightPull {
  done: Promise<void>;
  listeners: Set<(progress: PullProgress) => void>;
}

/**
 * The form of an image reference the engine hands to the runtime and keys its records by: the
 * normalised one (see normalizeImageReference). A reference saved before references were checked
 * and that does not parse is passed on as it is, for the runtime to refuse.
 */
export function canonicalImage(reference: string): string {
  try {
    return normalizeImageReference(reference);
  } catch {
    return reference;
  }
}

/**
 * Credentials for registries that come from elsewhere than the task or the agent's static config:
 * Docker credential helpers and a Docker config file. They may expire: a source caches them in
 * memory only, and forgets a host's when its registry refused them.
 */
export interface RegistryCredentialSource {
  /** The credentials for a registry host, or undefined when the source has none; fails when a helper fails. */
  credentialsFor(host: string): Promise<RegistryAuth | undefined>;
  /** Forgets the cached credentials of a host: the next credentialsFor asks its helper again. */
  invalidate(host: string): void;
}

/** `note` says why a cached image was used although it could not be checked or pulled. */
export type PrepareResult = { ok: true; pulled: boolean; note?: string } | { ok: false; reason: string };

/** Credentials as a key for the memory of what the registry accepted; never the secret itself. */
function fingerprint(auth: RegistryAuth | undefined): string {
  return auth ? createHash('sha256').update(`${auth.username}\0${auth.password}`).digest('hex') : '';
}

/**
 * The images berth uses: pulls them by the configured behaviour, one pull per image however many
 * tasks want it, at most `maxConcurrentPulls` at a time; counts which tasks use each image; and
 * removes unused ones it pulled, least recently used first.
 */
export class ImageManager {
  private readonly records = new Map<string, ImageRecord>();
  private readonly inFlight = new Map<string, InFlightPull>();
  /** Presence checks in flight, by reference. */
  private readonly presenceChecks = new Map<string, Promise<boolean>>();
  private readonly slots: Semaphore;
  private cleanupTimer: NodeJS.Timeout | undefined;
  private readonly pullAborts = new Set<AbortController>();

  constructor(
    private readonly runtime: ContainerRuntime,
    private readonly settings: ImageSettings,
    private readonly log: Logger,
    private readonly store?: ImageRecordStore,
    private readonly now: () => Date = () => new Date(),
    private readonly credentialSource?: RegistryCredentialSource,
  ) {
    this.slots = new Semaphore(settings.maxConcurrentPulls);
    for (const row of store?.loadImages() ?? []) {
      this.records.set(row.reference, {
        reference: row.reference,
        pulledAt: row.pulledAt === undefined ? undefined : new Date(row.pulledAt),
        lastUsedAt: new Date(row.lastUsedAt),
        users: new Set(),
        pulledWithCredentials: row.pulledWithCredentials === true,
        accepted: new Map(),
      });
    }
  }

  private record(reference: string): ImageRecord {
    const ref = withDefaultTag(reference);
    let record = this.records.get(ref);
    if (!record) {
      record = { reference: ref, lastUsedAt: this.now(), users: new Set(), pulledWithCredentials: false, accepted: new Map() };
      this.records.set(ref, record);
    }
    return record;
  }

  /** Saves a record; one the store cannot take now is kept in memory (it only guides cleanup and "once"). */
  private save(record: ImageRecord): void {
    try {
      this.store?.saveImage({ reference: record.reference, pulledAt: record.pulledAt?.getTime(), lastUsedAt: record.lastUsedAt.getTime(), pulledWithCredentials: record.pulledWithCredentials });
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
    }
  }

  /**
   * Marks the image as used by a task from its admission on, so cleanup never takes it. A task
   * taken over after an agent restart is marked again without counting as a new use.
   */
  use(taskId: string, reference: string, options: { restored?: boolean } = {}): void {
    const record = this.record(reference);
    record.users.add(taskId);
    if (options.restored) return;
    record.lastUsedAt = this.now();
    this.save(record);
  }

  /** The task was cleaned up: it no longer uses any image. */
  release(taskId: string): void {
    for (const record of this.records.values()) record.users.delete(taskId);
  }

  /**
   * Makes the image present according to the pull behaviour (the configured one unless `behavior`
   * overrides it, as for pause containers). Never throws.
   */
  async prepare(
    reference: string,
    auth: RegistryAuth | undefined,
    signal: AbortSignal,
    onProgress?: (progress: PullProgress) => void,
    behavior: PullBehavior = this.settings.pullBehavior,
  ): Promise<PrepareResult> {
    const record = this.record(reference);
    record.lastUsedAt = this.now();
    const host = registryHost(record.reference);
    auth ??= this.settings.registryCredentials?.[host];
    // Credentials from a helper may have expired: refused once, they are asked for again and the
    // pull (or the access check) is tried once more with the new ones.
    const fromSource = auth === undefined && this.credentialSource !== undefined;
    if (fromSource) {
      try {
        auth = await this.credentialSource.credentialsFor(host);
      } catch (error) {
        return { ok: false, reason: `cannot get the credentials for ${host}: ${(error as Error).message}` };
      }
    }
    const refreshed = async (): Promise<RegistryAuth | undefined> => {
      if (!fromSource || auth === undefined) return undefined;
      this.credentialSource!.invalidate(host);
      const fresh = await this.credentialSource!.credentialsFor(host).catch(() => undefined);
      return fresh && fingerprint(fresh) !== fingerprint(auth) ? fresh : undefined;
    };
    if (behavior === 'prefer-cached' || (behavior === 'once' && record.pulledAt)) {
      if (await this.present(record.reference)) {
        const result = await this.mayUseCached(record, auth);
        const fresh = !result.ok ? await refreshed() : undefined;
        return fresh ? this.mayUseCached(record, fresh) : result;
      }
    }
    try {
      try {
        await this.pull(record, auth, signal, onProgress);
      } catch (error) {
        const fresh = isRuntimeError(error, 'unauthorized') && !signal.aborted ? await refreshed() : undefined;
        if (!fresh) throw error;
        this.log.info({ image: record.reference, host }, "the registry refused the credential helper's credentials; pulling again with fresh ones");
        auth = fresh;
        await this.pull(record, auth, signal, onProgress);
      }
      return { ok: true, pulled: true };
    } catch (error) {
      if (signal.aborted) return { ok: false, reason: 'the task was stopped before the image was pulled' };
      const reason = pullFailureReason(record.reference, error);
      // A registry that refused these credentials has said no: the image another task pulled with
      // its own credentials is not this task's to run. Only a pull that could not get an answer
      // (registry or network down, timeout) falls back to the cached image.
      const refused = isRuntimeError(error, 'unauthorized') || (isRuntimeError(error, 'not-found') && record.pulledWithCredentials);
      if (behavior !== 'always' && !refused && (await this.present(record.reference))) {
        this.log.warn({ image: record.reference, reason }, 'pull failed; using the cached image');
        return { ok: true, pulled: false, note: `the pull failed (${reason}); using the cached image` };
      }
      return { ok: false, reason };
    }
  }

  /**
   * Whether a task with `auth` may run the cached copy of an image without pulling it. An image
   * pulled without credentials is anyone's. One pulled with credentials may be private: the task's
   * own credentials must be accepted by the registry for it (Kubernetes calls this "ensure secret
   * pulled images"), and an acceptance is remembered for `accessCheckValidityMs`. A registry that
   * cannot be asked does not block the task: the cached image is used and the note says so.
   */
  private async mayUseCached(record: ImageRecord, auth: RegistryAuth | undefined): Promise<PrepareResult> {
    if (!record.pulledWithCredentials) return { ok: true, pulled: false };
    const key = fingerprint(auth);
    const now = this.now().getTime();
    if ((record.accepted.get(key) ?? 0) > now) return { ok: true, pulled: false };
    try {
      await this.runtime.checkImageAccess(record.reference, auth);
    } catch (error) {
      if (isRuntimeError(error, 'unauthorized') || isRuntimeError(error, 'not-found')) {
        return {
          ok: false,
          reason: `the registry does not let this task's credentials pull ${record.reference} (${(error as RuntimeError).detail}); its cached copy was pulled with other credentials and is not used`,
        };
      }
      const detail = error instanceof RuntimeError ? error.detail : String(error);
      this.log.warn({ image: record.reference, detail }, "could not ask the registry whether the task's credentials may pull the image; using the cached image");
      return { ok: true, pulled: false, note: `the registry could not be asked whether this task's credentials may pull the image (${detail}); using the cached image` };
    }
    for (const [k, until] of record.accepted) if (until <= now) record.accepted.delete(k);
    record.accepted.set(key, now + this.settings.accessCheckValidityMs);
    return { ok: true, pulled: false };
  }

  /**
   * Whether the runtime has the image. Callers that ask while a check of the same image is in
   * flight share its answer (one inspect for a burst of launches of one image): it is at most one
   * inspect older than their own would have been.
   */
  private present(reference: string): Promise<boolean> {
    let check = this.presenceChecks.get(reference);
    if (!check) {
      check = this.runtime.inspectImage(reference).then(
        () => true,
        () => false,
      );
      this.presenceChecks.set(reference, check);
      void check.finally(() => this.presenceChecks.delete(reference));
    }
    return check;
  }

  /** One pull per image and credentials at a time; later callers join the one in flight. */
  private async pull(record: ImageRecord, auth: RegistryAuth | undefined, signal: AbortSignal, onProgress?: (progress: PullProgress) => void): Promise<void> {
    const key = `${record.reference}\0${auth?.username ?? ''}\0${auth?.password ?? ''}`;
    let flight = this.inFlight.get(key);
    if (!flight) {
      const listeners = new Set<(progress: PullProgress) => void>();
      const done = this.runPull(record, auth, listeners).finally(() => this.inFlight.delete(key));
      flight = { done, listeners };
      this.inFlight.set(key, flight);
    }
    const joined = flight;
    if (onProgress) joined.listeners.add(onProgress);
    try {
      // A caller that is stopped stops waiting; the pull goes on for the others.
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(new RuntimeError('internal', `pull image "${record.reference}"`, 'abandoned'));
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        joined.done.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
      });
    } finally {
      if (onProgress) joined.listeners.delete(onProgress);
    }
  }

  private async runPull(record: ImageRecord, auth: RegistryAuth | undefined, listeners: Set<(progress: PullProgress) => void>): Promise<void> {
    const release = await this.slots.acquire();
    const inactivity = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => inactivity.abort(), this.settings.pullInactivityTimeoutMs);
    };
    this.pullAborts.add(inactivity);
    try {
      arm();
      this.log.info({ image: record.reference }, 'pulling image');
      await this.runtime.pullImage(record.reference, {
        auth,
        signal: inactivity.signal,
        timeoutMs: this.settings.pullTimeoutMs,
        onProgress: (progress) => {
          arm();
          for (const listener of listeners) listener(progress);
        },
      });
      record.pulledAt = this.now();
      // A pull proves the registry accepts these credentials, and whether the image needs any is
      // judged by the last successful pull.
      record.pulledWithCredentials = auth !== undefined;
      record.accepted.clear();
      record.accepted.set(fingerprint(auth), record.pulledAt.getTime() + this.settings.accessCheckValidityMs);
      this.save(record);
    } catch (error) {
      if (inactivity.signal.aborted) {
        throw new RuntimeError('timeout', `pull image "${record.reference}"`, `no progress for ${this.settings.pullInactivityTimeoutMs} ms`);
      }
      throw error;
    } finally {
      clearTimeout(timer);
      this.pullAborts.delete(inactivity);
      release();
    }
  }

  startCleanup(): void {
    if (!this.settings.cleanup.enabled) return;
    this.cleanupTimer = setInterval(() => void this.cleanupOnce(), this.settings.cleanup.intervalMs);
    this.cleanupTimer.unref();
  }

  /** Stops the cleanup timer and abandons the pulls in flight (the agent is shutting down). */
  stop(): void {
    clearInterval(this.cleanupTimer);
    for (const abort of this.pullAborts) abort.abort();
  }

  /** Images cleanup would remove now, in order. */
  candidates(): string[] {
    const now = this.now().getTime();
    const { minimumAgeMs, perCycle, exclude } = this.settings.cleanup;
    const excluded = new Set(exclude.flatMap((e) => [withDefaultTag(e), canonicalImage(e)]));
    const pulling = new Set([...this.inFlight.keys()].map((key) => key.split('\0')[0]));
    return [...this.records.values()]
      .filter((r) => r.users.size === 0 && r.pulledAt && now - r.pulledAt.getTime() >= minimumAgeMs && !excluded.has(r.reference) && !pulling.has(r.reference))
      .sort((a, b) => a.lastUsedAt.getTime() - b.lastUsedAt.getTime())
      .slice(0, perCycle)
      .map((r) => r.reference);
  }

  /** Removes unused images berth pulled; returns the references removed. */
  async cleanupOnce(): Promise<string[]> {
    const removed: string[] = [];
    for (const reference of this.candidates()) {
      const record = this.records.get(reference);
      // A task may have been admitted while an earlier removal ran.
      if (!record || record.users.size > 0) continue;
      try {
        await this.runtime.removeImage(reference);
        this.records.delete(reference);
        this.store?.deleteImage(reference);
        removed.push(reference);
      } catch (error) {
        if (isRuntimeError(error, 'conflict')) this.log.info({ image: reference }, 'image still used by a container; kept');
        else this.log.warn({ err: error, image: reference }, 'image cleanup failed');
      }
    }
    if (removed.length > 0) this.log.info({ removed }, 'removed unused images');
    return removed;
  }
}
