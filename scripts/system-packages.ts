/**
 * The Debian packages that the tests and the demo need, by the file each provides. When run as
 * root on Debian/Ubuntu, missing ones are installed with apt-get; otherwise the exact command to
 * run is printed and the process fails (a missing daemon is never silently skipped).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export const BASE_PACKAGES: [file: string, pkg: string][] = [
  ['/bin/busybox', 'busybox-static'],
  ['/usr/bin/docker-registry', 'docker-registry'],
  ['/usr/bin/htpasswd', 'apache2-utils'],
];

export const DOCKER_PACKAGES: [file: string, pkg: string][] = [
  ['/usr/sbin/dockerd', 'docker.io'],
  ['/usr/sbin/runc', 'runc'],
  ['/usr/sbin/ip', 'iproute2'],
  // libexec/berth-launcher, which starts the plugins, ip and iptables for the agent.
  ['/usr/bin/python3', 'python3'],
];

export function ensurePackages(needed: [string, string][], log: (text: string) => void = console.log): void {
  const missing = [...new Set(needed.filter(([file]) => !existsSync(file)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  const debian = existsSync('/etc/debian_version');
  if (process.getuid?.() === 0 && debian) {
    log(`installing ${missing.join(', ')} with apt-get`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
    return;
  }
  console.error(`berth needs these Debian/Ubuntu packages: ${missing.join(' ')}`);
  console.error(`install them as root:  apt-get install -y ${missing.join(' ')}`);
  if (!debian) console.error('(elsewhere: a static busybox, dockerd and containerd with runc, the Docker registry "distribution", htpasswd, iproute2, iptables, the CNI reference plugins)');
  process.exit(1);
}

export const CONTAINERD_PACKAGES: [file: string, pkg: string][] = [
  ['/usr/bin/containerd', 'containerd'],
  ['/usr/bin/containerd-shim-runc-v2', 'containerd'],
  ['/usr/sbin/runc', 'runc'],
  // The init of containers with init_process_enabled (Docker's docker-init is the same binary).
  ['/usr/bin/tini-static', 'tini'],
  // libexec/berth-log-writer, which stamps containers' log lines, is a Perl script (Time::HiRes).
  ['/usr/lib/x86_64-linux-gnu/perl/5.36/Time/HiRes.pm', 'perl'],
  // …and sends to syslog over tcp+tls with IO::Socket::SSL.
  ['/usr/share/perl5/IO/Socket/SSL.pm', 'libio-socket-ssl-perl'],
];

/** Port forwarding: berth's relay (Perl, like the log writer) runs in a task's namespace through nsenter. */
export const SESSION_PACKAGES: [file: string, pkg: string][] = [
  ['/usr/bin/nsenter', 'util-linux'],
  ['/usr/bin/perl', 'perl'],
];

/** The CNI plugins and what they run, for task networking (and bridge mode on containerd). */
export const CNI_PACKAGES: [file: string, pkg: string][] = [
  ['/usr/lib/cni/bridge', 'containernetworking-plugins'],
  ['/usr/lib/cni/portmap', 'containernetworking-plugins'],
  ['/usr/sbin/iptables', 'iptables'],
  ['/usr/sbin/ip', 'iproute2'],
];

/** openssl makes the certificates of the TLS tests; rsyslog receives the syslog log driver's messages. */
export const TEST_PACKAGES: [file: string, pkg: string][] = [
  ['/usr/bin/openssl', 'openssl'],
  // The session tests drive berthctl on a pseudo-terminal (script), resize it (stty) and find its process (pgrep).
  ['/usr/bin/script', 'bsdutils'],
  ['/usr/bin/pgrep', 'procps'],
  ['/usr/sbin/rsyslogd', 'rsyslog'],
  ['/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so', 'rsyslog-gnutls'],
];

/**
 * Go, to build the Go client (gen/go), its example and the Go test programs offline: in GOPATH
 * mode against Debian's grpc 1.33, protobuf 1.28 and genproto. protobuf's v1 API must be the 1.5
 * package (with 1.3, grpc-go panics on the first call); protoc-gen-go and protoc-gen-go-grpc are
 * the plugins `buf generate --template buf.gen.go.yaml` runs.
 */
export const GO_PACKAGES: [file: string, pkg: string][] = [
  ['/usr/bin/go', 'golang-go'],
  ['/usr/share/gocode/src/google.golang.org/grpc/version.go', 'golang-google-grpc-dev'],
  ['/usr/share/gocode/src/google.golang.org/protobuf/proto/proto.go', 'golang-google-protobuf-dev'],
  ['/usr/share/gocode/src/google.golang.org/genproto/googleapis/rpc/errdetails/error_details.pb.go', 'golang-google-genproto-dev'],
  ['/usr/share/gocode/src/github.com/golang/protobuf/proto/registry.go', 'golang-github-golang-protobuf-1-5-dev'],
  ['/usr/bin/protoc-gen-go', 'protoc-gen-go'],
  ['/usr/bin/protoc-gen-go-grpc', 'protoc-gen-go-grpc'],
];

/** etcd 3.4 (the fleet's store) and etcdctl, for the cluster tests and for trying a fleet by hand. */
export const CLUSTER_PACKAGES: [file: string, pkg: string][] = [
  ['/usr/bin/etcd', 'etcd-server'],
  ['/usr/bin/etcdctl', 'etcd-client'],
];

// `tsx scripts/system-packages.ts`: what the test suite needs (run by `npm test` first).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  ensurePackages([...BASE_PACKAGES, ...DOCKER_PACKAGES, ...CONTAINERD_PACKAGES, ...CNI_PACKAGES, ...SESSION_PACKAGES, ...TEST_PACKAGES, ...GO_PACKAGES, ...CLUSTER_PACKAGES]);
}
