// Runs as a child process of `mimamori bench`: seeds the sample city and N synthetic subscribers
// into a new data folder, so that the benchmark's own process measures the appliance alone.
// It answers with the city's id and an API token for the crash run.

import { openStore } from '../appliance/store/store.js'
import { Directory } from '../appliance/directory.js'
import { createToken } from '../appliance/api-tokens.js'
import { createSampleCity, seedSubscribers } from './sample-city.js'

const [dataDir, count] = process.argv.slice(2)
const { store, vault } = openStore(dataDir as string)
const directory = new Directory(store, vault)
directory.ensureDefaultTopics()
const city = createSampleCity(directory)
seedSubscribers(directory, city, Number(count))
const token = createToken(store, { name: 'bench', scopes: ['admin'] }).secret
await store.close()
process.send?.({ cityId: city.cityId, token })
