import type { TestHookSources } from '../app/features/room/test-hook';

/**
 * Build-time switches. `ng build` (production) uses environment.ts; the development and e2e
 * configurations replace it (angular.json `fileReplacements`).
 */
export interface Environment {
  /** Installs window.__quicmeet, the read-only state the end-to-end tests poll. */
  installTestHook: ((sources: TestHookSources) => void) | null;
}
