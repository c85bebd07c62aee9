// Peer for the benchmark: a plain `ws` broadcast server, as a user would write it.
// POST /publish with one {type, data} or a JSON array of them: each event is serialized once and sent to every
// client. Connections need ?token=<HS256 JWT> (checked with node's crypto, like omnicast checks it).
'use strict';
const http = require('http');
const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.env.PORT || 9001);
const secret = process.env.JWT_SECRET || 'bench-secret-0123456789abcdef';

const verify = require('./jwt')(secret);

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/publish') { res.writeHead(404).end(); return; }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const events = [].concat(JSON.parse(Buffer.concat(chunks).toString()));
    for (const event of events) {
      const frame = JSON.stringify({ type: event.type, namespace: 'system', data: event.data, timestamp: Date.now() });
      for (const client of wss.clients) if (client.readyState === WebSocket.OPEN) client.send(frame);
    }
    res.writeHead(202, { 'content-type': 'application/json' }).end('{}');
  });
});
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
server.on('upgrade', (req, socket, head) => {
  const token = new URL(req.url, 'http://x').searchParams.get('token');
  if (!verify(token)) { socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n'); return; }
  wss.handleUpgrade(req, socket, head, (ws) => ws.send('{"type":"ready"}'));
});
server.listen(port, '127.0.0.1', 4096, () => console.log(`ws peer on ${port}`));
