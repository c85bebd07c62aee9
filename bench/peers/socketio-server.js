// Peer for the benchmark: a Socket.IO 4.8 server, websocket transport only, broadcasting each
// published event to every client (Socket.IO encodes a broadcast packet once for all clients).
// POST /publish with one {type, data} or a JSON array of them. Connections need ?token=<HS256 JWT>.
'use strict';
const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.env.PORT || 9002);
const secret = process.env.JWT_SECRET || 'bench-secret-0123456789abcdef';

const verify = require('./jwt')(secret);

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/publish') { res.writeHead(404).end(); return; }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const events = [].concat(JSON.parse(Buffer.concat(chunks).toString()));
    for (const event of events) {
      io.emit('event', { type: event.type, namespace: 'system', data: event.data, timestamp: Date.now() });
    }
    res.writeHead(202, { 'content-type': 'application/json' }).end('{}');
  });
});
const io = new Server(server, { transports: ['websocket'], perMessageDeflate: false, httpCompression: false });
io.use((socket, next) => (verify(socket.handshake.query.token) ? next() : next(new Error('unauthorized'))));
server.listen(port, '127.0.0.1', 4096, () => console.log(`socket.io peer on ${port}`));
