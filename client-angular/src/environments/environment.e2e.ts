import { installTestHook } from '../app/features/room/test-hook';
import type { Environment } from './environment.model';

/** Development and e2e builds: window.__quicmeet exists for the browser tests and for debugging. */
export const environment: Environment = { installTestHook };
