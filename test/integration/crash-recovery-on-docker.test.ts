import { crashRecoveryScenarios } from '../scenarios/crash-recovery.js';

crashRecoveryScenarios('docker');
