/** Names of the error codes the CNI spec reserves (1–99); 100 and above are the plugin's own. */
const SPEC_CODES: Record<number, string> = {
  1: 'incompatible CNI version',
  2: 'unsupported field in the network configuration',
  3: 'container unknown or does not exist',
  4: 'invalid environment variables',
  5: 'I/O failure',
  6: 'failed to decode content',
  7: 'invalid network configuration',
  11: 'try again later',
};

/**
 * A CNI operation that failed: a plugin's error result ({code, msg, details}), or berth's own
 * failure to run the plugin (not found, timed out, unreadable output), which has no code.
 */
export class CniError extends Error {
  override readonly name = 'CniError';
  constructor(
    /** ADD, DEL, CHECK or VERSION. */
    readonly command: string,
    /** The plugin's type (its executable's name). */
    readonly plugin: string,
    readonly msg: string,
    readonly code?: number,
    readonly details?: string,
  ) {
    const meaning = code !== undefined && SPEC_CODES[code] ? `, ${SPEC_CODES[code]}` : '';
    const codeText = code !== undefined ? ` (code ${code}${meaning})` : '';
    super(`CNI ${command} failed in plugin "${plugin}": ${msg}${details ? `: ${details}` : ''}${codeText}`);
  }
}

/** Reads a plugin's error result from its stdout; undefined when it is not one. */
export function parsePluginError(stdout: string): { code?: number; msg: string; details?: string } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { code, msg, details } = parsed as Record<string, unknown>;
  if (typeof msg !== 'string' && typeof code !== 'number') return undefined;
  return {
    code: typeof code === 'number' ? code : undefined,
    msg: typeof msg === 'string' && msg !== '' ? msg : 'no message',
    details: typeof details === 'string' && details !== '' ? details : undefined,
  };
}
