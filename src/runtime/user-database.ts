import { RuntimeError } from './errors.js';

/** A user as a process runs as: numbers, as the OCI spec and the kernel want them. */
export interface NumericUser {
  uid: number;
  gid: number;
}

/** The uid and gid of a user entry of /etc/passwd, by name or number. */
function lookup(file: string | undefined, key: string, idField: number): { id: number; gid?: number } | undefined {
  for (const line of (file ?? '').split('\n')) {
    const fields = line.split(':');
    if (fields.length < 4) continue;
    if (fields[0] === key || fields[idField] === key) return { id: Number(fields[idField]), gid: idField === 2 ? Number(fields[3]) : undefined };
  }
  return undefined;
}

/**
 * Resolves "user", "user:group", "uid" or "uid:gid" (the image's User or the definition's user)
 * into numbers. Numbers go straight in; names are looked up in the image's /etc/passwd and
 * /etc/group, read through `read` only when needed.
 */
export async function resolveUser(user: string | undefined, read: () => Promise<{ passwd?: string; group?: string }>): Promise<NumericUser> {
  if (!user) return { uid: 0, gid: 0 };
  const [name, group] = user.split(':') as [string, string | undefined];
  const numeric = (s: string) => /^\d+$/.test(s);
  if (numeric(name) && (group === undefined || numeric(group))) return { uid: Number(name), gid: group === undefined ? 0 : Number(group) };
  const files = await read();
  const entry = lookup(files.passwd, name, 2);
  if (!entry && !numeric(name)) throw new RuntimeError('invalid', `resolve user "${user}"`, `no user "${name}" in the image's /etc/passwd`);
  const uid = entry?.id ?? Number(name);
  let gid = entry?.gid ?? 0;
  if (group !== undefined) {
    const g = numeric(group) ? { id: Number(group) } : lookup(files.group, group, 2);
    if (!g) throw new RuntimeError('invalid', `resolve user "${user}"`, `no group "${group}" in the image's /etc/group`);
    gid = g.id;
  }
  return { uid, gid };
}
