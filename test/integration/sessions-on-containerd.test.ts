import { sessionScenarios } from '../scenarios/sessions.js';

sessionScenarios('containerd');
