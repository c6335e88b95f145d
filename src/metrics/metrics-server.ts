import type { Server } from 'node:http';
import { closeHttp, listenHttp } from '../http-listener.js';
import type { Logger } from 'pino';
import type { AgentMetrics } from './agent-metrics.js';

/** Serves the metrics to Prometheus at GET /metrics on `address` (host:port). */
export class MetricsServer {
  private server: Server | undefined;

  constructor(
    private readonly metrics: AgentMetrics,
    private readonly address: string,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.server = await listenHttp(this.address, (request, response) => {
      if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
        return;
      }
      this.metrics.scrape().then(
        ({ contentType, body }) => response.writeHead(200, { 'content-type': contentType }).end(body),
        (error: unknown) => {
          this.log.error({ err: error }, 'metrics scrape failed');
          response.writeHead(500, { 'content-type': 'text/plain' }).end('scrape failed\n');
        },
      );
    });
    this.log.info({ address: this.address }, 'serving metrics at /metrics');
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await closeHttp(server);
  }
}
