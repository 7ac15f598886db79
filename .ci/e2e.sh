#!/usr/bin/env bash
# End-to-end over loopback: the `oauth2` client crate, the `device` example and a headless Chromium
# against the host gateway. Installs Chromium and its driver if missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
chromium --version
cargo build --example gateway --example device
# --include-ignored: the browser tests are ignored in plain `cargo test` (no Chromium on a dev box).
timeout 900 cargo test -p oauth2-devices-e2e -- --include-ignored --test-threads 2
ls -l target/e2e-screenshots/
