import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';

/** Where etcd is and how to reach it: the part of the cluster config every fleet process shares. */
export interface EtcdSettings {
  /** Client URLs (http(s)://host:port) or host:port, https when `tls` is set. */
  endpoints: string[];
  tls?: { caFile: string; certFile?: string; keyFile?: string };
}

/** Longest a unary etcd call may take: a member that stops answering never holds a caller for long. */
export const ETCD_CALL_TIMEOUT_MS = 5000;

/** The endpoints as URLs, with the scheme TLS implies when none is given. */
export function etcdUrls(settings: EtcdSettings): string[] {
  return settings.endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `${settings.tls ? 'https' : 'http'}://${e}`));
}

/**
 * A client of the etcd cluster: every unary call has a deadline (watches and keep-alives are
 * streams and have none). The certificate files are read once, here.
 */
export function connectEtcd(settings: EtcdSettings): Etcd3 {
  const { tls } = settings;
  const options: IOptions = {
    hosts: etcdUrls(settings),
    dialTimeout: ETCD_CALL_TIMEOUT_MS,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + ETCD_CALL_TIMEOUT_MS }),
  };
  if (tls) {
    options.credentials = {
      rootCertificate: readFileSync(tls.caFile),
      ...(tls.certFile && tls.keyFile ? { certChain: readFileSync(tls.certFile), privateKey: readFileSync(tls.keyFile) } : {}),
    };
  }
  return new Etcd3(options);
}
