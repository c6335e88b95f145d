import { hostileInputScenarios } from '../scenarios/hostile-input.js';

hostileInputScenarios('containerd');
