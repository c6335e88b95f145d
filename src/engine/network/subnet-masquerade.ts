import { withSbinPath, type ProcessLauncher } from '../process-launcher.js';

/** The subnet and bridge of a task network whose outbound traffic berth masquerades. */
export interface MasqueradedNetwork {
  subnet: string;
  bridge: string;
}

/**
 * One MASQUERADE rule for a whole task network, as Docker has for each of its bridge networks:
 * traffic from the subnet that leaves the host by any interface but the network's bridge goes out
 * with the host's address. The bridge plugin's `ipMasq` would instead make a chain and rules for
 * each task, about eight iptables runs at every ADD and DEL, each slower as the nat table grows.
 *
 * The rule is put in place once per run of the agent, before the first ADD, and left when the agent
 * stops: the tasks still running use it, and other agents on the host may share the network. A
 * rule that is already there (an earlier run's) is not added twice.
 */
export class SubnetMasquerade {
  private inPlace: Promise<void> | undefined;

  constructor(
    private readonly network: MasqueradedNetwork,
    private readonly timeoutMs: number,
    private readonly launcher: ProcessLauncher,
  ) {}

  /** The rule, as iptables takes it after `-t nat -A POSTROUTING`. */
  rule(): string[] {
    const { subnet, bridge } = this.network;
    return ['-s', subnet, '!', '-o', bridge, '-m', 'comment', '--comment', `berth: masquerade task network ${subnet}`, '-j', 'MASQUERADE'];
  }

  /** Resolves once the rule is in place; a failure is retried by the next call. */
  ensure(): Promise<void> {
    this.inPlace ??= this.put().catch((error: unknown) => {
      this.inPlace = undefined;
      throw error;
    });
    return this.inPlace;
  }

  private async put(): Promise<void> {
    if (await this.present()) return;
    await this.iptables(['-A', 'POSTROUTING', ...this.rule()]);
  }

  /** `iptables -C` exits 1 when no such rule exists; any other failure is an error. */
  private async present(): Promise<boolean> {
    const code = await this.iptables(['-C', 'POSTROUTING', ...this.rule()], [0, 1]);
    return code === 0;
  }

  /** Runs iptables on the nat table; an exit code other than `accepted` is an error. */
  private iptables(args: string[], accepted: number[] = [0]): Promise<number> {
    const what = `cannot masquerade task network ${this.network.subnet}: iptables -t nat ${args[0]} POSTROUTING`;
    return this.launcher.runChecked({ file: 'iptables', args: ['-w', '-t', 'nat', ...args], env: withSbinPath(), timeoutMs: this.timeoutMs }, what, accepted);
  }
}
