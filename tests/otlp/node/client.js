// The official OpenTelemetry JS SDK, configured by environment variables only (OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), as a tutorial service would be.
// usage: node client.js json|proto|grpc <count> <id-prefix>
// Emits <count> log records (attribute id=<prefix>-<i>) and one counter, histogram and gauge series
// (attribute id=<prefix>-counter|histogram|gauge), exports each once, and prints the exports' results as JSON.
'use strict';
const { SeverityNumber } = require('@opentelemetry/api-logs');
const { LoggerProvider, BatchLogRecordProcessor } = require('@opentelemetry/sdk-logs');
const { MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics');
const { defaultResource, detectResources, envDetector } = require('@opentelemetry/resources');

const [protocol, countText, prefix] = process.argv.slice(2);
const flavour = { json: 'http', proto: 'proto', grpc: 'grpc' }[protocol];
const logsPkg = `@opentelemetry/exporter-logs-otlp-${flavour}`;
const metricsPkg = `@opentelemetry/exporter-metrics-otlp-${flavour}`;
const { OTLPLogExporter } = require(logsPkg);
const { OTLPMetricExporter } = require(metricsPkg);

const results = [];
function watched(exporter, signal) {
  const exportOnce = exporter.export.bind(exporter);
  exporter.export = (items, done) => exportOnce(items, (result) => {
    const error = result.error;
    results.push({ signal, code: result.code, status: error ? (error.code ?? null) : null,
      error: error ? String(error.message).slice(0, 300) : null });
    done(result);
  });
  return exporter;
}

async function main() {
  const resource = defaultResource().merge(detectResources({ detectors: [envDetector] }));
  const loggerProvider = new LoggerProvider({
    resource,
    processors: [new BatchLogRecordProcessor({ exporter: watched(new OTLPLogExporter(), 'logs'), maxExportBatchSize: 100 })],
  });
  const logger = loggerProvider.getLogger('node-client', '1.0.0');
  const count = Number(countText);
  for (let i = 0; i < count; i++) {
    const structured = i === 0;
    logger.emit({
      severityNumber: i % 10 === 9 ? SeverityNumber.ERROR : SeverityNumber.INFO,
      severityText: i % 10 === 9 ? 'ERROR' : 'INFO',
      body: structured ? { order: i, items: ['a', 'b'] } : `node ${protocol} record ${i}`,
      attributes: { id: `${prefix}-${i}`, 'http.request.method': 'POST', 'url.path': '/orders',
        ...(i % 10 === 9 ? { 'exception.type': 'TypeError', 'exception.message': 'boom' } : {}) },
    });
  }
  await loggerProvider.shutdown();

  // one export only (at shutdown): cumulative series would otherwise be sent again
  const reader = new PeriodicExportingMetricReader({
    exporter: watched(new OTLPMetricExporter(), 'metrics'), exportIntervalMillis: 3600000,
  });
  const meterProvider = new MeterProvider({ resource, readers: [reader] });
  const meter = meterProvider.getMeter('node-client');
  meter.createCounter('orders.placed', { unit: '1' }).add(5, { id: `${prefix}-counter` });
  const histogram = meter.createHistogram('http.server.request.duration', { unit: 's' });
  for (const v of [0.01, 0.02, 0.03, 0.2, 1.5]) histogram.record(v, { id: `${prefix}-histogram` });
  meter.createGauge('queue.depth', { unit: '1' }).record(7, { id: `${prefix}-gauge` });
  await meterProvider.shutdown();
  process.stdout.write(JSON.stringify(results) + '\n');
}

main().catch((err) => { console.error(err); process.exit(1); });
