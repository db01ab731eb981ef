#!/usr/bin/env bash
# Builds the npm package in wasm/dist from a clean checkout: the engine compiled to
# wasm32-unknown-unknown (profile `wasm`: opt-level z, LTO, panic=abort), bindings by
# wasm-bindgen-cli of exactly the version in Cargo.lock, size-optimised by wasm-opt (npm
# `binaryen`: Debian's 108 mangles wasm-bindgen's externref table), import and export names
# shortened (shorten-names.mjs), the TypeScript layer type-checked and compiled with
# declarations, and all JS bundled and minified into one ES module by esbuild. Prints the
# gzipped size. Intermediate files live in a temporary directory, so builds to different --out
# directories do not disturb each other.
#
#   wasm/build.sh [--features corrupt-uploads] [--out DIR]     (default DIR: wasm/dist)
#   (cd wasm && npm pack)                                      # the installable tarball
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out="$here/dist"
features=()
while (($#)); do
    case "$1" in
        --features) features=(--features "$2"); shift 2 ;;
        --out) out=$(realpath -m "$2"); shift 2 ;;
        *) echo "usage: $0 [--features LIST] [--out DIR]" >&2; exit 2 ;;
    esac
done
target_dir=${CARGO_TARGET_DIR:-$root/target}

# The TypeScript compiler, wasm-opt (npm `binaryen`) and esbuild come from the lock file.
[ -d "$here/node_modules/binaryen" ] && [ -x "$here/node_modules/.bin/esbuild" ] ||
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

rustup target list --installed | grep -qx wasm32-unknown-unknown ||
    rustup target add wasm32-unknown-unknown

version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$root/Cargo.lock")
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
    echo "installing wasm-bindgen-cli $version (matches the wasm-bindgen crate in Cargo.lock)"
    cargo install wasm-bindgen-cli --version "$version"
fi

cargo build --locked -p peer-wasm --profile wasm --target wasm32-unknown-unknown "${features[@]}" \
    --manifest-path "$root/Cargo.toml"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/js"
cp "$here"/js/*.ts "$work/js/"
engine="$work/js/engine"
wasm-bindgen --target web --out-dir "$engine" "$target_dir/wasm32-unknown-unknown/wasm/peer_wasm.wasm"
# Merging similar functions first (the core's generic collections come in near-identical copies)
# saves about 0.9 KB gzipped. --low-memory-unused: Rust puts the stack first, at [0, 1 MiB)
# growing down, so addresses below 1024 are touched only by a stack 1023 KiB deep; it lets
# wasm-opt fold more address offsets (about 1 KB). Not inlining functions of one caller unless
# tiny: 4% more raw bytes, but 5 KB less gzipped (the calls repeat, inlined bodies do not).
node "$here/node_modules/binaryen/bin/wasm-opt" --merge-similar-functions -Oz --converge --low-memory-unused \
    --one-caller-inline-max-function-size=5 \
    --strip-producers --strip-target-features \
    --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    -o "$engine/peer_wasm_bg.wasm" "$engine/peer_wasm_bg.wasm"
node "$here/shorten-names.mjs" "$engine"

# Type-check the TypeScript layer and emit the package's declarations, then bundle it with the
# glue into one minified ES module; the glue loads the .wasm from next to itself.
echo "{ \"extends\": \"$here/tsconfig.json\", \"compilerOptions\": { \"rootDir\": \"js\", \"outDir\": \"tsc\", \"emitDeclarationOnly\": true }, \"include\": [\"js/*.ts\"] }" \
    >"$work/tsconfig.json"
node "$here/node_modules/typescript/bin/tsc" -p "$work/tsconfig.json"
rm -rf "$out"
mkdir -p "$out"
"$here/node_modules/.bin/esbuild" "$work/js/index.ts" --bundle --minify --format=esm --target=es2020 \
    --log-level=warning --outfile="$out/index.js"
cp "$work"/tsc/*.d.ts "$engine/peer_wasm_bg.wasm" "$out/"

wasm_gz=$(gzip -9c "$out/peer_wasm_bg.wasm" | wc -c)
js_gz=$(gzip -9c "$out/index.js" | wc -c)
echo "built $out: .wasm $wasm_gz B gzipped, JS (glue + integrations, minified) $js_gz B gzipped, total $((wasm_gz + js_gz)) B gzipped"
