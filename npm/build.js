#!/usr/bin/env node
// Build the npm packages from release archives:
//
//   node npm/build.js --version 0.2.0 --archives dist --out npm-dist [--only linux-x64,...]
//
// For each platform below whose archive (sfx-VERSION-TARGET.tar.gz/.zip, as
// scripts/package.sh names them) is in --archives, writes --out/sfx-<os>-<cpu>/:
// package `@sfx-cli/sfx-<os>-<cpu>` with `os`/`cpu` set, so npm installs it only on
// that platform, holding bin/sfx(.exe). Always writes --out/sfx/: the main package
// `@sfx-cli/sfx` with the launcher (npm/sfx/bin/sfx.js) and one optional dependency
// per platform at exactly VERSION. `npm pack`/`npm publish` each directory,
// platform packages first. Every platform must be present unless --only names a
// subset (the tests build linux-x64 alone).
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const os = require("node:os");
const { execFileSync } = require("node:child_process");

const SCOPE = "@sfx-cli";
const PLATFORMS = [
  { name: "linux-x64", os: "linux", cpu: "x64", target: "x86_64-unknown-linux-musl" },
  { name: "linux-arm64", os: "linux", cpu: "arm64", target: "aarch64-unknown-linux-musl" },
  { name: "darwin-x64", os: "darwin", cpu: "x64", target: "x86_64-apple-darwin" },
  { name: "darwin-arm64", os: "darwin", cpu: "arm64", target: "aarch64-apple-darwin" },
  { name: "win32-x64", os: "win32", cpu: ["x64", "arm64"], target: "x86_64-pc-windows-msvc" },
];
const ROOT = path.resolve(__dirname, "..");

function die(message) {
  process.stderr.write(`npm/build.js: ${message}\n`);
  process.exit(message.startsWith("usage") ? 2 : 1);
}

function args(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (!["--version", "--archives", "--out", "--only"].includes(flag) || value === undefined) {
      die("usage: node npm/build.js --version X.Y.Z --archives DIR --out DIR [--only linux-x64,...]");
    }
    out[flag.slice(2)] = value;
  }
  if (!out.version || !out.archives || !out.out) {
    die("usage: node npm/build.js --version X.Y.Z --archives DIR --out DIR [--only linux-x64,...]");
  }
  out.version = out.version.replace(/^v/, "");
  if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(out.version)) {
    die(`--version ${out.version} is not a semantic version such as 0.2.0`);
  }
  return out;
}

function common(version) {
  const cargo = fs.readFileSync(path.join(ROOT, "Cargo.toml"), "utf8");
  const repo = (cargo.match(/^repository = "(.*)"$/m) || [])[1];
  return {
    version,
    description: (cargo.match(/^description = "(.*)"$/m) || [])[1],
    license: "MIT OR Apache-2.0",
    repository: repo ? { type: "git", url: `git+${repo}.git` } : undefined,
    homepage: repo,
  };
}

function copyDocs(dir) {
  for (const f of ["README.md", "LICENSE-MIT", "LICENSE-APACHE"]) {
    fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
  }
}

function writeJson(file, value) {
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

function unpack(archive, into) {
  if (archive.endsWith(".zip")) {
    execFileSync("unzip", ["-q", archive, "-d", into], { stdio: "inherit" });
  } else {
    execFileSync("tar", ["-xzf", archive, "-C", into], { stdio: "inherit" });
  }
}

function main() {
  const a = args(process.argv.slice(2));
  const only = a.only ? a.only.split(",") : null;
  for (const o of only || []) {
    if (!PLATFORMS.some((p) => p.name === o)) die(`--only: unknown platform ${o}`);
  }
  const meta = common(a.version);
  fs.rmSync(a.out, { recursive: true, force: true });
  fs.mkdirSync(a.out, { recursive: true });

  for (const p of PLATFORMS) {
    if (only && !only.includes(p.name)) continue;
    const windows = p.os === "win32";
    const base = `sfx-${a.version}-${p.target}`;
    const archive = path.join(a.archives, `${base}${windows ? ".zip" : ".tar.gz"}`);
    if (!fs.existsSync(archive)) die(`no archive for ${p.name}: ${archive} is missing`);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sfx-npm-"));
    try {
      unpack(archive, tmp);
      const exe = windows ? "sfx.exe" : "sfx";
      const dir = path.join(a.out, `sfx-${p.name}`);
      fs.mkdirSync(path.join(dir, "bin"), { recursive: true });
      fs.copyFileSync(path.join(tmp, base, exe), path.join(dir, "bin", exe));
      fs.chmodSync(path.join(dir, "bin", exe), 0o755);
      copyDocs(dir);
      writeJson(path.join(dir, "package.json"), {
        name: `${SCOPE}/sfx-${p.name}`,
        ...meta,
        description: `The sfx binary for ${p.name} (installed by ${SCOPE}/sfx).`,
        os: [p.os],
        cpu: Array.isArray(p.cpu) ? p.cpu : [p.cpu],
        files: ["bin/", "README.md", "LICENSE-MIT", "LICENSE-APACHE"],
        preferUnplugged: true,
      });
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }

  const main = path.join(a.out, "sfx");
  fs.mkdirSync(path.join(main, "bin"), { recursive: true });
  fs.copyFileSync(path.join(__dirname, "sfx", "bin", "sfx.js"), path.join(main, "bin", "sfx.js"));
  fs.chmodSync(path.join(main, "bin", "sfx.js"), 0o755);
  copyDocs(main);
  writeJson(path.join(main, "package.json"), {
    name: `${SCOPE}/sfx`,
    ...meta,
    bin: { sfx: "bin/sfx.js" },
    files: ["bin/", "README.md", "LICENSE-MIT", "LICENSE-APACHE"],
    engines: { node: ">=18" },
    optionalDependencies: Object.fromEntries(
      PLATFORMS.map((p) => [`${SCOPE}/sfx-${p.name}`, a.version]),
    ),
  });
  process.stdout.write(`${fs.readdirSync(a.out).sort().join("\n")}\n`);
}

main();
