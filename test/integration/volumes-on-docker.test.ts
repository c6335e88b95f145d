import { volumeScenarios } from '../scenarios/volumes.js';

volumeScenarios('docker');
