/**
 * The /etc/hosts, /etc/hostname and /etc/resolv.conf that berth writes for a container on
 * containerd (Docker writes its own), with the same content Docker gives a container.
 */

/** localhost, the container's own name, then the definition's extra hosts, as Docker appends them. */
export function hostsFile(hostname: string, extraHosts: { hostname: string; ipAddress: string }[] = []): string {
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', `127.0.1.1\t${hostname}`, ...extraHosts.map((h) => `${h.ipAddress}\t${h.hostname}`)];
  return `${lines.join('\n')}\n`;
}

/**
 * The host's resolv.conf with its name servers and search domains replaced by the definition's,
 * where it sets them (its other lines, such as options, are kept), as Docker builds it.
 */
export function resolvConf(hostFile: string, servers: string[] = [], searchDomains: string[] = []): string {
  if (servers.length === 0 && searchDomains.length === 0) return hostFile;
  const lines = hostFile.split('\n');
  const keyword = (line: string) => line.trim().split(/\s+/)[0] ?? '';
  const hostServers = lines.filter((l) => keyword(l) === 'nameserver').map((l) => l.trim().split(/\s+/)[1] ?? '');
  const hostSearch = lines.filter((l) => keyword(l) === 'search').flatMap((l) => l.trim().split(/\s+/).slice(1));
  const others = lines.filter((l) => !['nameserver', 'search', 'domain'].includes(keyword(l)) && l.trim() !== '' && !l.trim().startsWith('#'));
  const search = searchDomains.length > 0 ? searchDomains : hostSearch;
  const result = [...(search.length > 0 ? [`search ${search.join(' ')}`] : []), ...(servers.length > 0 ? servers : hostServers).map((s) => `nameserver ${s}`), ...others];
  return `${result.join('\n')}\n`;
}
