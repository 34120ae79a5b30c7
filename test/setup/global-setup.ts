import { buildFixtures } from "./fixtures";

export default async function setup() {
  await buildFixtures();
}
