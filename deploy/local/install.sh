#!/usr/bin/env bash
# Installs the pinned test servers and tools of DESIGN section 8 into a cache folder
# outside any clone, so that every fresh clone on this machine (CI included) reuses it.
# A tool whose pinned binary is already there is not rebuilt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"

mkdir -p "$TOOLS_BIN" "$TOOLS_DIR/logs"

# go_tool NAME MODULE@VERSION: builds a Go program from the module proxy.
go_tool() {
	local name=$1 spec=$2 stamp="$TOOLS_BIN/.$1.version"
	if [[ -x "$TOOLS_BIN/$name" && "$(cat "$stamp" 2>/dev/null)" == "$spec" ]]; then
		echo "install: $name ($spec) cached"
		return 0
	fi
	echo "install: building $name from $spec (several minutes on 2 cores)"
	local tmp
	tmp=$(mktemp -d)
	if ! GOBIN="$tmp" GOFLAGS=-buildvcs=false go install "$spec" >"$TOOLS_DIR/logs/install-$name.log" 2>&1; then
		echo "install: building $name failed; see $TOOLS_DIR/logs/install-$name.log" >&2
		tail -20 "$TOOLS_DIR/logs/install-$name.log" >&2
		rm -rf "$tmp"
		return 1
	fi
	mv "$tmp/$name" "$TOOLS_BIN/$name"
	rm -rf "$tmp"
	echo "$spec" >"$stamp"
}

# azurite: from npm, into its own prefix.
npm_azurite() {
	local stamp="$TOOLS_DIR/azurite/.version"
	if [[ -x "$TOOLS_DIR/azurite/node_modules/.bin/azurite-blob" && "$(cat "$stamp" 2>/dev/null)" == "$AZURITE_VERSION" ]]; then
		echo "install: azurite ($AZURITE_VERSION) cached"
		return 0
	fi
	echo "install: azurite $AZURITE_VERSION from npm"
	mkdir -p "$TOOLS_DIR/azurite"
	(cd "$TOOLS_DIR/azurite" && npm install --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >"$TOOLS_DIR/logs/install-azurite.log" 2>&1) || {
		echo "install: npm install azurite failed; see $TOOLS_DIR/logs/install-azurite.log" >&2
		return 1
	}
	echo "$AZURITE_VERSION" >"$stamp"
}

# chromium: Debian's package, for the headless browser test of the Web UI.
apt_chromium() {
	if command -v chromium >/dev/null 2>&1; then
		echo "install: chromium ($(chromium --version 2>/dev/null | head -1)) present"
		return 0
	fi
	local sudo=()
	[[ $(id -u) == 0 ]] || sudo=(sudo -n)
	echo "install: chromium from Debian's packages"
	if ! { "${sudo[@]}" apt-get install -y --no-install-recommends chromium ||
		{ "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y --no-install-recommends chromium; }; } >"$TOOLS_DIR/logs/install-chromium.log" 2>&1; then
		echo "install: apt-get install chromium failed; see $TOOLS_DIR/logs/install-chromium.log" >&2
		return 1
	fi
}

wanted=${*:-temporal minio fake-gcs-server azurite rclone workflowcheck promtool helm chromium}
pids=()
for tool in $wanted; do
	case $tool in
	temporal) go_tool temporal "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION" & ;;
	minio) go_tool minio "github.com/minio/minio@$MINIO_VERSION" & ;;
	fake-gcs-server) go_tool fake-gcs-server "github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION" & ;;
	rclone) go_tool rclone "github.com/rclone/rclone@$RCLONE_VERSION" & ;;
	workflowcheck) go_tool workflowcheck "go.temporal.io/sdk/contrib/tools/workflowcheck@$WORKFLOWCHECK_VERSION" & ;;
	promtool) go_tool promtool "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION" & ;;
	helm) go_tool helm "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" & ;;
	azurite) npm_azurite & ;;
	chromium) apt_chromium & ;;
	*) echo "install: unknown tool $tool (known: temporal minio fake-gcs-server azurite rclone workflowcheck promtool helm chromium)" >&2; exit 2 ;;
	esac
	pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
