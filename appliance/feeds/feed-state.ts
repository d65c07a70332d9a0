// Runs in the appliance: the poll state of each feed (the feedState sub-database), kept across
// restarts so that conditional requests and back-off carry on where they were.

import type { Store } from '../store/store.js'

export interface FeedState {
  etag?: string
  lastModified?: string
  lastSuccessAt?: string
  lastAttemptAt?: string
  failures: number
  nextPollAt?: string
  entriesSeen: number
  lastError?: string
}

/** What /metrics and the panel show per feed. */
export type FeedStatus = { url: string, everySeconds: number } &
  Pick<FeedState, 'lastSuccessAt' | 'failures' | 'nextPollAt' | 'entriesSeen' | 'lastError'>

export function loadFeedState (store: Store, url: string): FeedState {
  const stored = store.feedState.get(url) as FeedState | undefined
  return stored ?? { failures: 0, entriesSeen: 0 }
}

export function saveFeedState (store: Store, url: string, state: FeedState): void {
  // JSON drops the fields set to undefined instead of storing them
  store.feedState.putSync(url, JSON.parse(JSON.stringify(state)))
}
