// Starts the bittorrent-tracker npm server with only the WebSocket transport, for benchmarks.
// Usage: node reference-server.mjs [PORT] [HOST]   (PORT 0 picks a free port)
// Prints one line `listening <host>:<port> pid <pid>` once it accepts connections.
// The server module alone: the package root also loads the WebRTC client (a native addon).
import Server from 'bittorrent-tracker/server'

const port = Number(process.argv[2] ?? 8000)
const host = process.argv[3] ?? '127.0.0.1'

const server = new Server({ http: false, udp: false, ws: true, stats: false, trustProxy: false })
server.on('error', (err) => {
  console.error(`reference server error: ${err.message}`)
  process.exit(1)
})
// Warnings are per-message protocol complaints (e.g. an answer for a peer that left); count only.
let warnings = 0
server.on('warning', () => { warnings += 1 })
server.listen(port, host, () => {
  const address = server.ws.address()
  console.log(`listening ${address.address}:${address.port} pid ${process.pid}`)
})
const stop = () => {
  console.error(`reference server stopping (${warnings} warnings)`)
  server.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
