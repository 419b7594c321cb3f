# Reads the model arguments of the damage-cost scripts (sourced by run_damage_cost_gpu.sh and run_damage_cost_app.sh).
#
#   read_damage_cost_models EXTRA ARG...
#
# The leading arguments that are not options are PARTS_CONFIG PARTS_CKPT DAMAGE_CONFIG DAMAGE_CKPT PRICE_MODEL, or
# CONFIG CKPT PRICE_MODEL for one joint model, followed by EXTRA more paths. Sets model_options (--parts-config,
# --parts-ckpt and, for two different models, --damage-config and --damage-ckpt), price_model, extra_paths (the
# EXTRA paths) and remaining (the arguments after them), all paths made absolute. Returns 1 when the count is wrong
# and 2 when a model file or the price model does not exist (named on stderr); the caller prints its usage.

read_damage_cost_models() {
    local extra="$1"
    shift
    local positional=()
    while [ $# -gt 0 ] && [[ "$1" != --* ]]; do
        positional+=("$(realpath -m "$1")")
        shift
    done
    remaining=("$@")
    if [ ${#positional[@]} -eq $((3 + extra)) ]; then
        positional=("${positional[0]}" "${positional[1]}" "${positional[@]}")
    elif [ ${#positional[@]} -ne $((5 + extra)) ]; then
        return 1
    fi
    local path
    for path in "${positional[@]:0:5}"; do
        [ -e "$path" ] || { echo "$(basename "$0"): $path does not exist" >&2; return 2; }
    done
    model_options=(--parts-config "${positional[0]}" --parts-ckpt "${positional[1]}")
    if [ "${positional[0]}" != "${positional[2]}" ] || [ "${positional[1]}" != "${positional[3]}" ]; then
        model_options+=(--damage-config "${positional[2]}" --damage-ckpt "${positional[3]}")
    fi
    price_model="${positional[4]}"
    extra_paths=("${positional[@]:5}")
}
