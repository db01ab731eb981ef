// The figures of tracker/loadgen/bench.sh, read from the load generator's JSON reports.
//
//   node report.mjs half-peak RAMP.json     half the peak announce rate the server sustained
//   node report.mjs half-kept-up RAMP.json  half the announce rate of the busiest step that kept up
//   node report.mjs summary DIR SERVER...   every run, the medians and the ratio ours / reference
//                                           of a results folder (bench.sh prints where it is)
//   node report.mjs replicas DIR            the same for bench-replicas.sh: one in-memory
//                                           tracker against two replicas sharing Redis
import fs from 'node:fs'

const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'))
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

// Relayed offers per announce of the first, light ramp step: every offer the server took was
// delivered there.
const lightOffersPerAnnounce = (r) => r.windows[0].offers_relayed_per_sec / r.windows[0].announces_per_sec

// The ramp steps in which the server kept up: every offer it took was delivered (the relayed
// offers per announce of the first step, within 5 %), nothing was refused, and the p99 stayed
// under 100 ms.
const keptUpSteps = (r) => r.windows.filter((w) => w.offer_latency_p99_ms < 100 && w.failures === 0 &&
  w.offers_relayed_per_sec / w.announces_per_sec >= 0.95 * lightOffersPerAnnounce(r))

// The busiest step that kept up (the first step if none did).
const busiestKeptUp = (r) => keptUpSteps(r).reduce(
  (best, w) => (w.relayed_messages_per_sec > best.relayed_messages_per_sec ? w : best), r.windows[0])

// At the peak step a saturated server falls behind the announces sent, so the sent rate overstates
// what it sustained; the relayed offers per announce of the light step convert back.
const sustained = (r) => Math.min(r.peak.announces_per_sec, r.peak.offers_relayed_per_sec / lightOffersPerAnnounce(r))

function show (figures) {
  for (const [name, values] of Object.entries(figures)) {
    console.log(`  ${name.padEnd(34)} median ${median(values).toFixed(2).padStart(12)}   runs ${values.map((v) => v.toFixed(2)).join(', ')}`)
  }
}

function summary (dir, servers) {
  const load = (prefix) => fs.readdirSync(dir).filter((f) => f.startsWith(prefix)).sort().map((f) => readJson(`${dir}/${f}`))
  const floor = load('floor-')
  const floorFigures = {
    'floor µs of CPU per transfer': floor.map((r) => r.cpu_us_per_transfer),
    'floor transfers/s on all cores': floor.map((r) => r.transfers_per_sec_on_all_cores),
  }
  if (floor.length) {
    console.log(`\nloopback floor (${floor[0].connections} connection pairs, ${floor[0].message_bytes}-byte messages):`)
    show(floorFigures)
  }
  const floorRate = median(floorFigures['floor transfers/s on all cores'])
  const figures = {}
  for (const server of servers) {
    const runs = (kind) => load(`${server}-${kind}-`)
    const ramp = runs('ramp'), half = runs('half'), idle = runs('idle')
    const common = runs('common'), halfKept = runs('halfkept')
    const first = (reports, pick) => reports.map((r) => pick(r.windows[0]))
    const f = {
      'peak relayed messages/s': ramp.map((r) => r.peak.relayed_messages_per_sec),
      'peak announces/s (sent)': ramp.map((r) => r.peak.announces_per_sec),
      'peak relayed offers/s': ramp.map((r) => r.peak.offers_relayed_per_sec),
      'peak relayed answers/s': ramp.map((r) => r.peak.answers_relayed_per_sec),
      'peak server CPU cores': ramp.map((r) => r.peak.server_cpu_cores),
      'peak loadgen CPU cores': ramp.map((r) => r.peak.loadgen_cpu_cores),
      'peak relayed msgs per server CPU s': ramp.map((r) => r.peak.relayed_messages_per_server_cpu_second),
      'peak server waits for CPU': ramp.map((r) => r.peak.server_cpu_wait ?? 0),
      'most msgs/s at a p99 < 5 ms step': ramp.map((r) => Math.max(0, ...r.windows.filter((w) => w.offer_latency_p99_ms < 5).map((w) => w.relayed_messages_per_sec))),
      'kept-up step relayed msgs/s': ramp.map((r) => busiestKeptUp(r).relayed_messages_per_sec),
      'kept-up step server µs per msg': ramp.map((r) => busiestKeptUp(r).server_cpu_cores / busiestKeptUp(r).relayed_messages_per_sec * 1e6),
      'kept-up step loadgen µs per msg': ramp.map((r) => busiestKeptUp(r).loadgen_cpu_cores / busiestKeptUp(r).relayed_messages_per_sec * 1e6),
      'transfers per relayed message': ramp.map((r) => busiestKeptUp(r).transfers_per_relayed_message),
      ...(floor.length && { 'ceiling relayed msgs/s (floor)': ramp.map((r) => floorRate / busiestKeptUp(r).transfers_per_relayed_message) }),
      'half-kept-up announces/s': first(halfKept, (w) => w.announces_per_sec),
      'half-kept-up relayed msgs/s': first(halfKept, (w) => w.relayed_messages_per_sec),
      'half-kept-up offer latency p50 ms': first(halfKept, (w) => w.offer_latency_p50_ms),
      'half-kept-up offer latency p99 ms': first(halfKept, (w) => w.offer_latency_p99_ms),
      'half-peak announces/s': first(half, (w) => w.announces_per_sec),
      'half-peak offer latency p50 ms': first(half, (w) => w.offer_latency_p50_ms),
      'half-peak offer latency p99 ms': first(half, (w) => w.offer_latency_p99_ms),
      'half-peak server CPU cores': first(half, (w) => w.server_cpu_cores),
      'half-peak server waits for CPU': first(half, (w) => w.server_cpu_wait ?? 0),
      'half-peak loadgen waits for CPU': first(half, (w) => w.loadgen_cpu_wait ?? 0),
      'common-rate announces/s': first(common, (w) => w.announces_per_sec),
      'common-rate offer latency p50 ms': first(common, (w) => w.offer_latency_p50_ms),
      'common-rate offer latency p99 ms': first(common, (w) => w.offer_latency_p99_ms),
      'common-rate server CPU cores': first(common, (w) => w.server_cpu_cores),
      'common-rate server waits for CPU': first(common, (w) => w.server_cpu_wait ?? 0),
      'idle KiB per connection': idle.map((r) => r.kib_per_connection),
      'idle connections reached': idle.map((r) => r.readings[r.readings.length - 1].connections),
      'failure reasons per ramp': ramp.map((r) => r.totals.failures),
      'failure reasons per fixed-rate run': [...half, ...halfKept, ...common].map((r) => r.totals.failures),
      'conn. errors + disconnects per run': [...ramp, ...half, ...halfKept, ...common].map((r) => r.totals.connect_errors + r.totals.disconnects),
    }
    figures[server] = f
    console.log(`\n${server}:`)
    show(f)
  }
  if (figures.ours && figures.reference) {
    console.log('\nratio ours / reference (medians):')
    for (const name of Object.keys(figures.ours)) {
      const a = median(figures.ours[name]), b = median(figures.reference[name])
      if (b) console.log(`  ${name.padEnd(34)} ${(a / b).toFixed(2)}`)
    }
  }
  console.log(`\nraw JSON reports: ${dir}`)
}

function replicas (dir) {
  const load = (prefix) => fs.readdirSync(dir).filter((f) => f.startsWith(prefix)).sort().map((f) => readJson(`${dir}/${f}`))
  const figures = {}
  for (const setup of ['one', 'two']) {
    const ramp = load(`${setup}-ramp-`), half = load(`${setup}-half-`)
    const first = (pick) => half.map((r) => pick(r.windows[0]))
    const f = {
      'peak relayed messages/s': ramp.map((r) => r.peak.relayed_messages_per_sec),
      'peak announces/s (sustained)': ramp.map(sustained),
      'peak server CPU cores (+Redis)': ramp.map((r) => r.peak.server_cpu_cores),
      'half-peak announces/s': first((w) => w.announces_per_sec),
      'half-peak relayed msgs/s': first((w) => w.relayed_messages_per_sec),
      'half-peak offer latency p50 ms': first((w) => w.offer_latency_p50_ms),
      'half-peak offer latency p99 ms': first((w) => w.offer_latency_p99_ms),
    }
    if (setup === 'two') {
      const redis = load('two-redis-')
      Object.assign(f, {
        'same-replica offer p50 ms': first((w) => w.same_replica_offer_p50_ms),
        'same-replica offer p99 ms': first((w) => w.same_replica_offer_p99_ms),
        'cross-replica offer p50 ms': first((w) => w.cross_replica_offer_p50_ms),
        'cross-replica offer p99 ms': first((w) => w.cross_replica_offer_p99_ms),
        'Redis round trips per announce': redis.map((r) => r.announce_and_relay_round_trips / r.announces),
        'Redis commands per announce': redis.map((r) => r.redis_commands / r.announces),
        'cross-replica answers per announce': redis.map((r) => r.cross_replica_answers / r.announces),
        'Redis CPU cores': redis.map((r) => r.redis_cpu_seconds / r.seconds),
      })
    }
    figures[setup] = f
    console.log(`\n${setup === 'one' ? 'one in-memory tracker' : 'two replicas + Redis'}:`)
    show(f)
  }
  const peak = (s) => median(figures[s]['peak relayed messages/s'])
  console.log(`\nratio two replicas + Redis / one in-memory tracker, peak relayed messages/s: ${(peak('two') / peak('one')).toFixed(2)}`)
  console.log(`\nraw JSON reports: ${dir}`)
}

// A whole announce rate, at least 1.
const half = (rate) => Math.max(1, Math.round(rate / 2))

const [command, ...args] = process.argv.slice(2)
if (command === 'half-peak') console.log(half(sustained(readJson(args[0]))))
else if (command === 'half-kept-up') console.log(half(busiestKeptUp(readJson(args[0])).announces_per_sec))
else if (command === 'summary') summary(args[0], args.slice(1))
else if (command === 'replicas') replicas(args[0])
else {
  console.error('usage: node report.mjs half-peak RAMP.json | half-kept-up RAMP.json | summary DIR SERVER... | replicas DIR')
  process.exit(2)
}
