// A second runtime for the harness:audit source component: Node.js with jco.
//
//   node host.mjs <transpiled source.js> <run.json>
//
// run.json: {"settings": <the WIT `settings` record, camelCase, with
// window.startAtMs/endAtMs as numbers>, "stateDir": <directory for the checkpoint>,
// "output": <file the NDJSON is appended to>, "quarantine": <file the events the
// component could not read are appended to, as Harness sent them, one a line;
// default <stateDir>/quarantine.jsonl>}. HARNESS_API_KEY holds the key.
//
// The component gets what the Rust host gives it and nothing more: no
// environment, arguments or files, and outgoing HTTP only to a forwarder that
// adds the key. Unlike the Rust host, nothing stops a hostile component from
// reaching the shim's other capabilities, so give this runtime test keys only.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as shim from '@bytecodealliance/preview2-shim';

// Page requests per poll call, as the Rust host budgets them.
const MAX_PAGES_PER_POLL = 20;
// A pass ends when caught up; this bounds a source that never says so.
const MAX_POLLS = 100_000;
const EXIT = { config: 2, refused: 3, unavailable: 4, storage: 5, component: 6, unusable: 10 };

function fail(code, message) {
  process.stderr.write(`jco-host: ${message}\n`);
  process.exit(code);
}

const [componentJs, runFile] = process.argv.slice(2);
if (!componentJs || !runFile) fail(EXIT.config, 'usage: node host.mjs <transpiled source.js> <run.json>');
const run = JSON.parse(readFileSync(runFile, 'utf8'));
const apiKey = process.env.HARNESS_API_KEY;
if (!apiKey) fail(EXIT.config, 'HARNESS_API_KEY is not set');

const upstream = new URL(run.settings.query.apiBase);
const forwarder = new Worker(new URL('./forwarder.mjs', import.meta.url), {
  workerData: { upstreamOrigin: upstream.origin, apiKey },
});
const { port } = await new Promise((resolve, reject) => {
  forwarder.once('message', resolve);
  forwarder.once('error', reject);
});
const allowedAuthority = `127.0.0.1:${port}`;

// Egress: the component may only talk to the forwarder.
const outgoingHandler = {
  handle(request, options) {
    if (request.authority() !== allowedAuthority || request.scheme()?.tag !== 'HTTP') {
      throw { payload: { tag: 'HTTP-request-denied' } };
    }
    return shim.http.outgoingHandler.handle(request, options);
  },
};
const nothing = { getEnvironment: () => [], getArguments: () => [], initialCwd: () => undefined };

const checkpointFile = join(run.stateDir, 'checkpoint');
const quarantineFile = run.quarantine ?? join(run.stateDir, 'quarantine.jsonl');
mkdirSync(run.stateDir, { recursive: true });
mkdirSync(dirname(run.output), { recursive: true });
mkdirSync(dirname(quarantineFile), { recursive: true });
let stored = readOrNothing(checkpointFile);

function readOrNothing(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if (error.code === 'ENOENT') return undefined;
    fail(EXIT.config, `reading the checkpoint ${path}: ${error.message}`);
  }
}

function writeDurably(path, bytes, flags) {
  const fd = openSync(path, flags);
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function storeCheckpoint(text) {
  if (stored === text) return;
  writeDurably(`${checkpointFile}.tmp`, text, 'w');
  renameSync(`${checkpointFile}.tmp`, checkpointFile);
  stored = text;
}

// The quarantine first, then the checkpoint that records it alone; the batch,
// then the checkpoint that covers it: a crash between a write and its
// checkpoint writes it again (at least once), never loses it.
function emit(batch) {
  let writing = quarantineFile;
  try {
    if (batch.quarantine) {
      const lines = batch.quarantine.events.flatMap((event) => [event.bytes, NEWLINE]);
      writeDurably(quarantineFile, Buffer.concat(lines), 'a');
      storeCheckpoint(batch.quarantine.checkpoint);
      totals.quarantined += BigInt(batch.quarantine.events.length);
    }
    writing = run.output;
    if (batch.lines.length > 0) writeDurably(run.output, batch.lines, 'a');
    storeCheckpoint(batch.checkpoint);
  } catch (error) {
    throw { payload: { tag: 'unavailable', val: `${writing}: ${error.message}` } };
  }
}
const NEWLINE = Buffer.from('\n');

const imports = {
  'harness:audit/emit': { emit },
  'harness:audit/types': {},
  'wasi:cli/environment': nothing,
  'wasi:cli/exit': shim.cli.exit,
  'wasi:cli/stderr': shim.cli.stderr,
  'wasi:cli/stdin': shim.cli.stdin,
  'wasi:cli/stdout': shim.cli.stdout,
  'wasi:cli/terminal-input': shim.cli.terminalInput,
  'wasi:cli/terminal-output': shim.cli.terminalOutput,
  'wasi:cli/terminal-stderr': shim.cli.terminalStderr,
  'wasi:cli/terminal-stdin': shim.cli.terminalStdin,
  'wasi:cli/terminal-stdout': shim.cli.terminalStdout,
  'wasi:clocks/monotonic-clock': shim.clocks.monotonicClock,
  'wasi:clocks/wall-clock': shim.clocks.wallClock,
  'wasi:http/outgoing-handler': outgoingHandler,
  'wasi:http/types': shim.http.types,
  'wasi:io/error': shim.io.error,
  'wasi:io/poll': shim.io.poll,
  'wasi:io/streams': shim.io.streams,
  'wasi:random/random': shim.random.random,
};

const componentUrl = pathToFileURL(componentJs);
const { instantiate } = await import(componentUrl);
const getCoreModule = (name) => WebAssembly.compile(readFileSync(new URL(name, componentUrl)));
const { source } = await instantiate(getCoreModule, imports);

const { query, window: span } = run.settings;
const settings = {
  ...run.settings,
  query: { ...query, apiBase: `http://${allowedAuthority}${upstream.pathname.replace(/\/$/, '')}` },
  window: {
    ...span,
    startAtMs: span.startAtMs == null ? undefined : BigInt(span.startAtMs),
    endAtMs: span.endAtMs == null ? undefined : BigInt(span.endAtMs),
  },
};

function exitFor(error) {
  const payload = error?.payload;
  if (!payload) return [EXIT.component, `the component failed: ${error?.stack ?? error}`];
  const detail = typeof payload.val === 'string' ? payload.val : JSON.stringify(payload.val, (_, v) => (typeof v === 'bigint' ? Number(v) : v));
  const code = {
    'invalid-settings': EXIT.config,
    unauthorized: EXIT.refused,
    forbidden: EXIT.refused,
    'bad-request': EXIT.refused,
    'rate-limited': EXIT.unavailable,
    'server-error': EXIT.unavailable,
    transport: EXIT.unavailable,
    'unusable-response': EXIT.unusable,
    'sink-failure': EXIT.storage,
  }[payload.tag] ?? EXIT.component;
  return [code, `${payload.tag}: ${detail}`];
}

const totals = { events: 0n, quarantined: 0n, batches: 0, pages: 0, duplicates: 0n, retries: 0, late: 0n, unreconciled: 0n };
try {
  // No key: the outgoing handler above adds it, so the component never holds it.
  source.configure(settings, stored, undefined);
  let caughtUp = false;
  for (let polls = 0; !caughtUp; polls += 1) {
    if (polls === MAX_POLLS) fail(EXIT.component, `the component did not catch up in ${MAX_POLLS} polls`);
    const report = source.poll({ maxPages: MAX_PAGES_PER_POLL });
    totals.events += report.eventsEmitted;
    totals.batches += report.batches;
    totals.pages += report.pages;
    totals.duplicates += report.duplicatesDropped;
    totals.retries += report.retries;
    totals.pages += report.countRequests;
    totals.late += report.lateEvents;
    totals.unreconciled = report.unreconciledEvents;
    for (const f of report.findings) {
      process.stderr.write(
        `jco-host: completeness: ${f.kind} ${new Date(Number(f.startMs)).toISOString()}..` +
          `${new Date(Number(f.endMs)).toISOString()} counted ${f.counted}, collected ${f.collected}` +
          `${f.detail ? `: ${f.detail}` : ''}\n`,
      );
    }
    caughtUp = report.caughtUp;
  }
  storeCheckpoint(source.checkpoint());
} catch (error) {
  const [code, message] = exitFor(error);
  fail(code, message);
}
await forwarder.terminate();
process.stderr.write(
  `jco-host: wrote ${totals.events} events in ${totals.batches} batches from ${totals.pages} requests, ` +
    `and kept ${totals.quarantined} it could not read in ${quarantineFile}; ` +
    `${totals.duplicates} duplicates dropped, ${totals.retries} retries, ${totals.late} late events; ` +
    `${totals.unreconciled} events counted by Harness and never returned\n`,
);
