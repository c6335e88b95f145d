import { containerOptionScenarios } from '../scenarios/container-options.js';

containerOptionScenarios('docker');
