#!/usr/bin/env bash
# The nightly on one machine: the same steps as ci/github-nightly.yml and
# ci/gitlab-ci.yml (setup, build, shards, merge, report, compare), run in
# sequence. Meant for cron or a systemd timer; see ci/README.md.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: ci/nightly.sh [-h] [-s SHARDS] [-p PROFILE] [-m MATRIX] [-r RESULTS] [--no-setup]

Runs the repro matrix the way the CI nightly does, on this machine:
  1. setup    cargo xtask setup (QEMU, qemu-img, mmdebstrap, OpenSSL headers,
              pkg-config through apt)
  2. build    cargo build --release --locked -p repro
  3. shards   repro matrix --profile PROFILE --shard I/SHARDS for I = 1..SHARDS,
              one after another (the default, one shard 1/1, is the whole matrix)
  4. merge    repro merge <shard runs> --out RESULTS/nightly, then repro report
  5. compare  repro compare RESULTS/nightly-previous RESULTS/nightly

Folders in RESULTS (default: results/ in the repository):
  nightly/           the latest night: summary.json, summary.md, junit.xml,
                     report.html and one folder per cell
  nightly-previous/  the last good night, the baseline for the comparison
  nightly.status     how the latest night ended: ok, regression, error or
                     incomplete; only an `ok` night becomes the next baseline
  nightly.compare.md the comparison as Markdown
  nightly.work/      the night in progress (left behind when interrupted)

Options (each also as an environment variable):
  -s, --shards N     SHARDS: shards to run one after another (default 1)
  -p, --profile P    REPRO_PROFILE: matrix.toml profile (default ci)
  -m, --matrix FILE  REPRO_MATRIX: matrix file (default matrix.toml)
  -r, --results DIR  REPRO_NIGHTLY_RESULTS: results folder (default results)
      --no-setup     NIGHTLY_SETUP=0: skip cargo xtask setup (no apt)
  -h, --help         this text

Passed through to repro: REPRO_CACHE_DIR (cache of kernels and guest
images), REPRO_DEBIAN_MIRROR and REPRO_DEBIAN_SECURITY_MIRROR (mirror
URLs; else the host's apt sources).

Exit status: 0 the night ran and nothing regressed; 1 a cell regressed
against the previous night; 2 bad usage or bad input (matrix, profile);
3 no regression, but the night is incomplete (a cell ended in `error`, a
shard or the comparison failed) or another ci/nightly.sh holds the lock;
130 interrupted.
EOF
}

# die MESSAGE [EXIT_STATUS (default 2)]
die() {
    echo "nightly: error: $1" >&2
    exit "${2:-2}"
}

say() {
    echo "nightly: $*" >&2
}

shards="${SHARDS:-1}"
profile="${REPRO_PROFILE:-ci}"
matrix="${REPRO_MATRIX:-}"
results="${REPRO_NIGHTLY_RESULTS:-results}"
setup="${NIGHTLY_SETUP:-1}"

while [ "$#" -gt 0 ]; do
    case "$1" in
        -h | --help)
            usage
            exit 0
            ;;
        -s | --shards)
            [ "$#" -ge 2 ] || die "$1 needs a value"
            shards="$2"
            shift 2
            ;;
        -p | --profile)
            [ "$#" -ge 2 ] || die "$1 needs a value"
            profile="$2"
            shift 2
            ;;
        -m | --matrix)
            [ "$#" -ge 2 ] || die "$1 needs a value"
            matrix="$2"
            shift 2
            ;;
        -r | --results)
            [ "$#" -ge 2 ] || die "$1 needs a value"
            results="$2"
            shift 2
            ;;
        --no-setup)
            setup=0
            shift
            ;;
        *)
            usage >&2
            die "unknown argument: $1"
            ;;
    esac
done

case "$shards" in
    '' | *[!0-9]*) die "SHARDS must be a whole number, got '$shards'" ;;
esac
shards=$((10#$shards))
[ "$shards" -ge 1 ] || die "SHARDS must be at least 1"

# Relative paths are taken from where the script was started; the work
# happens in the repository (cargo, matrix.toml, scenarios/).
abs() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s\n' "$PWD/$1" ;;
    esac
}
if [ -n "$matrix" ]; then
    matrix="$(abs "$matrix")"
    [ -f "$matrix" ] || die "no matrix file $matrix"
fi
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "$results" in
    /*) ;;
    *) results="$repo/$results" ;;
esac
cd "$repo"

# cron starts with a bare PATH: find rustup's cargo.
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || die "cargo not found (install Rust with rustup first)"

mkdir -p "$results"
work="$results/nightly.work"
latest="$results/nightly"
previous="$results/nightly-previous"
status_file="$results/nightly.status"
compare_md="$results/nightly.compare.md"

# One nightly at a time (cron may start the next while one still runs).
if command -v flock >/dev/null; then
    exec 9>"$results/.nightly.lock"
    flock -n 9 || die "another ci/nightly.sh is running on $results" 3
fi

trap 'say "interrupted; the unfinished night is in $work"; exit 130' INT TERM HUP

# 1. setup
if [ "$setup" != 0 ]; then
    say "setup: cargo xtask setup"
    cargo xtask setup
fi

# 2. build
say "build: cargo build --release --locked -p repro"
cargo build --release --locked -p repro
repro="${CARGO_TARGET_DIR:-target}/release/repro"
case "$repro" in
    /*) ;;
    *) repro="$repo/$repro" ;;
esac
[ -x "$repro" ] || die "built binary not found at $repro" 3

matrix_args=(--profile "$profile")
if [ -n "$matrix" ]; then
    matrix_args+=(--matrix "$matrix")
fi

# 3. shards, one after another
rm -rf "$work"
mkdir -p "$work/shards"
incomplete=0
total_cells=0
for ((i = 1; i <= shards; i++)); do
    shard="$i/$shards"
    rc=0
    cells="$("$repro" matrix "${matrix_args[@]}" --shard "$shard" --list)" || rc=$?
    case "$rc" in
        0) ;;
        130) die "interrupted" 130 ;;
        *) die "repro matrix --list failed for shard $shard (exit $rc)" 2 ;;
    esac
    if [ -z "$cells" ]; then
        say "shard $shard: no cells"
        continue
    fi
    n="$(printf '%s\n' "$cells" | wc -l)"
    total_cells=$((total_cells + n))
    say "shard $shard: $n cell(s)"
    rc=0
    "$repro" matrix "${matrix_args[@]}" --shard "$shard" --results "$work/shards/$i" || rc=$?
    # repro's exit codes: README.md, "Exit codes".
    case "$rc" in
        0) ;;
        1)
            # Judged against the previous night by `repro compare` below.
            say "shard $shard: some cell did not meet its expectation (see the report)"
            ;;
        2) die "repro matrix rejected its input for shard $shard" 2 ;;
        3)
            say "shard $shard: some cell ended in \`error\` (infrastructure)"
            incomplete=1
            ;;
        130) die "interrupted in shard $shard; the unfinished night is in $work" 130 ;;
        *)
            say "shard $shard: repro matrix failed (exit $rc)"
            incomplete=1
            ;;
    esac
done
[ "$total_cells" -gt 0 ] || die "profile $profile has no cells"

# 4. merge and report. Layout: $work/shards/I/<run-id>/summary.json (a
# scenario's own files sit deeper, in cell folders).
mapfile -t runs < <(find "$work/shards" -mindepth 3 -maxdepth 3 -name summary.json -printf '%h\n' | sort)
[ "${#runs[@]}" -gt 0 ] || die "no shard produced results" 3
say "merge: ${#runs[@]} shard run(s)"
# The merged run is named after its folder: a dated name tells the nights
# apart in the comparison; the folder is then moved to $latest.
merged="$work/nightly-$(date -u +%Y%m%d-%H%M%S)"
"$repro" merge "${runs[@]}" --out "$merged"
"$repro" report "$merged"

# Rotate: the latest night becomes the baseline only if it ended `ok`
# (as on GitHub, where the baseline is the last successful run); a night
# with regressions or errors is dropped and the older baseline stays.
if [ -d "$latest" ]; then
    last_status="$(cat "$status_file" 2>/dev/null || echo ok)"
    if [ "$last_status" = ok ]; then
        rm -rf "$previous"
        mv "$latest" "$previous"
    else
        say "the last night ended '$last_status': keeping the older baseline"
        rm -rf "$latest"
    fi
fi
mv "$merged" "$latest"
rm -rf "$work"
echo incomplete > "$status_file"
rm -f "$compare_md"

# 5. compare
regressed=0
if [ -f "$previous/summary.json" ]; then
    rc=0
    "$repro" compare "$previous" "$latest" || rc=$?
    "$repro" compare "$previous" "$latest" --markdown > "$compare_md" || true
    case "$rc" in
        0) ;;
        1) regressed=1 ;;
        130) die "interrupted during the comparison" 130 ;;
        *)
            say "repro compare failed (exit $rc)"
            incomplete=1
            ;;
    esac
else
    say "no previous night in $previous: nothing to compare against"
fi

say "report: $latest/report.html (summary: $latest/summary.md)"
if [ "$regressed" -eq 1 ]; then
    echo regression > "$status_file"
    say "REGRESSION against the previous night (see $compare_md)"
    exit 1
fi
if [ "$incomplete" -eq 1 ]; then
    echo error > "$status_file"
    say "the night is incomplete (see the messages above)"
    exit 3
fi
echo ok > "$status_file"
say "ok"
