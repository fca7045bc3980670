// A userspace UDP link for one browser's WebTransport (QUIC) session: the page is told to connect
// here, and every datagram is relayed to the server on loopback. The uplink (browser → server)
// can be capped: a token bucket at the given rate in front of a drop-tail queue bounded in time,
// as on a real access link, so QUIC sees loss and queueing delay and its congestion control backs
// off. The downlink is passed through. Loopback only; one client per shaper.
import { createSocket } from 'node:dgram';

/** Bytes of IP + UDP header on the wire per datagram (what a link's rate counts). */
const OVERHEAD = 28;

export async function startUdpShaper() {
  const front = createSocket('udp4');
  const back = createSocket('udp4');
  await new Promise((r) => front.bind(0, '127.0.0.1', r));
  await new Promise((r) => back.bind(0, '127.0.0.1', r));
  let upstreamPort = 0;
  let client = null;
  let rateBps = null;
  let queueLimitBytes = Infinity;
  const queue = [];
  let queuedBytes = 0;
  let tokens = 0;
  let lastFill = performance.now();
  const stats = { upBytes: 0, upDropped: 0, downBytes: 0 };

  const send = (buf) => {
    stats.upBytes += buf.length;
    back.send(buf, upstreamPort, '127.0.0.1');
  };
  const drain = () => {
    if (rateBps === null) {
      while (queue.length) send(queue.shift());
      queuedBytes = 0;
      return;
    }
    const now = performance.now();
    // A small bucket (two full packets): the cap holds on every millisecond scale that matters.
    tokens = Math.min(2 * 1500, tokens + ((now - lastFill) * rateBps) / 8000);
    lastFill = now;
    while (queue.length && tokens >= queue[0].length + OVERHEAD) {
      const b = queue.shift();
      queuedBytes -= b.length;
      tokens -= b.length + OVERHEAD;
      send(b);
    }
  };
  const timer = setInterval(drain, 2);

  front.on('message', (msg, rinfo) => {
    client = rinfo;
    if (!upstreamPort) return;
    if (rateBps === null && queue.length === 0) {
      send(msg);
      return;
    }
    if (queuedBytes + msg.length > queueLimitBytes) {
      stats.upDropped++;
      return;
    }
    queue.push(msg);
    queuedBytes += msg.length;
    drain();
  });
  back.on('message', (msg) => {
    if (!client) return;
    stats.downBytes += msg.length;
    front.send(msg, client.port, client.address);
  });

  return {
    port: front.address().port,
    stats,
    /** Where the server's QUIC endpoint listens (127.0.0.1). */
    setUpstream(port) {
      upstreamPort = port;
    },
    /** Caps the uplink at `bps` with a queue of `queueMs` at that rate; `null` lifts the cap. */
    cap(bps, queueMs = 100) {
      rateBps = bps;
      queueLimitBytes = bps === null ? Infinity : Math.max(3000, (bps * queueMs) / 8000);
      lastFill = performance.now();
      tokens = 0;
      drain();
    },
    close() {
      clearInterval(timer);
      front.close();
      back.close();
    },
  };
}
