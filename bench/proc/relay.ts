// One relay of the plain Node.js TCP chain (the baseline): for each target
// HOST:PORT given, a net.Server on 127.0.0.1 (or --host H) that pipes every
// connection to that target, both ways, half-close included. Prints
// {"ports":[...]} (one listening port per target, in order) once listening.
// Usage: relay.ts [--host H] TARGET...
import net from 'node:net';

const args = process.argv.slice(2);
let host = '127.0.0.1';
const targets: { host: string; port: number }[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--host') {
    host = args[++i] ?? host;
    continue;
  }
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(args[i] as string);
  if (m === null) {
    console.error(`relay.ts: bad target ${args[i]} (expected HOST:PORT)`);
    process.exit(2);
  }
  targets.push({ host: m[1] as string, port: Number(m[2]) });
}

const sockets = new Set<net.Socket>();
function track(s: net.Socket): void {
  sockets.add(s);
  s.setNoDelay(true);
  s.on('error', () => s.destroy());
  s.once('close', () => sockets.delete(s));
}

const servers = targets.map((target) =>
  net.createServer({ allowHalfOpen: true }, (client) => {
    track(client);
    const upstream = net.connect({ ...target, allowHalfOpen: true });
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  }),
);

const ports: number[] = [];
for (const server of servers) {
  ports.push(
    await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port: 0, backlog: 4096 }, () =>
        resolve((server.address() as net.AddressInfo).port),
      );
    }),
  );
}
console.log(JSON.stringify({ ports, pid: process.pid }));

function shutdown(): void {
  for (const s of sockets) s.destroy();
  for (const server of servers) server.close();
  setTimeout(() => process.exit(0), 200).unref();
}
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
