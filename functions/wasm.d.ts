// wrangler (and the vitest workers pool) bundle `.wasm` imports as compiled modules:
// Workers forbid compiling wasm from bytes at run time.
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}
