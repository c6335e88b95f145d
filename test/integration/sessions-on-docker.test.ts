import { sessionScenarios } from '../scenarios/sessions.js';

sessionScenarios('docker');
