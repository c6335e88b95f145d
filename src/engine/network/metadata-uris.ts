/**
 * The task metadata endpoint as the engine needs it: the URI a container reaches it at. The
 * engine puts it in the container's environment (ECS_CONTAINER_METADATA_URI_V4 and
 * BERTH_CONTAINER_METADATA_URI) when the container has a way to the host.
 */
export interface TaskMetadataUris {
  /** The URI of one container's metadata, reached at `host` (an address of the host as the container sees it). */
  uriFor(taskId: string, containerName: string, host: string): string;
  /** The host's address on the runtime's own bridge (Docker's docker0), once known. */
  bridgeGateway?: string;
}

export const METADATA_URI_VARIABLES = ['ECS_CONTAINER_METADATA_URI_V4', 'BERTH_CONTAINER_METADATA_URI'] as const;

/** An address without its prefix length: "10.89.0.1/16" → "10.89.0.1". */
export function bareAddress(cidr: string): string {
  return cidr.split('/')[0]!;
}
