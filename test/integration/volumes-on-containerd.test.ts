import { volumeScenarios } from '../scenarios/volumes.js';

volumeScenarios('containerd');
