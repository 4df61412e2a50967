// Preloaded into the conformance suite (node --import): its test servers
// call `listen(port)` without a host, which binds every interface, and read
// `address().port` right after. This binds such a server to 127.0.0.1 at
// once (a pre-bound handle, so the port is known synchronously, as the suite
// expects); `localhost` in the URLs the suite hands out resolves there. So
// nothing in the tests listens beyond loopback.
import net from 'node:net';

const { TCP, constants } = process.binding('tcp_wrap');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const portOnly = typeof args[0] === 'number' && (args.length === 1 || typeof args[1] === 'function');
  if (!portOnly) return listen.apply(this, args);
  const handle = new TCP(constants.SERVER);
  const err = handle.bind('127.0.0.1', args[0]);
  if (err) throw new Error(`could not bind 127.0.0.1:${args[0]} (error ${err})`);
  return listen.call(this, { _handle: handle }, ...args.slice(1));
};
