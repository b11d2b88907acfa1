# shellcheck shell=bash
# shellcheck disable=SC2034  # variables are used by the scripts that source this file
# Common settings for testenv/build, testenv/up and testenv/down (sourced, not run).

TESTENV_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions
. "$TESTENV_SRC/versions"

CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/tessera
K8S_BIN_DIR=$CACHE_ROOT/bin/kubernetes-$KUBERNETES_VERSION
ETCD_BIN_DIR=$CACHE_ROOT/bin/etcd-$ETCD_VERSION
BAO_BIN_DIR=$CACHE_ROOT/bin/openbao-$OPENBAO_VERSION
HELM_BIN_DIR=$CACHE_ROOT/bin/helm-$HELM_VERSION
MOTO_VENV=$CACHE_ROOT/venv/moto-$MOTO_VERSION

STATE=${TESSERA_TESTENV_DIR:-/tmp/tessera-testenv}

# Fixed, uncommon loopback ports. TESSERA_TESTENV_PORT_OFFSET shifts all of them, so that
# several environments (each with its own TESSERA_TESTENV_DIR) can run side by side on one
# machine, e.g. one per work tree; the tests read every address from $STATE/env.
# `up` records the offset in the state dir, and a later run without the variable (a test
# that restarts a server with testenv/up, say) reuses it instead of reaching for the ports
# of another environment.
if [[ -z ${TESSERA_TESTENV_PORT_OFFSET:-} && -s $STATE/port-offset ]]; then
	TESSERA_TESTENV_PORT_OFFSET=$(<"$STATE/port-offset")
fi
PORT_OFFSET=${TESSERA_TESTENV_PORT_OFFSET:-0}
[[ $PORT_OFFSET =~ ^[0-9]{1,4}$ ]] || { printf '[testenv] ERROR: TESSERA_TESTENV_PORT_OFFSET must be a number below 10000\n' >&2; exit 1; }
ETCD_CLIENT_PORT=$((23790 + PORT_OFFSET))
ETCD_PEER_PORT=$((23800 + PORT_OFFSET))
APISERVER_PORT=$((16443 + PORT_OFFSET))
KCM_PORT=$((16257 + PORT_OFFSET))
POSTGRES_PORT=$((15432 + PORT_OFFSET))
BAO_PORT=$((18200 + PORT_OFFSET))
MOTO_PORT=$((15000 + PORT_OFFSET))
HARBOR_SIM_PORT=$((18880 + PORT_OFFSET))

# Order in which `up` starts the servers (`down` stops them in reverse).
SERVERS=(etcd kube-apiserver kube-controller-manager postgres openbao moto harbor-sim)

# kubectl's discovery and HTTP caches. Inside the state dir, so they are purged with the
# cluster they describe: a cache left by an earlier cluster (default ~/.kube/cache) lists
# resource types the fresh one does not serve yet, and kubectl then answers "the server
# doesn't have a resource type".
KUBE_CACHE_DIR=$STATE/kube-cache

log() { printf '[testenv] %s\n' "$*" >&2; }
die() { printf '[testenv] ERROR: %s\n' "$*" >&2; exit 1; }

# Directory holding the server binaries (initdb, pg_ctl, postgres) of the pinned PostgreSQL
# major version, or empty. Only that version is used: another major would pass the tests
# here and fail elsewhere (catalog columns and defaults differ between majors).
pg_bin_dir() {
	if [[ -x /usr/lib/postgresql/$POSTGRES_MAJOR/bin/postgres ]]; then
		echo "/usr/lib/postgresql/$POSTGRES_MAJOR/bin"
	fi
}

pidfile() { echo "$STATE/pids/$1.pid"; }

# Prints the pid of a server started by `up` if that process is still alive.
server_pid() {
	local f pid
	f=$(pidfile "$1")
	[[ -s $f ]] || return 1
	pid=$(<"$f")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}
