// Runs as a child process of `mimamori bench`: seeds the sample city and N synthetic subscribers
// into a new data folder, so that the benchmark's own process measures the appliance alone.

import { openStore } from '../appliance/store/store.js'
import { Directory } from '../appliance/directory.js'
import { createSampleCity, seedSubscribers } from './sample-city.js'

const [dataDir, count] = process.argv.slice(2)
const { store, vault } = openStore(dataDir as string)
const directory = new Directory(store, vault)
directory.ensureDefaultTopics()
const city = createSampleCity(directory)
seedSubscribers(directory, city, Number(count))
await store.close()
process.send?.({ cityId: city.cityId })
