// The sink of the benches, a process of its own: two TCP services on one host.
// - echo: sends back every byte it receives (round trips, setup time);
// - count: swallows everything and, when the sender half-closes, answers the
//   number of bytes received as 8 bytes big-endian and closes (bulk transfer).
// Prints {"echo":PORT,"count":PORT} once listening. Usage: sink.ts [--host H]
import net from 'node:net';

const hostAt = process.argv.indexOf('--host');
const host = hostAt >= 0 ? (process.argv[hostAt + 1] ?? '127.0.0.1') : '127.0.0.1';

const sockets = new Set<net.Socket>();
function track(s: net.Socket): void {
  sockets.add(s);
  s.setNoDelay(true);
  s.on('error', () => undefined);
  s.once('close', () => sockets.delete(s));
}

const echo = net.createServer({ allowHalfOpen: true }, (s) => {
  track(s);
  s.pipe(s);
});
const count = net.createServer({ allowHalfOpen: true }, (s) => {
  track(s);
  let received = 0;
  s.on('data', (chunk: Buffer) => {
    received += chunk.length;
  });
  s.once('end', () => {
    const reply = Buffer.alloc(8);
    reply.writeBigUInt64BE(BigInt(received), 0);
    s.end(reply);
  });
});

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0, backlog: 4096 }, () =>
      resolve((server.address() as net.AddressInfo).port),
    );
  });
}

const ports = { echo: await listen(echo), count: await listen(count) };
console.log(JSON.stringify({ ...ports, pid: process.pid }));

function shutdown(): void {
  for (const s of sockets) s.destroy();
  echo.close();
  count.close();
  setTimeout(() => process.exit(0), 200).unref();
}
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
