import { taskNetworkScenarios } from '../scenarios/task-network.js';

taskNetworkScenarios('containerd');
