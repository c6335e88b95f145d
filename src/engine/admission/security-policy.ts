import { PermissionDeniedError, type PermissionViolation } from '../errors.js';
import type { TaskDefinition } from '../model/task-definition.js';

/** What the agent's config lets a task ask for; everything is refused by default. */
export interface SecuritySettings {
  allowPrivileged: boolean;
  allowHostPathMounts: boolean;
  allowHostNetwork: boolean;
  allowDevices: boolean;
  allowUnconfined: boolean;
  allowHostPid: boolean;
  allowHostIpc: boolean;
}

/**
 * Refuses a task that asks for what the config does not allow, naming each field and the setting
 * that would allow it. Checked when a task is admitted, after its definition is valid.
 */
export function checkTaskAllowed(task: TaskDefinition, settings: SecuritySettings): void {
  const violations: PermissionViolation[] = [];
  if (task.networkMode === 'host' && !settings.allowHostNetwork) {
    violations.push({ field: 'task.network_mode', setting: 'security.allowHostNetwork', description: "the host's network namespace is not allowed" });
  }
  if (task.pidMode === 'host' && !settings.allowHostPid) violations.push({ field: 'task.pid_mode', setting: 'security.allowHostPid', description: "the host's process namespace is not allowed" });
  if (task.ipcMode === 'host' && !settings.allowHostIpc) violations.push({ field: 'task.ipc_mode', setting: 'security.allowHostIpc', description: "the host's IPC namespace is not allowed" });
  task.containers.forEach((c, i) => {
    if (c.privileged && !settings.allowPrivileged) {
      violations.push({ field: `task.containers[${i}].privileged`, setting: 'security.allowPrivileged', description: 'privileged containers are not allowed' });
    }
    (c.linuxParameters?.devices ?? []).forEach((d, j) => {
      if (!settings.allowDevices) {
        violations.push({ field: `task.containers[${i}].linux_parameters.devices[${j}]`, setting: 'security.allowDevices', description: `the host device "${d.hostPath}" is not allowed` });
      }
    });
    const security = c.securityOptions;
    if (security && (security.seccompUnconfined || security.apparmorProfile === 'unconfined') && !settings.allowUnconfined) {
      violations.push({
        field: `task.containers[${i}].docker_security_options`,
        setting: 'security.allowUnconfined',
        description: 'containers without seccomp or AppArmor confinement are not allowed',
      });
    }
    (c.mountPoints ?? []).forEach((m, j) => {
      if (m.hostPath !== '' && !settings.allowHostPathMounts) {
        violations.push({ field: `task.containers[${i}].mount_points[${j}]`, setting: 'security.allowHostPathMounts', description: `mounting the host path "${m.hostPath}" is not allowed` });
      }
    });
  });
  (task.volumes ?? []).forEach((volume, i) => {
    if (volume.hostPath && !settings.allowHostPathMounts) {
      violations.push({ field: `task.volumes[${i}].host.source_path`, setting: 'security.allowHostPathMounts', description: `mounting the host path "${volume.hostPath}" is not allowed` });
    }
  });
  if (violations.length > 0) throw new PermissionDeniedError(violations);
}
