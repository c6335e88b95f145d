/**
 * The options the agent's `node` runs with, wherever it is started: the `berth` bin's first line
 * (src/main.ts), deploy/berth.service, `npm start`, the demo and the tests' agents. A unit test
 * holds them to this list.
 *
 * `--max-semi-space-size=4`: V8's young generation at most 8 MiB instead of 32. After a burst of
 * launches the agent allocates little, and with a young generation of 32 MiB V8 collected so
 * rarely that it kept what the burst had grown of its heap: with 1,000 tasks running, 57–110 MiB
 * of heap committed for 26–30 MiB in use, the RSS 160–209 MiB. With 8 MiB the collections go on
 * while the agent idles, V8's memory reducer gives back the old generation's free pages, and the
 * same 1,000 tasks settle at 118–124 MiB (BENCHMARKS.md, "Every goal again on a fast stretch").
 */
export const AGENT_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=4'];
