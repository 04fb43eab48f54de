#!/usr/bin/env bash
set -o pipefail -o errexit
echo "Building web-vault from ${REPO_URL}"
git -c init.defaultBranch=main init /vault
cd /vault
git remote add origin "$REPO_URL"
git fetch --depth 1 origin "$COMMIT_HASH"
git -c advice.detachedHead=false checkout FETCH_HEAD
npm ci && npm run build
mv apps/web/build /web-vault
