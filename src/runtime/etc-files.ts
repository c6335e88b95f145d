/**
 * The /etc/hosts, /etc/hostname and /etc/resolv.conf that berth writes for a container where the
 * runtime writes none (every container on containerd; on Docker, those that join a pause
 * container), with the content Docker gives a container.
 */

/**
 * localhost, the container's own name (when it has one of its own), then the definition's extra
 * hosts, as Docker appends them.
 */
export function hostsFile(hostname: string | undefined, extraHosts: { hostname: string; ipAddress: string }[] = []): string {
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', ...(hostname ? [`127.0.1.1\t${hostname}`] : []), ...extraHosts.map((h) => `${h.ipAddress}\t${h.hostname}`)];
  return `${lines.join('\n')}\n`;
}

/** The name servers Docker puts in a container's resolv.conf when the host's are all on loopback. */
const FALLBACK_SERVERS = ['8.8.8.8', '8.8.4.4'];

/**
 * The host's resolv.conf with its name servers and search domains replaced by the definition's,
 * where it sets them (its other lines, such as options, are kept), as Docker builds it. A container
 * in a network namespace of its own (`ownNetwork`) cannot reach the host's loopback: as Docker
 * does, the host's servers on 127.0.0.0/8 or ::1 are left out, and Google's public ones used when
 * none is left.
 */
export function resolvConf(hostFile: string, servers: string[] = [], searchDomains: string[] = [], ownNetwork = false): string {
  const lines = hostFile.split('\n');
  const keyword = (line: string) => line.trim().split(/\s+/)[0] ?? '';
  const hostServers = lines.filter((l) => keyword(l) === 'nameserver').map((l) => l.trim().split(/\s+/)[1] ?? '');
  const reachable = ownNetwork ? hostServers.filter((s) => !isLoopback(s)) : hostServers;
  if (servers.length === 0 && searchDomains.length === 0 && reachable.length === hostServers.length) return hostFile;
  const hostSearch = lines.filter((l) => keyword(l) === 'search').flatMap((l) => l.trim().split(/\s+/).slice(1));
  const others = lines.filter((l) => !['nameserver', 'search', 'domain'].includes(keyword(l)) && l.trim() !== '' && !l.trim().startsWith('#'));
  const search = searchDomains.length > 0 ? searchDomains : hostSearch;
  const chosen = servers.length > 0 ? servers : reachable.length > 0 ? reachable : FALLBACK_SERVERS;
  const result = [...(search.length > 0 ? [`search ${search.join(' ')}`] : []), ...chosen.map((s) => `nameserver ${s}`), ...others];
  return `${result.join('\n')}\n`;
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}
