# shellcheck shell=sh
# initcontainer-cpuset: CPU-list arithmetic and the static CPU manager model.
# Pure functions (no cgroups, no runc), sourced by run.sh; POSIX sh + awk, so
# it can be checked on any host:  sh ./cpuset.sh test
#
# CPU lists are kernel "list format" strings ("0-2,5"); an empty string is
# the empty set.

# cs_expand LIST: one CPU number per line, sorted, unique.
cs_expand() {
    printf '%s\n' "$1" | awk -F, '{
        for (i = 1; i <= NF; i++) {
            if ($i == "") continue
            n = split($i, r, "-")
            lo = r[1] + 0; hi = (n > 1 ? r[2] : r[1]) + 0
            for (c = lo; c <= hi; c++) print c
        }
    }' | sort -n -u
}

# cs_format: CPU numbers on stdin (any order) -> canonical list "0-2,5".
cs_format() {
    sort -n -u | awk '
        NF == 0 { next }
        { c = $1 + 0
          if (started && c == hi + 1) { hi = c; next }
          if (started) out = out sep (lo == hi ? lo : lo "-" hi)
          if (started) sep = ","
          lo = c; hi = c; started = 1 }
        END { if (started) out = out sep (lo == hi ? lo : lo "-" hi); print out }'
}

# cs_canon LIST: the canonical form of a list.
cs_canon() { cs_expand "$1" | cs_format; }

# cs_size LIST
cs_size() { cs_expand "$1" | awk 'NF { n++ } END { print n + 0 }'; }

# cs_minus A B: A without B.
cs_minus() {
    { cs_expand "$2" | sed 's/^/b /'; cs_expand "$1" | sed 's/^/a /'; } |
        awk '$1 == "b" { drop[$2] = 1; next } !($2 in drop) { print $2 }' | cs_format
}

# cs_union A B
cs_union() { { cs_expand "$1"; cs_expand "$2"; } | cs_format; }

# cs_take N LIST: the N lowest-numbered CPUs of LIST (what takeByTopology
# picks on a flat topology: one socket, one thread per core, cores in CPU
# order; the guest's vCPUs look like that). Empty when LIST has fewer.
cs_take() {
    _n=$1
    [ "$(cs_size "$2")" -ge "$_n" ] || { echo; return 0; }
    cs_expand "$2" | head -n "$_n" | cs_format
}

# cpu_model NCPUS RESERVED INIT_CPUS APP_CPUS REUSE
#   NCPUS      online CPUs of the node (0..NCPUS-1)
#   RESERVED   CPUs reserved for the system (--reserved-cpus / kube+system
#              reserved): the static policy takes the lowest-numbered ones
#   INIT_CPUS  the init container's CPU request = limit (an integer), or
#              "none" when the init container declares no resources (the
#              seed's Deployment)
#   APP_CPUS   the app container's CPU request = limit (an integer)
#   REUSE      1: init-container CPUs are offered to the app container
#              (kubelet >= 1.19, kubernetes PR 90419, cpusToReuse)
# Sets:
#   M_QOS          guaranteed | burstable (the pod's QoS class: a pod is
#                  Guaranteed only if every container, init containers
#                  included, has CPU and memory limits equal to requests)
#   M_ALL          all CPUs;  M_RESERVED;  M_ASSIGNABLE (all - reserved)
#   M_INIT_SET     the init container's exclusive CPUs (empty: shared pool)
#   M_APP_EXPECTED the exclusive CPUs the pod's author expects the app
#                  container to get (APP_CPUS of the assignable CPUs)
#   M_APP_SET      what the static policy assigns to the app container;
#                  for a non-Guaranteed pod the shared pool (default cpuset)
#   M_SHARED       the shared pool after the pod's allocations
#   M_ADMIT        1, or 0 when the static policy cannot allocate
#   M_NOTE         a sentence saying why
cpu_model() {
    _ncpus=$1 _res=$2 _init=$3 _app=$4 _reuse=$5
    M_ALL=$(seq 0 $((_ncpus - 1)) | cs_format)
    M_RESERVED=
    [ "$_res" -gt 0 ] && M_RESERVED=$(seq 0 $((_res - 1)) | cs_format)
    M_ASSIGNABLE=$(cs_minus "$M_ALL" "$M_RESERVED")
    M_APP_EXPECTED=$(cs_take "$_app" "$M_ASSIGNABLE")
    M_INIT_SET=
    M_APP_SET=
    M_SHARED=$M_ALL
    M_ADMIT=1
    if [ "$_init" = none ]; then
        # The init container has no limits: the pod is Burstable and the
        # static policy gives none of its containers exclusive CPUs; they
        # run on the shared pool (all CPUs but other pods' exclusive ones).
        M_QOS=burstable
        M_APP_SET=$M_SHARED
        M_NOTE="the init container declares no resources, so the pod is Burstable, not Guaranteed: the static policy pins nothing and the app container runs on the shared pool $M_SHARED"
        return 0
    fi
    M_QOS=guaranteed
    M_INIT_SET=$(cs_take "$_init" "$M_ASSIGNABLE")
    if [ -z "$M_INIT_SET" ]; then
        M_ADMIT=0
        M_NOTE="not enough assignable CPUs ($M_ASSIGNABLE) for the init container's $_init"
        return 0
    fi
    _free=$(cs_minus "$M_ASSIGNABLE" "$M_INIT_SET")
    if [ "$_reuse" = 1 ]; then
        # allocateCPUs: assignable = free pool + this pod's reusable
        # (init-container) CPUs, lowest first.
        _pool=$(cs_union "$_free" "$M_INIT_SET")
        M_NOTE="init-container CPUs $M_INIT_SET are offered for reuse (cpusToReuse, kubelet >= 1.19)"
    else
        # The init container's exclusive CPUs stay assigned to it (released
        # only when the container is removed): the app container gets others.
        _pool=$_free
        M_NOTE="init-container CPUs $M_INIT_SET are not reused (kubelet < 1.19): the app container is allocated from $_free"
    fi
    M_APP_SET=$(cs_take "$_app" "$_pool")
    if [ -z "$M_APP_SET" ]; then
        M_ADMIT=0
        M_NOTE="$M_NOTE; only $(cs_size "$_pool") CPUs left for the app container's $_app: admission fails (not enough cpus available)"
        return 0
    fi
    if [ "$_reuse" = 1 ]; then
        M_SHARED=$(cs_minus "$M_ALL" "$M_APP_SET")
    else
        M_SHARED=$(cs_minus "$(cs_minus "$M_ALL" "$M_APP_SET")" "$M_INIT_SET")
    fi
}

# Self-test on the host: sh ./cpuset.sh test
if [ "${1:-}" = test ]; then
    _fail=0
    check() {
        if [ "$2" != "$3" ]; then
            echo "FAIL $1: got '$2', want '$3'"
            _fail=1
        fi
    }
    check canon "$(cs_canon '3,0-1,2,7,5-6')" "0-3,5-7"
    check minus "$(cs_minus 0-3 1)" "0,2-3"
    check union "$(cs_union 2-3 1)" "1-3"
    check take "$(cs_take 2 0,2-3)" "0,2"
    check take-short "$(cs_take 3 1)" ""
    check size "$(cs_size '')" 0
    cpu_model 4 1 1 2 0
    check "1.15 init" "$M_INIT_SET" 1
    check "1.15 app" "$M_APP_SET" 2-3
    check "1.15 expected" "$M_APP_EXPECTED" 1-2
    check "1.15 shared" "$M_SHARED" 0
    cpu_model 4 1 1 2 1
    check "1.19 app" "$M_APP_SET" 1-2
    check "1.19 shared" "$M_SHARED" 0,3
    cpu_model 4 1 2 2 0
    check "1.15 equal admit" "$M_ADMIT" 0
    cpu_model 4 1 2 2 1
    check "1.19 equal app" "$M_APP_SET" 1-2
    cpu_model 4 1 none 2 1
    check "none qos" "$M_QOS" burstable
    check "none app" "$M_APP_SET" 0-3
    [ $_fail = 0 ] && echo ok
    exit $_fail
fi
