import { eventStreamScenarios } from '../scenarios/event-stream.js';

eventStreamScenarios('containerd');
