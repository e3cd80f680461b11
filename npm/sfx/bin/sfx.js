#!/usr/bin/env node
// The `sfx` command of the npm package: finds the binary that the platform's
// optional dependency (@sfx-cli/sfx-<os>-<cpu>) brought, and runs it with the same
// arguments, standard streams and environment; exits with its exit code, or is
// ended by the same signal. The pattern of esbuild's and biome's npm packages.
"use strict";

const { spawn } = require("node:child_process");

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
  try {
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
