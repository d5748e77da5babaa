// Runs exchanges (JSON on stdin: [{name, calls: [{method, request}]}]) through the `ollama` npm
// package wrapped by Braintrust's JavaScript SDK (`wrapOllama`), against the Ollama at
// OLLAMA_HOST, and prints the spans Braintrust's Ollama plugin wrote, per exchange, as JSON.
// Run by scripts/record_plugin_spans.py, which installs both packages and serves the replies.
import {
  _exportsForTestingOnly,
  Attachment,
  initLogger,
  wrapOllama,
} from "braintrust";
import { Ollama } from "ollama";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const exchanges = JSON.parse(Buffer.concat(chunks).toString("utf8"));

await _exportsForTestingOnly.simulateLoginForTests();
const background = _exportsForTestingOnly.useTestBackgroundLogger();
initLogger({ projectName: "plugin-parity", projectId: "plugin-parity" });
const client = wrapOllama(new Ollama({ host: process.env.OLLAMA_HOST }));

// An attachment as a row holds it: its reference, less the random key.
function plain(value) {
  return JSON.parse(
    JSON.stringify(value, (key, v) => {
      if (v instanceof Attachment) {
        const { key: _random, ...reference } = v.reference;
        return reference;
      }
      return v;
    }),
  );
}

const written = {};
for (const exchange of exchanges) {
  for (const call of exchange.calls) {
    const result = await client[call.method](call.request);
    if (call.request.stream) {
      for await (const _chunk of result) {
        // read to the end, as a caller would
      }
    }
  }
  await background.flush();
  const rows = await background.drain();
  // The test logger keeps one event per log call: merge them per span, in order.
  const spans = new Map();
  for (const row of rows) {
    const span = spans.get(row.span_id) ?? {};
    for (const field of ["span_attributes", "input", "output", "metadata", "metrics"]) {
      if (row[field] !== undefined) {
        span[field] = { ...(span[field] ?? {}), ...row[field] };
        if (Array.isArray(row[field]) || typeof row[field] !== "object") {
          span[field] = row[field];
        }
      }
    }
    spans.set(row.span_id, span);
  }
  written[exchange.name] = [...spans.values()].map((span) => {
    const metrics = {};
    for (const [name, value] of Object.entries(span.metrics ?? {})) {
      if (name === "start" || name === "end") continue;
      metrics[name] = name.endsWith("tokens") ? value : "<seconds>";
    }
    return plain({
      name: span.span_attributes?.name,
      type: span.span_attributes?.type,
      input: span.input,
      output: span.output,
      metadata: span.metadata,
      metrics,
    });
  });
}
process.stdout.write(JSON.stringify(written, null, 2) + "\n");
