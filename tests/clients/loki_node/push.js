// Pushes two log lines to Threadline's Loki endpoint with winston-loki, which sends
// snappy-compressed protobuf, then flushes and exits.
const winston = require("winston");
const LokiTransport = require("winston-loki");

const [url, traceId] = process.argv.slice(2);
const transport = new LokiTransport({
  host: url,
  labels: { app: "node-shop" },
  json: false,
  batching: true,
  interval: 1,
  onConnectionError: (err) => {
    console.error("push failed:", err);
    process.exit(1);
  },
});
const logger = winston.createLogger({ transports: [transport] });
logger.info(`cart checked out trace_id=${traceId}`, { labels: { level: "info" } });
logger.warn("payment slow", { labels: { level: "warn" } });
transport
  .flush()
  .then(() => process.exit(0))
  .catch((err) => {
    console.error("flush failed:", err);
    process.exit(1);
  });
