import { imageScenarios } from '../scenarios/images.js';

imageScenarios('docker');
