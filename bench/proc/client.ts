// A bench client as a process of its own (used where the app must run
// somewhere else, e.g. in a network namespace): runs one measurement over
// TCP against HOST:PORT and prints its result as one JSON line.
// Usage: client.ts bulk HOST PORT BYTES TIME_BOUND_MS   (PORT: a count service)
//        client.ts rtt HOST PORT COUNT TIME_BOUND_MS    (PORT: an echo service; 32-byte messages)
//        client.ts setup HOST PORT COUNT TIME_BOUND_MS  (PORT: an echo service)
//        client.ts wait HOST PORT TIME_BOUND_MS         (until an echo of one byte works)
import { bulkOneWay, openChecked, roundTrips, setupTimes, tcpDial } from '../lib/measure.ts';

const [mode, host, portText, a, b] = process.argv.slice(2);
const port = Number(portText);
if (host === undefined || !Number.isInteger(port) || port <= 0) {
  console.error('usage: client.ts bulk|rtt|setup|wait HOST PORT ...');
  process.exit(2);
}
const dial = tcpDial(host, port);
if (mode === 'bulk') {
  console.log(JSON.stringify(await bulkOneWay(dial, Number(a), Number(b))));
} else if (mode === 'rtt') {
  console.log(JSON.stringify(await roundTrips(dial, Number(a), 32, Number(b))));
} else if (mode === 'setup') {
  console.log(JSON.stringify(await setupTimes(dial, Number(a), Number(b))));
} else if (mode === 'wait') {
  // Short tries: a SYN toward an address with no route yet would otherwise hang for minutes.
  const quickDial = tcpDial(host, port, 2000);
  const stopAt = Date.now() + Number(a);
  let last: string;
  let tries = 0;
  for (;;) {
    tries++;
    try {
      const s = await openChecked(quickDial, 2000);
      s.destroy();
      console.log(JSON.stringify({ ok: true, tries }));
      break;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > stopAt) {
      console.log(JSON.stringify({ ok: false, tries, error: last }));
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
} else {
  console.error(`client.ts: unknown mode ${mode}`);
  process.exit(2);
}
