// clients/node/scripts/prepack.mjs - what `npm pack` runs first: copy the protos the client
// loads (api/agentry/v1/types.proto and hub.proto, from $AGENTRY_API_DIR or the repository's
// api/) into the package's own api/, so that a packed package needs no checkout, then generate
// the TypeScript types from them (gen-types.mjs). Neither is committed.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const from = process.env.AGENTRY_API_DIR || join(root, "..", "..", "api");
const to = join(root, "api");
if (resolve(from) !== resolve(to)) {
  rmSync(to, { recursive: true, force: true });
  mkdirSync(join(to, "agentry", "v1"), { recursive: true });
  for (const f of ["types.proto", "hub.proto"]) {
    copyFileSync(join(from, "agentry", "v1", f), join(to, "agentry", "v1", f));
  }
}
execFileSync(process.execPath, [join(root, "scripts", "gen-types.mjs"), to], { stdio: "inherit" });
