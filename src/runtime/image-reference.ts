/** The registry host of an image reference, as Docker resolves it ("docker.io" when none). */
export function registryHost(reference: string): string {
  const slash = reference.indexOf('/');
  if (slash < 0) return 'docker.io';
  const first = reference.slice(0, slash);
  if (first.includes('.') || first.includes(':') || first === 'localhost') return first;
  return 'docker.io';
}

/** Adds the ":latest" tag when a reference has neither tag nor digest. */
export function withDefaultTag(reference: string): string {
  if (reference.includes('@')) return reference;
  const lastSlash = reference.lastIndexOf('/');
  const lastColon = reference.lastIndexOf(':');
  return lastColon > lastSlash ? reference : `${reference}:latest`;
}
