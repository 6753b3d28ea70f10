#!/usr/bin/env bash
# Prints this tree's release version without a leading "v": `git describe --tags` (e.g. 0.2.0 at
# a tag v0.2.0, 0.2.0-3-gabc1234 after it), or the workspace's crate version when there is no git
# or no tag. make dist/release/install pass it to the build as CNI_RS_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."
if v=$(git describe --tags 2>/dev/null); then
  echo "${v#v}"
else
  sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml
fi
