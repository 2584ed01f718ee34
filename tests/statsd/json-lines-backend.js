// A StatsD backend that prints each flush as one JSON line, so the tests can read what the
// real daemon aggregated (the console backend prints JavaScript, not JSON).
exports.init = function (startupTime, config, events) {
  events.on('flush', function (timestamp, metrics) {
    process.stdout.write(JSON.stringify({
      counters: metrics.counters, gauges: metrics.gauges, timers: metrics.timers,
    }) + '\n');
  });
  return true;
};
