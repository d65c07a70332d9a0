// Runs in the appliance: deferred recipients waiting for their next attempt, earliest first.

export interface RetryEntry { at: number, seq: number }

/** A binary min-heap on `at`; a carrier outage can leave tens of thousands waiting. */
export class RetryHeap {
  readonly #items: RetryEntry[] = []

  get size (): number { return this.#items.length }

  push (entry: RetryEntry): void {
    const items = this.#items
    items.push(entry)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if ((items[parent] as RetryEntry).at <= entry.at) break
      items[i] = items[parent] as RetryEntry
      i = parent
    }
    items[i] = entry
  }

  peek (): RetryEntry | undefined { return this.#items[0] }

  pop (): RetryEntry | undefined {
    const items = this.#items
    const top = items[0]
    const last = items.pop()
    if (top === undefined || last === undefined || items.length === 0) return top
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= items.length) break
      const right = left + 1
      const child = right < items.length && (items[right] as RetryEntry).at < (items[left] as RetryEntry).at
        ? right
        : left
      if ((items[child] as RetryEntry).at >= last.at) break
      items[i] = items[child] as RetryEntry
      i = child
    }
    items[i] = last
    return top
  }

  /** Empties the heap and returns what it held (a cancelled broadcast). */
  drain (): RetryEntry[] {
    return this.#items.splice(0, this.#items.length)
  }
}
