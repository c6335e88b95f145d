import type { Readable } from 'node:stream';
import type { RuntimeEvent } from '../types.js';

interface DockerEventMessage {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

/** Turns one message of Docker's /events stream into a runtime event, or undefined to skip it. */
export function parseDockerEvent(message: DockerEventMessage): RuntimeEvent | undefined {
  if (message.Type !== 'container' || !message.Actor?.ID) return undefined;
  const containerId = message.Actor.ID;
  const time = message.timeNano ? new Date(Math.floor(message.timeNano / 1e6)) : new Date((message.time ?? 0) * 1000);
  switch (message.Action) {
    case 'start':
      return { type: 'start', containerId, time };
    case 'die': {
      const exitCode = Number.parseInt(message.Actor.Attributes?.exitCode ?? '', 10);
      return { type: 'exit', containerId, exitCode: Number.isNaN(exitCode) ? -1 : exitCode, time };
    }
    case 'oom':
      return { type: 'oom', containerId, time };
    default:
      return undefined;
  }
}

/** Reads newline-delimited JSON messages from Docker's /events stream. */
export async function* readDockerEvents(stream: Readable): AsyncGenerator<RuntimeEvent> {
  let buffered = '';
  for await (const chunk of stream) {
    buffered += chunk.toString('utf8');
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line.length === 0) continue;
      const event = parseDockerEvent(JSON.parse(line) as DockerEventMessage);
      if (event) yield event;
    }
  }
}
