import { hostResourceScenarios } from '../scenarios/host-resources.js';

hostResourceScenarios('docker');
