import { metricsScenarios } from '../scenarios/metrics.js';

metricsScenarios('containerd');
