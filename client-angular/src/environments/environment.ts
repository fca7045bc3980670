import type { Environment } from './environment.model';

/** Production: no test hook in the bundle at all. */
export const environment: Environment = { installTestHook: null };
