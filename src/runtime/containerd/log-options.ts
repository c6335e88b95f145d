import type { ContainerLogConfiguration } from '../types.js';

/** What berth's log writer does besides keeping its local copy, as query arguments of its binary:// URI. */
export interface WriterLogOptions {
  /** Rotation of the local copy (json-file and local), replacing the agent's logs.maxFileBytes and maxFiles. */
  rotation?: { maxFileBytes: number; maxFiles: number };
  /** Every line also goes to this syslog destination, as an RFC 5424 message. */
  syslog?: { address: string; facility: number; tag?: string; tls?: { caCert?: string; cert?: string; key?: string; skipVerify?: boolean } };
  /** Every line also goes to this fluentd (Forward protocol), as Docker's fluentd driver sends it. */
  fluentd?: { address: string; tag?: string; bufferLimitBytes?: number; subSecondPrecision?: boolean };
}

/** The log drivers berth's log writer takes on containerd, and the options of each. */
const OPTIONS: Record<string, readonly string[]> = {
  'json-file': ['max-size', 'max-file'],
  local: ['max-size', 'max-file'],
  fluentd: ['fluentd-address', 'tag', 'fluentd-async', 'fluentd-buffer-limit', 'fluentd-sub-second-precision'],
  syslog: ['syslog-address', 'syslog-facility', 'tag', 'syslog-format', 'syslog-tls-ca-cert', 'syslog-tls-cert', 'syslog-tls-key', 'syslog-tls-skip-verify'],
};
const FACILITIES = ['kern', 'user', 'mail', 'daemon', 'auth', 'syslog', 'lpr', 'news', 'uucp', 'cron', 'authpriv', 'ftp'];
const ADDRESS = /^(?:(udp|tcp|tcp\+tls):\/\/([^/\s]+):(\d{1,5})|(unix|unixgram):\/\/(\/[^\0]{1,200}))$/;
const TLS_OPTIONS = ['syslog-tls-ca-cert', 'syslog-tls-cert', 'syslog-tls-key', 'syslog-tls-skip-verify'];
const SIZE = /^(\d{1,12})([kmg]?)$/i;
const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** A syslog facility by name (local0 … local7 too) or number (0 … 23). */
function facilityOf(value: string): number | undefined {
  if (/^\d{1,2}$/.test(value) && Number(value) <= 23) return Number(value);
  const local = /^local([0-7])$/.exec(value);
  if (local) return 16 + Number(local[1]);
  const index = FACILITIES.indexOf(value);
  return index >= 0 ? index : undefined;
}

/**
 * The writer's options for a log configuration, or the option (or the driver) it cannot honour
 * and why. Values of secret options may be placeholders: only names are judged for them.
 */
export function writerLogOptions(config: ContainerLogConfiguration): WriterLogOptions | { option?: string; problem: string } {
  const allowed = OPTIONS[config.driver];
  if (!allowed) return { problem: `containerd takes the log drivers ${Object.keys(OPTIONS).join(', ')}: berth's log writer has no ${config.driver} driver` };
  const unknown = Object.keys(config.options).find((name) => !allowed.includes(name));
  if (unknown) return { option: unknown, problem: `the ${config.driver} driver on containerd takes the options ${allowed.join(', ')}` };
  const options = config.options;
  if (config.driver === 'fluentd') return fluentdOptions(options);
  if (config.driver !== 'syslog') {
    if (options['max-size'] === undefined) return options['max-file'] === undefined ? {} : { option: 'max-file', problem: 'needs max-size' };
    const size = SIZE.exec(options['max-size']);
    if (!size || Number(size[1]) === 0) return { option: 'max-size', problem: 'must be a size such as "10m" (k, m or g)' };
    const maxFiles = options['max-file'] === undefined ? 1 : Number(options['max-file']);
    if (!Number.isInteger(maxFiles) || maxFiles < 1 || maxFiles > 1000) return { option: 'max-file', problem: 'must be a count from 1 to 1000' };
    return { rotation: { maxFileBytes: Number(size[1]) * UNITS[size[2]!.toLowerCase()]!, maxFiles } };
  }
  const address = options['syslog-address'];
  if (address === undefined) return { option: 'syslog-address', problem: 'is needed on containerd (udp://host:port, tcp://host:port, tcp+tls://host:port, unix:///path or unixgram:///path)' };
  const match = ADDRESS.exec(address);
  if (!match || (match[3] !== undefined && (Number(match[3]) < 1 || Number(match[3]) > 65535))) {
    return { option: 'syslog-address', problem: 'must be udp://host:port, tcp://host:port, tcp+tls://host:port, unix:///path or unixgram:///path' };
  }
  const tlsOption = TLS_OPTIONS.find((name) => options[name] !== undefined);
  if (tlsOption && match[1] !== 'tcp+tls') return { option: tlsOption, problem: 'needs a tcp+tls:// syslog-address' };
  for (const name of TLS_OPTIONS.slice(0, 3)) {
    const path = options[name];
    if (path !== undefined && (!path.startsWith('/') || path.length > 1024)) return { option: name, problem: 'must be an absolute path on the host' };
  }
  const skipVerify = options['syslog-tls-skip-verify'];
  if (skipVerify !== undefined && skipVerify !== 'true' && skipVerify !== 'false') return { option: 'syslog-tls-skip-verify', problem: 'must be true or false' };
  const facility = facilityOf(options['syslog-facility'] ?? 'daemon');
  if (facility === undefined) return { option: 'syslog-facility', problem: `must be one of ${FACILITIES.join(', ')}, local0 … local7 or 0 … 23` };
  const format = options['syslog-format'] ?? 'rfc5424';
  if (format !== 'rfc5424') return { option: 'syslog-format', problem: "berth's log writer writes rfc5424 only" };
  const tag = options.tag;
  if (tag !== undefined && (tag.includes('{{') || !/^[\x21-\x7e]{1,48}$/.test(tag))) return { option: 'tag', problem: 'must be 1 to 48 printable characters without spaces (no templates)' };
  const tls =
    match[1] === 'tcp+tls'
      ? {
          ...(options['syslog-tls-ca-cert'] ? { caCert: options['syslog-tls-ca-cert'] } : {}),
          ...(options['syslog-tls-cert'] ? { cert: options['syslog-tls-cert'] } : {}),
          ...(options['syslog-tls-key'] ? { key: options['syslog-tls-key'] } : {}),
          ...(skipVerify === 'true' ? { skipVerify: true } : {}),
        }
      : undefined;
  return { syslog: { address, facility, ...(tag ? { tag } : {}), ...(tls ? { tls } : {}) } };
}

const MAX_FLUENTD_BUFFER = 64 * 1024 * 1024;

/**
 * fluentd: fluentd-address tcp://host:port, host:port or unix:///path (default 127.0.0.1:24224, as
 * Docker); the writer never holds the container up, whatever fluentd-async says.
 */
function fluentdOptions(options: Record<string, string>): WriterLogOptions | { option?: string; problem: string } {
  const raw = options['fluentd-address'] ?? 'tcp://127.0.0.1:24224';
  const address = /^[a-z+]+:\/\//.test(raw) ? raw : `tcp://${raw}`;
  const match = /^(?:tcp:\/\/([^/\s]+):(\d{1,5})|unix:\/\/(\/[^\0]{1,200}))$/.exec(address);
  if (!match || (match[2] !== undefined && (Number(match[2]) < 1 || Number(match[2]) > 65535))) return { option: 'fluentd-address', problem: 'must be tcp://host:port, host:port or unix:///path' };
  for (const name of ['fluentd-async', 'fluentd-sub-second-precision']) {
    if (options[name] !== undefined && options[name] !== 'true' && options[name] !== 'false') return { option: name, problem: 'must be true or false' };
  }
  const limit = options['fluentd-buffer-limit'];
  if (limit !== undefined && (!/^\d{1,9}$/.test(limit) || Number(limit) < 1024 || Number(limit) > MAX_FLUENTD_BUFFER)) {
    return { option: 'fluentd-buffer-limit', problem: `must be a number of bytes from 1024 to ${MAX_FLUENTD_BUFFER}` };
  }
  const tag = options.tag;
  if (tag !== undefined && (tag.includes('{{') || !/^[\x21-\x7e]{1,128}$/.test(tag))) return { option: 'tag', problem: 'must be 1 to 128 printable characters without spaces (no templates)' };
  return {
    fluentd: {
      address,
      ...(tag ? { tag } : {}),
      ...(limit ? { bufferLimitBytes: Number(limit) } : {}),
      ...(options['fluentd-sub-second-precision'] === 'true' ? { subSecondPrecision: true } : {}),
    },
  };
}
