import { taskMetadataScenarios } from '../scenarios/task-metadata.js';

taskMetadataScenarios('docker');
