import { healthScenarios } from '../scenarios/health-and-restarts.js';

healthScenarios('containerd');
