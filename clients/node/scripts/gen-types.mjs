// clients/node/scripts/gen-types.mjs - generate the TypeScript types of api/agentry/v1 into
// generated/ with proto-loader-gen-types (never committed; `npm run gen-types`, and prepack).
// The types match index.js's LOAD_OPTIONS (snake_case fields, 64-bit integers as strings, enums
// as names); index.d.ts imports them. Imports carry ".js" so that TypeScript's node16/nodenext
// resolution follows them.
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { findApiDir } from "../index.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = createRequire(import.meta.url).resolve("@grpc/proto-loader/build/bin/proto-loader-gen-types.js");
const apiDir = findApiDir(process.argv[2]);
const out = join(root, "generated");
rmSync(out, { recursive: true, force: true });
execFileSync(
  process.execPath,
  [bin, "--keepCase", "--longs=String", "--enums=String", "--defaults", "--oneofs", "--grpcLib=@grpc/grpc-js",
   "--importFileExtension=.js", "-I", apiDir, "-O", out, join("agentry", "v1", "hub.proto")],
  { stdio: "inherit" },
);
console.log(`@agentry/client: types of ${apiDir} written to ${out}`);
