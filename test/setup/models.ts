// Global setup of every test project: finds the real test models once, as `npm start` finds
// its model (EDGEINFER_MODEL_DIR, the download cache, ../shared/models, else a download checked
// by sha256), and passes their paths to the tests, the SEED service and the CLI they run in
// EDGEINFER_TEST_MODELS.

import { resolveModelFiles } from "../../scripts/default-model";
import { TEST_MODEL_FILES, TEST_MODELS_ENV } from "../support/models";

export default async function setup(): Promise<void> {
  process.env[TEST_MODELS_ENV] = JSON.stringify(await resolveModelFiles(TEST_MODEL_FILES));
}
