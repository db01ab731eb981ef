// Drives the tracker with the real bittorrent-tracker client (its WebSocket client code,
// unmodified), in one of two roles, each its own process (the client pools one socket per
// tracker URL per process):
//   node --import ./register-fake-webrtc.mjs interop.mjs answerer ws://HOST:PORT
//   node --import ./register-fake-webrtc.mjs interop.mjs offerer ws://HOST:PORT
// The answerer prints {"ready":true} once announced, then answers the offers it receives. Each
// role prints one JSON line with what its client sent and received, then exits.
import Client from 'bittorrent-tracker'
import { log } from './fake-webrtc.mjs'

const [role, announce] = process.argv.slice(2)
const infoHash = 'f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3' // bytes above 0x7f on purpose
const peerId = '2d5757303030372d' + (role === 'offerer' ? 'ee' : '11').repeat(12)
const updates = []
const scrapes = []
const warnings = []
const timeout = setTimeout(() => finish('timed out'), 15000)

const client = new Client({ infoHash, peerId, announce: [announce], port: 6881 })
client.on('error', error => finish(`client error: ${error.message}`))
client.on('warning', warning => warnings.push(String(warning.message ?? warning)))
client.on('update', data => updates.push(data))
client.on('scrape', data => scrapes.push(data))
client.once('update', () => { if (role === 'answerer') console.log(JSON.stringify({ ready: true })) })
client.start()

const done = role === 'offerer'
  ? () => log.remoteAnswers.length > 0
  : () => log.remoteOffers.length > 0 && log.answersCreated.length > 0
const poll = setInterval(() => {
  if (!done()) return
  clearInterval(poll)
  if (role === 'offerer') client.scrape()
  setTimeout(() => { client.stop(); setTimeout(() => finish(null), 200) }, 500)
}, 20)

function finish (error) {
  clearTimeout(timeout)
  console.log(JSON.stringify({ role, error, warnings, updates, scrapes, ...log }))
  client.destroy()
  process.exit(0)
}
