#!/usr/bin/env bash
# Local demo of arnsync, with no cloud and no cluster: everything runs on 127.0.0.1.
#
#   moto (AWS emulator) <- aws-fault-proxy (counts calls) <- arnsync run -> kube-test-server <- kubectl
#
# Steps: install what is missing (tests/setup.sh), build the binaries, start the servers and the
# operator, seed AWS, apply crds/ and deploy/examples/, show the synced Secrets, rotate the AWS
# secret (AWSCURRENT moves), wait for the Secret and for one rollout of the Deployment, print the
# AWS call counts. Every process it starts is stopped and its temp dir removed on exit, also on
# failure. Exits non-zero naming the step that did not happen.
#
# Env: CARGO_TARGET_DIR (default ./target), ARNSYNC_DEMO_TIMEOUT (seconds per wait, default 60),
# ARNSYNC_DEMO_KEEP=1 keeps the temp dir (logs, kubeconfig).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
KUBECTL="$ROOT/.tools/bin/kubectl"
PY="$ROOT/.venv/bin/python"
MOTO="${ARNSYNC_MOTO_SERVER:-$ROOT/.venv/bin/moto_server}"
TIMEOUT="${ARNSYNC_DEMO_TIMEOUT:-60}"
NS=demo

WORK="$(mktemp -d "${TMPDIR:-/tmp}/arnsync-demo.XXXXXX")"
PIDS=()
STEP="start"

# Stops every process this script started (TERM, then KILL after 5s), removes the temp dir, and
# on failure names the step and shows the end of the operator's log.
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ $rc -ne 0 ]]; then
    echo >&2
    echo "demo: FAILED at step: $STEP" >&2
    if [[ -s "$WORK/arnsync.log" ]]; then
      echo "demo: last lines of the operator log:" >&2
      tail -n 25 "$WORK/arnsync.log" >&2
    fi
  fi
  if [[ "${ARNSYNC_DEMO_KEEP:-0}" == 1 ]]; then
    echo "demo: kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() {
  STEP="$1"
  printf '\n==> %s\n' "$1"
}

fail() {
  echo "demo: $STEP: $*" >&2
  exit 1
}

# wait_for SECONDS WHAT CMD...: runs CMD every 0.2s until it succeeds; fails the step after SECONDS.
wait_for() {
  local secs="$1" what="$2" deadline
  shift 2
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "$what did not happen within ${secs}s"
    sleep 0.2
  done
}

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# spawn NAME CMD...: starts CMD in the background with its output in $WORK/NAME.log.
spawn() {
  local name="$1"
  shift
  "$@" </dev/null >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
}

# listening_url NAME: waits for the "listening on URL" line of a test server and prints URL.
listening_url() {
  local log="$WORK/$1.log" pid="${PIDS[${#PIDS[@]}-1]}"
  wait_for 30 "$1 listening" grep -q '^listening on ' "$log"
  kill -0 "$pid" 2>/dev/null || fail "$1 exited: $(tail -n 5 "$log")"
  sed -n 's/^listening on //p' "$log" | head -n 1
}

k() { "$KUBECTL" --kubeconfig "$WORK/kubeconfig" "$@"; }

# aws OP [ARGS...]: Secrets Manager and Parameter Store calls to moto with boto3 (directly, not
# through the proxy, so the proxy counts only the operator's calls).
aws() {
  AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_DEFAULT_REGION=us-east-1 \
    "$PY" - "$MOTO_URL" "$@" <<'PY'
import json, sys
import boto3

url, op, args = sys.argv[1], sys.argv[2], sys.argv[3:]
sm = boto3.client("secretsmanager", endpoint_url=url)
ssm = boto3.client("ssm", endpoint_url=url)
sqs = boto3.client("sqs", endpoint_url=url)
events = boto3.client("events", endpoint_url=url)
ACCOUNT = "123456789012"

def current_version(name):
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    return next(v for v, s in stages.items() if "AWSCURRENT" in s)

if op == "seed":
    sm.create_secret(Name="demo/db", SecretString=json.dumps(
        {"username": "app", "password": "demo-password-1", "host": "db.demo.internal"}))
    for name, value in [("/demo/app/LOG_LEVEL", "info"),
                        ("/demo/app/GREETING", "hello from Parameter Store"),
                        ("/demo/app/feature/checkout", "on")]:
        ssm.put_parameter(Name=name, Value=value, Type="String")
    print(f"Secrets Manager  demo/db  AWSCURRENT={current_version('demo/db')}")
    for p in ssm.get_parameters_by_path(Path="/demo/app/", Recursive=True)["Parameters"]:
        print(f"Parameter Store  {p['Name']}  version {p['Version']}")
    # The event queue of the README's set-up: an EventBridge rule for Secrets Manager's
    # "Secret Label Updated" with an SQS queue as its target.
    queue = sqs.create_queue(QueueName="arnsync-events")["QueueUrl"]
    events.put_rule(Name="arnsync-secret-labels", EventPattern=json.dumps(
        {"source": ["aws.secretsmanager"], "detail-type": ["Secret Label Updated"]}))
    events.put_targets(Rule="arnsync-secret-labels", Targets=[
        {"Id": "queue", "Arn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:arnsync-events"}])
    print(f"SQS queue {queue}, fed by EventBridge rule arnsync-secret-labels")
    with open(args[0], "w") as f:
        f.write(queue)
elif op == "rotate":
    before = current_version("demo/db")
    value = json.loads(sm.get_secret_value(SecretId="demo/db", VersionStage="AWSCURRENT")["SecretString"])
    value["password"] = args[0]
    out = sm.put_secret_value(SecretId="demo/db", SecretString=json.dumps(value))
    print(f"PutSecretValue demo/db: AWSCURRENT {before} -> {current_version('demo/db')}")
    # What Secrets Manager puts on the bus when AWSCURRENT moves (moto emits no events itself).
    import time
    arn = sm.describe_secret(SecretId="demo/db")["ARN"]
    events.put_events(Entries=[{
        "Source": "aws.secretsmanager", "DetailType": "Secret Label Updated", "Resources": [arn],
        "Detail": json.dumps({"name": "demo/db", "labelUpdated": "AWSCURRENT",
                              "versionId": out["VersionId"]})}])
    with open(args[1], "w") as f:
        f.write(str(time.time_ns()))
    print("put_events: Secret Label Updated demo/db")
else:
    sys.exit(f"unknown op {op}")
PY
}

secret_key() {
  k get secret "$1" -n "$NS" -o "go-template={{index .data \"$2\" | base64decode}}" 2>/dev/null
}

template_fingerprint() {
  k get deployment demo-app -n "$NS" \
    -o 'jsonpath={.spec.template.metadata.annotations.arnsync\.io/secret-versions}'
}

# The operator records the fingerprint of a workload it sees for the first time, without a
# rollout: on the pod template if present, else on the Deployment's own metadata.
fingerprint_recorded() {
  local fp
  fp="$(template_fingerprint)$(k get deployment demo-app -n "$NS" \
    -o 'jsonpath={.metadata.annotations.arnsync\.io/secret-versions}')"
  [[ -n "$fp" ]]
}

password_is() { [[ "$(secret_key db-credentials password)" == "$1" ]]; }

fingerprint_moved() {
  local fp
  fp="$(template_fingerprint)"
  [[ -n "$fp" && "$fp" != "$1" ]]
}

ready() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1/readyz")" == 200 ]]; }

step "install what is missing (tests/setup.sh)"
bash tests/setup.sh
command -v curl >/dev/null || fail "curl is needed"

step "build arnsync, kube-test-server, aws-fault-proxy (cargo build --bins --workspace)"
cargo build --locked --bins --workspace
for bin in arnsync kube-test-server aws-fault-proxy; do
  [[ -x "$TARGET/debug/$bin" ]] || fail "$TARGET/debug/$bin missing after the build"
done

step "start moto (AWS emulator) behind aws-fault-proxy"
MOTO_PORT="$(free_port)"
MOTO_URL="http://127.0.0.1:$MOTO_PORT"
spawn moto "$MOTO" -H 127.0.0.1 -p "$MOTO_PORT"
wait_for 60 "moto answering on $MOTO_URL" curl -sf -o /dev/null --max-time 2 "$MOTO_URL/moto-api/"
spawn proxy "$TARGET/debug/aws-fault-proxy" --listen 127.0.0.1:0 --upstream "$MOTO_URL"
PROXY_URL="$(listening_url proxy)"
echo "moto $MOTO_URL; aws-fault-proxy $PROXY_URL"

step "start kube-test-server (Kubernetes API on loopback) and apply crds/arnsync.io.yaml"
spawn kube "$TARGET/debug/kube-test-server" --listen 127.0.0.1:0 --kubeconfig "$WORK/kubeconfig"
KUBE_URL="$(listening_url kube)"
echo "Kubernetes API $KUBE_URL (kubeconfig in $WORK)"
k apply --server-side -f crds/arnsync.io.yaml
k wait --for=condition=Established --timeout="${TIMEOUT}s" -f crds/arnsync.io.yaml

step "start arnsync run (rotation checks every 1s without events, restart debounce 1s)"
METRICS_URL="http://127.0.0.1:$(free_port)"
spawn arnsync env KUBECONFIG="$WORK/kubeconfig" \
  AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 \
  AWS_EC2_METADATA_DISABLED=true RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 \
  "$TARGET/debug/arnsync" run --metrics-addr "${METRICS_URL#http://}" \
  --rotation-check-interval 1s --restart-debounce 1s
wait_for "$TIMEOUT" "operator ready on $METRICS_URL/readyz" ready "$METRICS_URL"
echo "operator ready; metrics on $METRICS_URL/metrics"

step "seed AWS: Secrets Manager demo/db, Parameter Store /demo/app/*, an EventBridge rule to an SQS queue"
aws seed "$WORK/queue_url"

step "apply deploy/examples/: namespace, SecretStore (pointed at the local emulator), ExternalSecrets"
# The examples are written for real AWS; only the store's endpoints are added here, before the
# store is created, so no call ever leaves this machine.
k apply --server-side -f deploy/examples/00-namespace.yaml
# The stores also get the event queue (spec.arnsync.eventQueue): rotations then arrive by event,
# and polling slows to its safety interval (--event-safety-interval, 10 minutes).
"$PY" - "$PROXY_URL" deploy/examples/10-secretstore.yaml "$(cat "$WORK/queue_url")" <<'PYEOF' | k apply --server-side -f -
import json, sys
url, path, queue = sys.argv[1], sys.argv[2], sys.argv[3]
import yaml
docs = [d for d in yaml.safe_load_all(open(path)) if d]
for doc in docs:
    doc["spec"]["arnsync"] = {
        "endpoints": {"secretsManager": url, "ssm": url, "sts": url, "sqs": url},
        "eventQueue": queue,
    }
print("\n---\n".join(json.dumps(d) for d in docs))
PYEOF
k apply --server-side -f deploy/examples/20-externalsecret-db.yaml \
  -f deploy/examples/30-externalsecret-config.yaml

step "wait for the synced Secrets"
wait_for "$TIMEOUT" "ExternalSecret db Ready" k wait --for=condition=Ready --timeout=2s externalsecret/db -n "$NS"
wait_for "$TIMEOUT" "ExternalSecret app-config Ready" k wait --for=condition=Ready --timeout=2s externalsecret/app-config -n "$NS"
password_is demo-password-1 || fail "db-credentials does not hold the seeded password"
k get secret db-credentials -n "$NS" -o yaml
echo "-- decoded (fake demo values):"
# shellcheck disable=SC2016 # a Go template, not a shell expansion
k get secret db-credentials -n "$NS" \
  -o 'go-template={{range $k, $v := .data}}{{printf "%s=%s\n" $k ($v | base64decode)}}{{end}}'
echo "-- app-config, decoded:"
# shellcheck disable=SC2016
k get secret app-config -n "$NS" \
  -o 'go-template={{range $k, $v := .data}}{{printf "%s=%s\n" $k ($v | base64decode)}}{{end}}'

step "kubectl get externalsecrets -n demo"
k get externalsecrets -n "$NS"
k get secretstores -n "$NS"
echo "-- the versions in use (status.sources):"
k get externalsecrets -n "$NS" -o custom-columns='NAME:.metadata.name,SECRET:.status.targetName,SYNCED:.status.refreshTime,SECRET-VERSIONS:.status.sources[*].versionId,PARAMETER-VERSIONS:.status.sources[*].version'

step "apply deploy/examples/40-deployment.yaml: Deployment demo-app (restart-on-rotation)"
# Applied once both Secrets exist, so the fingerprint the operator records when it first sees
# the Deployment covers both, and only the rotation below changes it.
# Only the Deployment: re-applying the store's file would drop the local endpoints added above.
k apply --server-side -f deploy/examples/40-deployment.yaml
wait_for "$TIMEOUT" "operator recording the fingerprint of deployment demo-app" fingerprint_recorded
BEFORE="$(template_fingerprint)"
echo "deployment arnsync.io/secret-versions: $(k get deployment demo-app -n "$NS" \
  -o 'jsonpath={.metadata.annotations.arnsync\.io/secret-versions}') (recorded on first sighting)"
echo "pod-template arnsync.io/secret-versions: ${BEFORE:-<none: the first sighting does not roll>}"

events_ready() {
  [[ "$(k get secretstore aws -n "$NS" -o 'jsonpath={.status.conditions[?(@.type=="EventsReady")].status}')" == True ]]
}
wait_for "$TIMEOUT" "SecretStore aws reading its event queue (EventsReady)" events_ready
echo "SecretStore aws: EventsReady=True ($(k get secretstore aws -n "$NS" -o 'jsonpath={.status.conditions[?(@.type=="EventsReady")].message}'))"

step "rotate demo/db in AWS (PutSecretValue: AWSCURRENT moves), and its event (put_events)"
aws rotate demo-password-2 "$WORK/event_at"

step "wait for the Secret to follow the rotation (by event: polling is at its safety interval)"
wait_for "$TIMEOUT" "db-credentials password changing to the rotated value" password_is demo-password-2
NOW_NS="$("$PY" -c 'import time; print(time.time_ns())')"
echo "db-credentials password=$(secret_key db-credentials password)"
echo "from the event to the Secret update: $(( (NOW_NS - $(cat "$WORK/event_at")) / 1000000 )) ms (kubectl polls every 0.2 s)"

step "wait for one rollout of deployment demo-app"
wait_for "$TIMEOUT" "pod-template annotation arnsync.io/secret-versions changing" fingerprint_moved "$BEFORE"
AFTER="$(template_fingerprint)"
echo "pod-template arnsync.io/secret-versions: ${BEFORE:-<none>} -> $AFTER"
# One rollout: the template changed once, and stays put for a few debounce windows.
deadline=$((SECONDS + 3))
while ((SECONDS < deadline)); do
  [[ "$(template_fingerprint)" == "$AFTER" ]] || fail "the pod template changed again (more than one rollout)"
  sleep 0.2
done
echo "pod template changed once: one rollout"

step "AWS calls made by the operator"
echo "-- operator /metrics (arnsync_aws_requests_total):"
curl -sf --max-time 5 "$METRICS_URL/metrics" | grep '^arnsync_aws_requests_total' ||
  fail "no arnsync_aws_requests_total in $METRICS_URL/metrics"
echo "-- aws-fault-proxy $PROXY_URL/__proxy/counts:"
curl -sf --max-time 5 "$PROXY_URL/__proxy/counts" |
  "$PY" -c '
import json, sys
c = json.load(sys.stdin)
for key, n in sorted(c["calls"].items()):
    print("%6d  %s" % (n, key))
print("%6d  total" % c["total"])'

STEP="done"
printf '\n==> demo finished: synced, rotated, rolled out once\n'
