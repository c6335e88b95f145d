import { createRequire } from 'node:module';
import { credentials, loadPackageDefinition, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

const require = createRequire(import.meta.url);
const reflectionProto = (version: ReflectionVersion) => require.resolve(`@grpc/reflection/build/proto/grpc/reflection/${version}/reflection.proto`);
const descriptor = require('protobufjs/ext/descriptor') as {
  FileDescriptorProto: { decode(data: Uint8Array): { name: string; package: string; service: { name: string; method: { name: string }[] }[] } };
};

type Ctor = new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client;
const load = (path: string) => loadPackageDefinition(loadSync(path, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true }));

type ReflectionVersion = 'v1' | 'v1alpha';

/** A grpc.reflection client (v1 unless said otherwise), as grpcurl uses it, over the agent's unix socket. */
export class ReflectionClient {
  private readonly client: Client & { ServerReflectionInfo(): NodeJS.ReadWriteStream & { write(m: object): boolean; end(): void } };

  constructor(socketPath: string, version: ReflectionVersion = 'v1') {
    const pkg = load(reflectionProto(version)) as unknown as { grpc: { reflection: Record<ReflectionVersion, { ServerReflection: Ctor }> } };
    this.client = new pkg.grpc.reflection[version].ServerReflection(`unix://${socketPath}`, credentials.createInsecure()) as ReflectionClient['client'];
  }

  private ask(request: object): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const stream = this.client.ServerReflectionInfo();
      stream.on('data', (response: Record<string, unknown>) => {
        resolve(response);
        stream.end();
      });
      stream.on('error', reject);
      stream.write(request);
    });
  }

  async listServices(): Promise<string[]> {
    const response = await this.ask({ list_services: '' });
    return (response.list_services_response as { service: { name: string }[] }).service.map((s) => s.name);
  }

  /** The files that define `symbol`, decoded. */
  async fileContainingSymbol(symbol: string) {
    const response = await this.ask({ file_containing_symbol: symbol });
    if (response.error_response) throw new Error(JSON.stringify(response.error_response));
    return (response.file_descriptor_response as { file_descriptor_proto: Buffer[] }).file_descriptor_proto.map((b) => descriptor.FileDescriptorProto.decode(b));
  }

  close(): void {
    this.client.close();
  }
}

type HealthClient = Client & {
  Check(request: { service: string }, callback: (error: ServiceError | null, response: { status: string }) => void): void;
  Watch(request: { service: string }): NodeJS.ReadableStream;
  List(request: object, callback: (error: ServiceError | null, response: { statuses: Record<string, { status: string }> }) => void): void;
};

/** A grpc.health.v1 client over the agent's unix socket. */
export class HealthCheckClient {
  private readonly client: HealthClient;

  constructor(socketPath: string) {
    const pkg = load(healthProtoPath) as unknown as { grpc: { health: { v1: { Health: Ctor } } } };
    this.client = new pkg.grpc.health.v1.Health(`unix://${socketPath}`, credentials.createInsecure()) as HealthClient;
  }

  check(service = ''): Promise<string> {
    return new Promise((resolve, reject) => this.client.Check({ service }, (error, response) => (error ? reject(error) : resolve(response.status))));
  }

  /** Every service's status, by name. */
  list(): Promise<Record<string, string>> {
    return new Promise((resolve, reject) =>
      this.client.List({}, (error, response) => (error ? reject(error) : resolve(Object.fromEntries(Object.entries(response.statuses).map(([name, s]) => [name, s.status]))))),
    );
  }

  /** The Watch stream of `service`, as it is. */
  watch(service = ''): NodeJS.ReadableStream & { cancel(): void } {
    return this.client.Watch({ service }) as NodeJS.ReadableStream & { cancel(): void };
  }

  /** Resolves when the Watch stream reports `status` (the stream's first message included). */
  waitFor(status: string, service = '', timeoutMs = 30_000): Promise<void> {
    const stream = this.client.Watch({ service });
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        (stream as unknown as { cancel(): void }).cancel();
        reject(new Error(`health did not become ${status} within ${timeoutMs} ms`));
      }, timeoutMs);
      stream.on('data', (response: { status: string }) => {
        if (response.status !== status) return;
        clearTimeout(timer);
        (stream as unknown as { cancel(): void }).cancel();
        resolve();
      });
      stream.on('error', () => undefined);
    });
  }

  close(): void {
    this.client.close();
  }
}
