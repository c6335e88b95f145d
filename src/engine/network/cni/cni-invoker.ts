import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { withSbinPath, type LaunchResult, type ProcessLauncher } from '../../process-launcher.js';
import { Semaphore } from '../../semaphore.js';
import { CniError, parsePluginError } from './cni-error.js';
import { supportsCheck, type NetworkConfigList, type PluginConfig } from './network-config.js';

/** What the runtime tells the plugins about one attachment (the spec's runtime parameters). */
export interface CniRuntimeConf {
  /** CNI_CONTAINERID: unique per attachment; plugins key their state (e.g. IP allocations) by it. */
  containerId: string;
  /** CNI_NETNS: the namespace's path; may be empty for DEL when the namespace is gone. */
  netns: string;
  /** CNI_IFNAME: the interface to create inside the namespace. */
  ifName: string;
  /** CNI_ARGS, as key/value pairs. */
  args: Record<string, string>;
  /** Runtime values (portMappings, ips, …), given only to plugins that declare the capability. */
  capabilityArgs: Record<string, unknown>;
}

export interface CniInvokerOptions {
  /** Directories searched for plugin executables, in order (CNI_PATH). */
  pluginDirs: string[];
  /** Longest a single plugin run may take; it is killed after that. */
  timeoutMs: number;
  /** Most plugin programs run at once; the others wait in arrival order. 0 or absent: no limit. */
  maxParallel?: number;
  /** Runs the plugins. */
  launcher: ProcessLauncher;
}

/** Output a plugin may print before the rest is dropped. */
const MAX_OUTPUT = 1024 * 1024;

/**
 * Runs CNI plugins, the runtime side of the CNI spec 1.0: ADD runs a list's plugins in order,
 * each given the previous one's result as prevResult; DEL runs them in reverse with the cached ADD
 * result; CHECK runs them in order with it; VERSION asks each plugin which versions it speaks.
 * The invoker keeps no state of its own: the caller stores the ADD result for DEL and CHECK.
 */
export class CniInvoker {
  private readonly paths = new Map<string, Promise<string>>();
  private readonly versions = new Map<string, Promise<void>>();
  private readonly slots: Semaphore | undefined;

  constructor(private readonly options: CniInvokerOptions) {
    if (options.maxParallel) this.slots = new Semaphore(options.maxParallel);
  }

  /**
   * Checks once per plugin and version that every plugin of the list is present and speaks the
   * list's cniVersion. A failed check is tried again next time (the plugin may be installed since).
   */
  async checkVersions(list: NetworkConfigList): Promise<void> {
    await Promise.all(
      list.plugins.map((plugin) => {
        const key = `${plugin.type}\0${list.cniVersion}`;
        let check = this.versions.get(key);
        if (!check) {
          check = this.checkVersion(plugin, list.cniVersion);
          check.catch(() => this.versions.delete(key));
          this.versions.set(key, check);
        }
        return check;
      }),
    );
  }

  private async checkVersion(plugin: PluginConfig, cniVersion: string): Promise<void> {
    const conf: CniRuntimeConf = { containerId: '', netns: '', ifName: '', args: {}, capabilityArgs: {} };
    const stdout = await this.exec(plugin.type, 'VERSION', conf, JSON.stringify({ cniVersion }));
    let supported: unknown;
    try {
      supported = (JSON.parse(stdout) as { supportedVersions?: unknown }).supportedVersions;
    } catch {
      throw new CniError('VERSION', plugin.type, 'the plugin printed something that is not a version result');
    }
    if (!Array.isArray(supported) || !supported.includes(cniVersion)) {
      throw new CniError('VERSION', plugin.type, `the plugin does not speak CNI ${cniVersion} (it speaks ${Array.isArray(supported) ? supported.join(', ') : 'nothing it names'})`, 1);
    }
  }

  /** ADD through the whole list; returns the last plugin's result, to be cached by the caller. */
  async add(list: NetworkConfigList, conf: CniRuntimeConf): Promise<unknown> {
    await this.checkVersions(list);
    let result: unknown;
    for (const plugin of list.plugins) {
      const stdout = await this.exec(plugin.type, 'ADD', conf, this.pluginInput(list, plugin, conf, result));
      try {
        result = JSON.parse(stdout);
      } catch {
        throw new CniError('ADD', plugin.type, `the plugin printed something that is not a result: ${stdout.slice(0, 200)}`);
      }
    }
    return result;
  }

  /** CHECK through the list with the cached result; skipped for versions before 0.4.0 and when the list disables it. */
  async check(list: NetworkConfigList, conf: CniRuntimeConf, cached: unknown): Promise<void> {
    if (list.disableCheck || !supportsCheck(list.cniVersion)) return;
    for (const plugin of list.plugins) await this.exec(plugin.type, 'CHECK', conf, this.pluginInput(list, plugin, conf, cached));
  }

  /**
   * DEL through the list in reverse, with the cached result when there is one. Every plugin is run
   * even when one fails, so that one plugin's failure does not keep another from releasing what it
   * holds (an address, say). One failure is thrown as it is; several as an AggregateError.
   */
  async del(list: NetworkConfigList, conf: CniRuntimeConf, cached?: unknown): Promise<void> {
    const failures: unknown[] = [];
    for (const plugin of [...list.plugins].reverse()) {
      try {
        await this.exec(plugin.type, 'DEL', conf, this.pluginInput(list, plugin, conf, cached));
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length === 1) throw failures[0];
    if (failures.length > 1) throw new AggregateError(failures, failures.map((f) => (f as Error).message).join('; '));
  }

  /** A plugin's stdin: its own config plus the list's name and version, prevResult and runtimeConfig. */
  private pluginInput(list: NetworkConfigList, plugin: PluginConfig, conf: CniRuntimeConf, prevResult: unknown): string {
    const input: Record<string, unknown> = { ...plugin.raw, name: list.name, cniVersion: list.cniVersion };
    if (prevResult !== undefined) input.prevResult = prevResult;
    const runtimeConfig: Record<string, unknown> = {};
    for (const [capability, enabled] of Object.entries(plugin.capabilities)) {
      if (enabled && conf.capabilityArgs[capability] !== undefined) runtimeConfig[capability] = conf.capabilityArgs[capability];
    }
    if (Object.keys(runtimeConfig).length > 0) input.runtimeConfig = runtimeConfig;
    return JSON.stringify(input);
  }

  private findPlugin(type: string): Promise<string> {
    let found = this.paths.get(type);
    if (!found) {
      found = (async () => {
        for (const dir of this.options.pluginDirs) {
          const path = join(dir, type);
          if (
            await access(path, constants.X_OK).then(
              () => true,
              () => false,
            )
          )
            return path;
        }
        throw new Error(`no executable "${type}" in ${this.options.pluginDirs.join(':')}`);
      })();
      found.catch(() => this.paths.delete(type));
      this.paths.set(type, found);
    }
    return found;
  }

  /** Runs one plugin; resolves with its stdout when it exits 0, throws a CniError otherwise. */
  private async exec(type: string, command: string, conf: CniRuntimeConf, stdin: string): Promise<string> {
    const path = await this.findPlugin(type).catch((error: Error) => {
      throw new CniError(command, type, error.message);
    });
    // Plugins run iptables and friends, found in sbin. Most are Go programs doing one short job,
    // for which a second P is only scheduler work: one P takes a tenth less CPU for bridge's ADD
    // and DEL (BENCHMARKS.md, Network mode `task`).
    const env = withSbinPath({
      GOMAXPROCS: '1',
      CNI_COMMAND: command,
      CNI_CONTAINERID: conf.containerId,
      CNI_NETNS: conf.netns,
      CNI_IFNAME: conf.ifName,
      CNI_ARGS: cniArgs(command, type, conf.args),
      CNI_PATH: this.options.pluginDirs.join(':'),
    });
    const release = await this.slots?.acquire();
    let run: LaunchResult;
    try {
      run = await this.options.launcher.run({ file: path, env, input: stdin, timeoutMs: this.options.timeoutMs, maxOutputBytes: MAX_OUTPUT });
    } catch (error) {
      throw new CniError(command, type, (error as Error).message);
    } finally {
      release?.();
    }
    if (run.timedOut) throw new CniError(command, type, `the plugin did not finish within ${this.options.timeoutMs} ms and was killed`);
    if (run.code === 0) return run.stdout;
    const parsed = parsePluginError(run.stdout);
    if (parsed) throw new CniError(command, type, parsed.msg, parsed.code, parsed.details);
    const why = run.signal ? `was killed by ${run.signal}` : `exited with code ${run.code}`;
    const detail = (run.stderr.trim() || run.stdout.trim()).slice(-500);
    throw new CniError(command, type, `the plugin ${why}${detail ? `: ${detail}` : ''}`);
  }
}

/**
 * CNI_ARGS ("K1=V1;K2=V2"): a key or value holding ";" or "=" (or a NUL byte) would add or change
 * arguments, e.g. choose the address a plugin gives ("IP=…"), so such a value is refused, never
 * passed on. The values berth passes are validated before; this is the last line.
 */
export function cniArgs(command: string, plugin: string, args: Record<string, string>): string {
  const unsafe = /[;=\0]/;
  for (const [key, value] of Object.entries(args)) {
    if (key === '' || unsafe.test(key) || unsafe.test(value)) throw new CniError(command, plugin, `CNI_ARGS ${JSON.stringify(key)} holds ";", "=" or a NUL byte, which would change the arguments`);
  }
  return Object.entries(args)
    .map(([k, v]) => `${k}=${v}`)
    .join(';');
}
