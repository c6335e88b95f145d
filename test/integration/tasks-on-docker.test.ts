import { taskScenarios } from '../scenarios/tasks.js';

taskScenarios('docker');
