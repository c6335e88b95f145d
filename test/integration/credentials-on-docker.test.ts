import { credentialScenarios } from '../scenarios/credentials.js';

credentialScenarios('docker');
