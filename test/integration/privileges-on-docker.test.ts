import { privilegeScenarios } from '../scenarios/privileges.js';

privilegeScenarios('docker');
