import { berthctlScenarios } from '../scenarios/berthctl.js';

berthctlScenarios('containerd');
