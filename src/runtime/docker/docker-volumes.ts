import type Docker from 'dockerode';
import { RuntimeError } from '../errors.js';
import type { VolumeInfo, VolumeSpec } from '../types.js';

type Call = <T>(operation: string, fn: (signal: AbortSignal) => Promise<T>) => Promise<T>;

/** Docker's volumes, as the runtime contract names them (create, inspect, remove, list). */
export class DockerVolumes {
  constructor(
    private readonly docker: Docker,
    private readonly call: Call,
  ) {}

  /** Docker answers a create of an existing volume with that volume, and a clash of drivers with 409. */
  async create(spec: VolumeSpec): Promise<void> {
    await this.call(`create volume "${spec.name}"`, (abortSignal) =>
      this.docker.createVolume({ Name: spec.name, Driver: spec.driver, DriverOpts: spec.driverOptions, Labels: spec.labels, abortSignal } as Docker.VolumeCreateOptions),
    );
  }

  async inspect(name: string): Promise<VolumeInfo> {
    const volume = (await this.call(`inspect volume "${name}"`, (abortSignal) => this.docker.getVolume(name).inspect({ abortSignal }))) as {
      Name: string;
      Driver: string;
      Labels: Record<string, string> | null;
    };
    return { name: volume.Name, driver: volume.Driver, labels: volume.Labels ?? {} };
  }

  async remove(name: string): Promise<void> {
    try {
      await this.call(`remove volume "${name}"`, (abortSignal) => this.docker.getVolume(name).remove({ abortSignal }));
    } catch (error) {
      if (!(error instanceof RuntimeError && error.kind === 'not-found')) throw error;
    }
  }

  async list(labels: Record<string, string>): Promise<VolumeInfo[]> {
    const label = Object.entries(labels).map(([key, value]) => `${key}=${value}`);
    const answer = await this.call('list volumes', (abortSignal) => this.docker.listVolumes({ filters: { label }, abortSignal }));
    return (answer.Volumes ?? []).map((v) => ({ name: v.Name, driver: v.Driver, labels: (v.Labels as Record<string, string> | null) ?? {} }));
  }
}
