import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { requireBinary } from './processes.js';

/** Busybox applets linked into every test image. */
const APPLETS = [
  'head',
  'tr',
  'dd',
  'seq',
  'sh',
  'sleep',
  'echo',
  'cat',
  'true',
  'false',
  'nc',
  'httpd',
  'env',
  'ls',
  'wget',
  'kill',
  'trap',
  'id',
  'date',
  'touch',
  'test',
  'ps',
  'hostname',
  'grep',
  'df',
  'usleep',
  'wc',
];

export interface ImageConfig {
  /** Adds a file naming the image, so its layer shares nothing with the other test images. */
  uniqueLayer?: boolean;
  /** Adds a file with this text: images pushed with the same marker share a layer no other image has. */
  layerMarker?: string;
  /** Pushes a manifest list (another platform first, then this host's) under the tag. */
  multiPlatform?: boolean;
  cmd?: string[];
  entrypoint?: string[];
  /** The image's STOPSIGNAL, e.g. "SIGUSR1". */
  stopSignal?: string;
  /** Paths the image declares as VOLUMEs. */
  volumes?: string[];
  env?: string[];
  workingDir?: string;
  /** Makes /etc/passwd a symbolic link to this target (a hostile image); implies a layer of its own. */
  passwdLink?: string;
}

export interface Registry {
  address: string;
  username: string;
  password: string;
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function layerTar(marker?: string, passwdLink?: string): Promise<Buffer> {
  const busybox = readFileSync(requireBinary('/bin/busybox', 'busybox-static'));
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  const mtime = new Date(0);
  for (const dir of ['bin/', 'tmp/', 'etc/', 'www/']) pack.entry({ name: dir, type: 'directory', mode: dir === 'tmp/' ? 0o1777 : 0o755, mtime });
  pack.entry({ name: 'bin/busybox', mode: 0o755, mtime }, busybox);
  for (const applet of APPLETS) pack.entry({ name: `bin/${applet}`, type: 'symlink', linkname: 'busybox', mode: 0o777, mtime });
  if (passwdLink) pack.entry({ name: 'etc/passwd', type: 'symlink', linkname: passwdLink, mode: 0o777, mtime });
  else pack.entry({ name: 'etc/passwd', mode: 0o644, mtime }, 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n');
  pack.entry({ name: 'etc/group', mode: 0o644, mtime }, 'root:x:0:\nnobody:x:65534:\n');
  pack.entry({ name: 'www/index.html', mode: 0o644, mtime }, 'hello from berth\n');
  if (marker) pack.entry({ name: 'etc/berth-test-image', mode: 0o644, mtime }, `${marker}\n`);
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

let cachedLayer: Promise<{ tar: Buffer; gz: Buffer }> | undefined;
function layer() {
  cachedLayer ??= layerTar().then((tar) => ({ tar, gz: gzipSync(tar) }));
  return cachedLayer;
}

function architecture(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

/**
 * Builds a one-layer image from the host's static busybox and pushes it to the registry over the
 * distribution HTTP API, with basic auth. Returns the pullable reference. With `multiPlatform`, the
 * tag names a manifest list of two images: one for another architecture first, whose
 * /etc/berth-test-image says "other-platform", then this host's, which says "host-platform".
 */
export async function pushBusyboxImage(registry: Registry, repository: string, tag: string, config: ImageConfig = {}): Promise<string> {
  const authorization = `Basic ${Buffer.from(`${registry.username}:${registry.password}`).toString('base64')}`;
  const base = `http://${registry.address}/v2/${repository}`;
  const pushBlob = async (data: Buffer) => {
    const digest = sha256(data);
    const start = await fetch(`${base}/blobs/uploads/`, { method: 'POST', headers: { authorization } });
    if (start.status !== 202) throw new Error(`blob upload start: HTTP ${start.status}`);
    const location = new URL(start.headers.get('location') ?? '', `http://${registry.address}`);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, {
      method: 'PUT',
      headers: { authorization, 'content-type': 'application/octet-stream' },
      body: new Uint8Array(data),
    });
    if (put.status !== 201) throw new Error(`blob upload: HTTP ${put.status}`);
    return digest;
  };
  const putManifest = async (reference: string, mediaType: string, body: string) => {
    const put = await fetch(`${base}/manifests/${reference}`, { method: 'PUT', headers: { authorization, 'content-type': mediaType }, body });
    if (put.status !== 201) throw new Error(`manifest upload: HTTP ${put.status} ${await put.text()}`);
  };
  /** Pushes the layer and config of one image; returns its manifest. */
  const image = async (marker: string | undefined, arch: string) => {
    const { tar, gz } = marker ? await layerTar(marker, config.passwdLink).then((t) => ({ tar: t, gz: gzipSync(t) })) : await layer();
    const imageConfig = Buffer.from(
      JSON.stringify({
        architecture: arch,
        os: 'linux',
        config: {
          Env: config.env ?? ['PATH=/bin'],
          Cmd: config.cmd ?? ['sh'],
          Entrypoint: config.entrypoint,
          ...(config.stopSignal ? { StopSignal: config.stopSignal } : {}),
          ...(config.volumes ? { Volumes: Object.fromEntries(config.volumes.map((v) => [v, {}])) } : {}),
          WorkingDir: config.workingDir ?? '/',
        },
        rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
      }),
    );
    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: imageConfig.length, digest: await pushBlob(imageConfig) },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: gz.length, digest: await pushBlob(gz) }],
    };
    return { mediaType: manifest.mediaType, body: JSON.stringify(manifest) };
  };
  if (!config.multiPlatform) {
    const single = await image(config.layerMarker ?? (config.uniqueLayer || config.passwdLink ? `${repository}:${tag}` : undefined), architecture());
    await putManifest(tag, single.mediaType, single.body);
    return `${registry.address}/${repository}:${tag}`;
  }
  const other = architecture() === 'amd64' ? 's390x' : 'amd64';
  const entries = [];
  for (const [marker, arch] of [
    ['other-platform', other],
    ['host-platform', architecture()],
  ] as const) {
    const manifest = await image(marker, arch);
    const digest = sha256(Buffer.from(manifest.body));
    await putManifest(digest, manifest.mediaType, manifest.body);
    entries.push({ mediaType: manifest.mediaType, size: Buffer.byteLength(manifest.body), digest, platform: { os: 'linux', architecture: arch } });
  }
  const list = { schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json', manifests: entries };
  await putManifest(tag, list.mediaType, JSON.stringify(list));
  return `${registry.address}/${repository}:${tag}`;
}

/** Four images (distinct configs) with one layer in common that no other test image has. */
export async function sharedLayerImages(registry: Registry): Promise<string[]> {
  const images: string[] = [];
  for (let i = 0; i < 4; i++) images.push(await pushBusyboxImage(registry, `berth-test/shared-${i}`, '1', { layerMarker: 'shared layer', env: ['PATH=/bin', `IMAGE=${i}`] }));
  return images;
}
