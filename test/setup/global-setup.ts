import { buildFixtures } from "./fixtures";

export default function setup() {
  buildFixtures();
}
