import { crashChurnScenario } from '../scenarios/crash-churn.js';

crashChurnScenario('docker');
