// The module's start-up cost in V8 (the engine workerd embeds): compiling the
// wasm and instantiating it, with every import a no-op. One measurement per
// process (V8 caches a module's code by its bytes within a process), so the
// caller runs this several times. Prints JSON: the milliseconds of each step.
//
//   node [--no-wasm-lazy-compilation] tests/bench/startup.mjs <module.wasm>
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const bytes = readFileSync(process.argv[2]);
let t = performance.now();
const module = new WebAssembly.Module(bytes);
const compile_ms = performance.now() - t;
const imports = {};
for (const imp of WebAssembly.Module.imports(module)) {
  const m = (imports[imp.module] ??= {});
  if (imp.kind === 'function') m[imp.name] = () => undefined;
  else if (imp.kind === 'tag') m[imp.name] = WebAssembly.JSTag ?? new WebAssembly.Tag({ parameters: ['externref'] });
  else if (imp.kind === 'memory') m[imp.name] = new WebAssembly.Memory({ initial: 17 });
  else if (imp.kind === 'table') m[imp.name] = new WebAssembly.Table({ initial: 128, element: 'externref' });
}
t = performance.now();
new WebAssembly.Instance(module, imports);
const instantiate_ms = performance.now() - t;
console.log(JSON.stringify({ bytes: bytes.length, compile_ms, instantiate_ms }));
