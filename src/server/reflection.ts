import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Server } from '@grpc/grpc-js';
import { loadFileDescriptorSetFromBuffer, loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { protoPath as healthProtoPath } from 'grpc-health-check';

/** The descriptor set `buf build` writes next to the generated code (see package.json). */
function descriptorSetPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // src/server → src/gen; dist/src/server → src/gen (the binary file is not copied by tsc).
  for (const candidate of [join(here, '..', 'gen', 'berth.binpb'), join(here, '..', '..', '..', 'src', 'gen', 'berth.binpb')]) {
    try {
      readFileSync(candidate, { flag: 'r' });
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw new Error('src/gen/berth.binpb is missing: run `npm run generate`');
}

/**
 * Serves gRPC server reflection (v1 and v1alpha) for berth's API and grpc.health.v1, so that
 * `grpcurl -plaintext -unix <socket> list` and `describe` work without .proto files.
 */
export function addReflection(server: Server): void {
  const options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
  const berth = loadFileDescriptorSetFromBuffer(readFileSync(descriptorSetPath()), options);
  const health = loadSync(healthProtoPath, options);
  new ReflectionService({ ...berth, ...health }).addToServer(server);
}
