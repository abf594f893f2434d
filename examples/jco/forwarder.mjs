// Adds the API key to every request the component makes, on its way to the
// one upstream origin, so that the key never enters the component.
//
// It runs in a worker thread: the component's HTTP calls block the main
// thread until they are answered, so a forwarder there could never answer.
import http from 'node:http';
import https from 'node:https';
import { parentPort, workerData } from 'node:worker_threads';

const upstream = new URL(workerData.upstreamOrigin);
const client = upstream.protocol === 'https:' ? https : http;

const server = http.createServer((req, res) => {
  const headers = { ...req.headers, host: upstream.host, 'x-api-key': workerData.apiKey };
  const forwarded = client.request(
    { protocol: upstream.protocol, hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
    (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    },
  );
  // The component sees a 502 and retries, as it would for an unreachable API.
  forwarded.on('error', (error) => {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`forwarder: upstream ${upstream.origin} failed: ${error.code ?? error.message}`);
  });
  req.pipe(forwarded);
});

server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
