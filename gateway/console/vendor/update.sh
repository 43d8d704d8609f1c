#!/usr/bin/env bash
# Refresh the vendored libraries from the npm registry (see README.md here); run from anywhere, needs npm.
set -euo pipefail
PREACT=10.27.2 HTM=3.1.1 ECHARTS=6.1.0 SWAGGER=5.35.0
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
for spec in "preact@$PREACT" "htm@$HTM" "echarts@$ECHARTS" "swagger-ui-dist@$SWAGGER"; do
  name="${spec%@*}"
  mkdir -p "$name" && npm pack -q "$spec" >/dev/null && tar xzf "$name"-*.tgz -C "$name"
done
sed '/sourceMappingURL/d' preact/package/dist/preact.module.js > "$here/preact.module.js"
sed -e 's#from"preact"#from"./preact.module.js"#g' -e '/sourceMappingURL/d' \
  preact/package/hooks/dist/hooks.module.js > "$here/preact-hooks.module.js"
cp preact/package/LICENSE "$here/LICENSE.preact"
cp htm/package/dist/htm.module.js "$here/htm.module.js"
cp htm/package/LICENSE "$here/LICENSE.htm"
cp echarts/package/dist/echarts.esm.min.js "$here/echarts.esm.min.js"
cp echarts/package/LICENSE "$here/LICENSE.echarts"
cp echarts/package/NOTICE "$here/NOTICE.echarts"
mkdir -p "$here/swagger-ui"
for f in swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt; do
  cp "swagger-ui-dist/package/$f" "$here/swagger-ui/$f"
done
echo "vendored: preact $PREACT, htm $HTM, echarts $ECHARTS, swagger-ui-dist $SWAGGER"
