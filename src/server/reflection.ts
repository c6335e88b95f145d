import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from '@grpc/grpc-js';
import { loadFileDescriptorSetFromBuffer, loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { PACKAGE_ROOT } from '../package-root.js';

/** The descriptor set `buf build` writes next to the generated code (see package.json). */
function descriptorSetPath(): string {
  const path = join(PACKAGE_ROOT ?? '.', 'src', 'gen', 'berth.binpb');
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run generate\``);
  return path;
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
