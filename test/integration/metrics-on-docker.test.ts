import { metricsScenarios } from '../scenarios/metrics.js';

metricsScenarios('docker');
