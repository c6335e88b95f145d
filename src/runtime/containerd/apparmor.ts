import { readFileSync } from 'node:fs';

/** Where the kernel tells whether AppArmor is on and which profiles are loaded. */
export interface AppArmorHost {
  /** /sys/module/apparmor/parameters/enabled */
  enabledFile: string;
  /** /sys/kernel/security/apparmor/profiles */
  profilesFile: string;
}

export const HOST_APPARMOR: AppArmorHost = {
  enabledFile: '/sys/module/apparmor/parameters/enabled',
  profilesFile: '/sys/kernel/security/apparmor/profiles',
};

/** The profile Docker loads on an AppArmor host and runs every unprivileged container under. */
export const DOCKER_DEFAULT_PROFILE = 'docker-default';

export interface AppArmorChoice {
  /** The profile unprivileged containers run under; none when unset. */
  profile?: string;
  /** Why containers run without a profile on a host that has AppArmor. */
  warning?: string;
}

/**
 * The AppArmor profile for unprivileged containers on containerd, chosen once at start. Docker runs
 * them under `docker-default`; berth does the same where that profile is loaded, or uses the one
 * named in `runtime.containerd.apparmorProfile`. berth loads no profile itself. A host without
 * AppArmor runs containers without one, as Docker does there; a profile named in the config that
 * the host cannot apply is an error, not a silent downgrade.
 */
export function chooseAppArmorProfile(configured: string, host: AppArmorHost = HOST_APPARMOR): AppArmorChoice {
  const enabled = readOrEmpty(host.enabledFile).trim() === 'Y';
  if (!enabled) {
    if (configured) throw new Error(`runtime.containerd.apparmorProfile is ${JSON.stringify(configured)}, but AppArmor is not enabled on this host`);
    return {};
  }
  const loaded = loadedProfiles(host.profilesFile);
  if (configured) {
    if (!loaded.has(configured)) throw new Error(`runtime.containerd.apparmorProfile is ${JSON.stringify(configured)}, but no profile of that name is loaded (load it with apparmor_parser)`);
    return { profile: configured };
  }
  if (loaded.has(DOCKER_DEFAULT_PROFILE)) return { profile: DOCKER_DEFAULT_PROFILE };
  return {
    warning: `AppArmor is enabled, but the "${DOCKER_DEFAULT_PROFILE}" profile is not loaded: containers run without an AppArmor profile (name one in runtime.containerd.apparmorProfile)`,
  };
}

/** Profile names from the kernel's list ("name (enforce)" per line). */
function loadedProfiles(file: string): Set<string> {
  const names = readOrEmpty(file)
    .split('\n')
    .map((line) => line.replace(/\s+\((?:enforce|complain|kill|unconfined|prompt)\)\s*$/, '').trim())
    .filter(Boolean);
  return new Set(names);
}

function readOrEmpty(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
