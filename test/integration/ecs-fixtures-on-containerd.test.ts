import { ecsFixtureScenarios } from '../scenarios/ecs-fixtures.js';

ecsFixtureScenarios('containerd');
