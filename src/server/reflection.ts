import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { status, type handleBidiStreamingCall, type MethodDefinition, type Server, type ServerDuplexStream, type ServiceDefinition } from '@grpc/grpc-js';
import { PACKAGE_ROOT } from '../package-root.js';

/** The descriptor set `buf build` writes next to the generated code (see package.json). */
function descriptorSetPath(): string {
  const path = join(PACKAGE_ROOT ?? '.', 'src', 'gen', 'berth.binpb');
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run generate\``);
  return path;
}

/** The reflection method of both published versions of the protocol (the same messages). */
const REFLECTION_METHOD_PATHS = ['/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo'];

type Untyped = MethodDefinition<unknown, unknown>;
/** Each reflection method's definition and handler, by path. */
type ReflectionMethods = Map<string, { definition: Untyped; handler: handleBidiStreamingCall<unknown, unknown> }>;

/**
 * Serves gRPC server reflection (v1 and v1alpha) for berth's API and grpc.health.v1, so that
 * `grpcurl -plaintext -unix <socket> list` and `describe` work without .proto files.
 *
 * What reflection answers from is built on its first call, not at start-up: decoding the
 * descriptors took a quarter of the agent's start-up, for a service only tools call.
 */
export function addReflection(server: Server): void {
  const descriptorSet = descriptorSetPath();
  let built: Promise<ReflectionMethods> | undefined;
  const methods = () => (built ??= buildReflection(descriptorSet));
  for (const path of REFLECTION_METHOD_PATHS) {
    // Messages are (de)serialized only inside a call, once the handler below has built the methods.
    let method: Untyped | undefined;
    const definition: ServiceDefinition = {
      ServerReflectionInfo: {
        path,
        requestStream: true,
        responseStream: true,
        requestSerialize: (value) => method!.requestSerialize(value),
        requestDeserialize: (bytes) => method!.requestDeserialize(bytes),
        responseSerialize: (value) => method!.responseSerialize(value),
        responseDeserialize: (bytes) => method!.responseDeserialize(bytes),
      },
    };
    const handler = (stream: ServerDuplexStream<unknown, unknown>) => {
      // Requests wait in the stream's buffer until a data listener is attached.
      stream.pause();
      methods().then(
        (ready) => {
          const found = ready.get(path)!;
          method = found.definition;
          found.handler(stream);
          stream.resume();
        },
        (error: unknown) => stream.emit('error', { code: status.INTERNAL, details: `server reflection is unavailable: ${String(error)}` }),
      );
    };
    server.addService(definition, { ServerReflectionInfo: handler });
  }
}

/**
 * A CommonJS module loaded with import(): its exports are `default` in the bundle's chunks (and in
 * Node's own import() too), the module's named exports only under Node.
 */
async function commonJs<T extends object>(loading: Promise<T>): Promise<T> {
  const loaded = (await loading) as T & { default?: T };
  return loaded.default ?? loaded;
}

/** Loads the descriptors (berth's and grpc.health.v1's) and the reflection service over them. */
async function buildReflection(descriptorSet: string): Promise<ReflectionMethods> {
  const [{ loadFileDescriptorSetFromBuffer, loadSync }, { ReflectionService }, { protoPath: healthProtoPath }] = await Promise.all([
    commonJs(import('@grpc/proto-loader')),
    commonJs(import('@grpc/reflection')),
    commonJs(import('grpc-health-check')),
  ]);
  const options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
  const berth = loadFileDescriptorSetFromBuffer(readFileSync(descriptorSet), options);
  const health = loadSync(healthProtoPath, options);
  const methods: ReflectionMethods = new Map();
  new ReflectionService({ ...berth, ...health }).addToServer({
    addService: (service, implementation) => {
      for (const [name, definition] of Object.entries(service)) {
        methods.set(definition.path, { definition: definition as Untyped, handler: implementation[name] as handleBidiStreamingCall<unknown, unknown> });
      }
    },
  });
  return methods;
}
