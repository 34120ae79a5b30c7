// Workers KV as the model store (functions/store/kv.ts), inside workerd on a real KV binding,
// held to the same store contract as the in-memory and folder stores (test/node/store.test.ts).

import { kvStore } from "../../functions/store/kv";
import { storeContract } from "../support/store-contract";
import { testEnv } from "./support";

// each test under a prefix of its own: the binding is shared with whatever else this file's isolate seeded
let run = 0;
storeContract("Workers KV", async () => kvStore(testEnv.MODELS, "Workers KV (test binding)"), () => `contract-${++run}/`);
