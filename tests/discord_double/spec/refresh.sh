#!/bin/sh
# Refresh openapi.json (and LICENSE) from github.com/discord/discord-api-spec.
# Usage: tests/discord_double/spec/refresh.sh [ref]   (default: main)
# Then run tests/test_discord_double.py and the Discord-facing tests: a new spec may
# tighten a limit that shipcord's requests break.
set -eu
ref="${1:-main}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone --quiet --depth 1 --branch "$ref" https://github.com/discord/discord-api-spec.git "$work/spec" 2>/dev/null \
    || { git clone --quiet https://github.com/discord/discord-api-spec.git "$work/spec" && git -C "$work/spec" checkout --quiet "$ref"; }
commit="$(git -C "$work/spec" rev-parse HEAD)"
date="$(git -C "$work/spec" log -1 --format=%cs)"
subject="$(git -C "$work/spec" log -1 --format=%s)"
cp "$work/spec/specs/openapi.json" "$here/openapi.json"
cp "$work/spec/LICENSE" "$here/LICENSE"
python3 - "$here/README.md" "$commit" "$date" "$subject" <<'PY'
import re, sys
path, commit, date, subject = sys.argv[1:]
text = open(path, encoding="utf-8").read()
text = re.sub(r"at commit `[0-9a-f]{40}`\n\([^)]*\)", f'at commit `{commit}`\n({date}, "{subject}")', text)
open(path, "w", encoding="utf-8").write(text)
PY
echo "openapi.json is now discord/discord-api-spec@$commit ($date)"
