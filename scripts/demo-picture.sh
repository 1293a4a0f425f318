#!/usr/bin/env bash
# Regenerate docs/demo.png, the README's picture: `lumabot demo` writes its conversation as a
# page (index.html beside its images) and headless Chromium (Debian's `chromium`) photographs it.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
python -m lumabot demo --out "$out/demo" > /dev/null
chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
  --window-size=800,1140 --screenshot="$out/demo.png" "file://$out/demo/index.html" 2> /dev/null
python - "$out/demo.png" docs/demo.png <<'PY'
import sys
from PIL import Image
Image.open(sys.argv[1]).convert("RGB").quantize(colors=128).save(sys.argv[2], optimize=True)
PY
echo "wrote docs/demo.png"
