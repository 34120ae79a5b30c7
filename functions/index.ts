// The Worker: the app with our kernels, imported statically (Workers forbid compiling wasm
// from bytes at run time).
import kernelsModule from "../kernels/build/kernels.wasm";
import { createApp } from "./app";

export const { app, models } = createApp(kernelsModule);
export default app;
// The Durable Object class behind the METER binding (wrangler.toml).
export { CustomerMeter } from "./metering/meter";
