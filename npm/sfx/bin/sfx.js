#!/usr/bin/env node
// The `sfx` command of the npm package: finds the binary that the platform's
// optional dependency (@sfx-cli/sfx-<os>-<cpu>) brought, and runs it with the same
// arguments, standard streams and environment; exits with its exit code, or is
// ended by the same signal. The pattern of esbuild's and biome's npm packages.
"use strict";

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

// process.platform + process.arch -> the package that carries that binary.
// Windows on Arm runs the x64 build under emulation.
const PACKAGES = {
  "linux x64": "@sfx-cli/sfx-linux-x64",
  "linux arm64": "@sfx-cli/sfx-linux-arm64",
  "darwin x64": "@sfx-cli/sfx-darwin-x64",
  "darwin arm64": "@sfx-cli/sfx-darwin-arm64",
  "win32 x64": "@sfx-cli/sfx-win32-x64",
  "win32 arm64": "@sfx-cli/sfx-win32-x64",
};

function fail(message) {
  process.stderr.write(`sfx (npm): error: ${message}\n`);
  process.exit(1);
}

function binaryPath() {
  const key = `${process.platform} ${process.arch}`;
  const pkg = PACKAGES[key];
  if (!pkg) {
    fail(
      `there is no prebuilt sfx for ${key}; build it from source with Rust: cargo install --locked --git https://github.com/sfx-cli/sfx`,
    );
  }
  const exe = process.platform === "win32" ? "sfx.exe" : "sfx";
  // Only where the package managers put our own dependency: nested in this package's
  // node_modules, or beside this package in the same node_modules (npm, pnpm, yarn). Not
  // require.resolve's walk up every parent directory and NODE_PATH: when the platform
  // package is missing, that would run whatever another user planted in /node_modules,
  // /tmp/node_modules or ~/node_modules. (__dirname is the real path: node resolves the
  // bin symlink.)
  const here = path.join(__dirname, "..");
  const candidates = [
    path.join(here, "node_modules", pkg, "bin", exe),
    path.join(here, "..", "..", pkg, "bin", exe),
  ];
  const found = candidates.find((c) => fs.existsSync(c));
  if (found) return found;
  // Yarn Plug'n'Play has no node_modules; its resolver only serves declared dependencies.
  try {
    if (!process.versions.pnp) throw new Error("not Plug'n'Play");
    return require.resolve(`${pkg}/bin/${exe}`);
  } catch {
    return fail(
      `the package ${pkg}, which holds the sfx binary for ${key}, is not installed. ` +
        "npm leaves it out when optional dependencies are omitted (--omit=optional, --no-optional) " +
        "or the lockfile was made on another platform: reinstall with `npm install -g @sfx-cli/sfx`",
    );
  }
}

const child = spawn(binaryPath(), process.argv.slice(2), {
  stdio: "inherit",
  windowsHide: false,
});

// Signals sent to this launcher (a `kill`, a CI runner cancelling) go on to sfx,
// which decides what they mean (`sfx watch` stops cleanly on SIGTERM). A Ctrl-C
// at a terminal reaches both processes; the launcher just waits for sfx.
const forwarded = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];
const handlers = {};
for (const signal of forwarded) {
  handlers[signal] = () => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill(signal);
      } catch {
        // The child is already gone; its exit is handled below.
      }
    }
  };
  process.on(signal, handlers[signal]);
}

child.on("error", (err) => {
  fail(`could not run ${child.spawnfile}: ${err.message}`);
});

child.on("exit", (code, signal) => {
  for (const s of forwarded) {
    process.removeListener(s, handlers[s]);
  }
  if (signal) {
    // End the same way, so the caller sees the signal (shells show 128 + N).
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code === null ? 1 : code);
});
