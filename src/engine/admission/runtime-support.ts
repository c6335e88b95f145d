import type { ContainerRuntime } from '../../runtime/container-runtime.js';
import { InvalidArgumentError, type FieldViolation } from '../errors.js';
import type { TaskDefinition } from '../model/task-definition.js';

/**
 * Refuses, with INVALID_ARGUMENT naming the field, what the agent's runtime cannot do the way
 * the other one does: observed from inside the container both behave the same, or the task is not taken.
 */
export function checkRuntimeSupports(task: TaskDefinition, runtime: Pick<ContainerRuntime, 'name' | 'opensStdinWithoutTerminal' | 'logConfigurationProblem'>): void {
  const violations: FieldViolation[] = [];
  task.containers.forEach((c, i) => {
    const log = c.logConfiguration;
    if (log) {
      // Secret options' values are not known yet: their names are judged.
      const options = { ...log.options, ...Object.fromEntries(log.secretOptions.map((s) => [s.name, 'secret'])) };
      const problem = runtime.logConfigurationProblem({ driver: log.driver, options });
      if (problem) {
        violations.push({
          field: `task.containers[${i}].log_configuration.${problem.option ? `options[${problem.option}]` : 'log_driver'}`,
          description: `${problem.option ? `${problem.option} ` : ''}${problem.problem}`,
        });
      }
    }
    if (c.interactive && !c.pseudoTerminal && !runtime.opensStdinWithoutTerminal) {
      violations.push({
        field: `task.containers[${i}].interactive`,
        description: `the ${runtime.name} runtime cannot keep standard input open without a terminal (its shim gives a process whose output goes to a log writer no standard input); set pseudo_terminal too, whose terminal is an open input`,
      });
    }
  });
  if (violations.length > 0) throw new InvalidArgumentError(violations);
}
