#!/usr/bin/env bash
# create-topics.sh: creates the Kafka topics taskmanager needs (docs/contract.md section 4) on any cluster. Idempotent:
# existing topics are left as they are and reported, so it is safe to run before every deployment.
set -euo pipefail

readonly PROG=create-topics
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
# Fast start-up for the short-lived tool JVMs.
readonly TOOL_JVM_OPTS=(-Xshare:auto -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xms32m)

usage() {
  cat <<'EOF'
Usage: scripts/create-topics.sh [options]

Creates, if missing:
  <task topic>                  cleanup.policy=delete   (one per --topic; default taskTopic)
  <task topic>.dlq              cleanup.policy=delete
  taskmanager.events            cleanup.policy=delete
  taskmanager.scheduler-state   cleanup.policy=compact
  taskmanager.commands          cleanup.policy=delete
  taskmanager.tasks             cleanup.policy=compact
  taskmanager.users             cleanup.policy=compact

Options (environment in brackets):
  --bootstrap-server HOST:PORT  brokers [KAFKA_BROKERS] (default 127.0.0.1:9092)
  --topic NAME                  a task topic; repeat for several (default taskTopic)
  --partitions N                partitions of new topics [TOPIC_PARTITIONS] (default 12)
  --replication-factor N        replicas of new topics [TOPIC_REPLICATION_FACTOR] (default 1)
  -h, --help                    this text

Kafka tools, first found: $KAFKA_HOME/bin/kafka-topics.sh, kafka-topics.sh on PATH, the jars installed by
scripts/kafka-local (KAFKA_LOCAL_HOME, KAFKA_VERSION). When the jars and a JDK are at hand, all topics are created
by one JVM (under 2 s); otherwise one kafka-topics.sh per topic, run side by side. CREATE_TOPICS_SINGLE_JVM=0 forces
the latter.

Exit codes: 0 all topics exist as required, 1 a topic could not be created or exists with the wrong cleanup.policy,
2 bad usage.
EOF
}

warn() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  local code=$1
  shift
  warn "$*"
  exit "$code"
}
now_us() { printf '%s' "${EPOCHREALTIME//[!0-9]/}"; }
elapsed_s() {
  local tenths=$((($(now_us) - $1) / 100000))
  printf '%d.%d' $((tenths / 10)) $((tenths % 10))
}

BOOTSTRAP=${KAFKA_BROKERS:-127.0.0.1:9092}
PARTITIONS=${TOPIC_PARTITIONS:-12}
REPLICATION=${TOPIC_REPLICATION_FACTOR:-1}
TASK_TOPICS=()

parse_args() {
  while (($#)); do
    case "$1" in
    --bootstrap-server | --brokers | --topic | --partitions | --replication-factor)
      (($# >= 2)) || die 2 "$1 needs a value"
      set_option "$1" "$2"
      shift 2
      ;;
    --bootstrap-server=* | --brokers=* | --topic=* | --partitions=* | --replication-factor=*)
      set_option "${1%%=*}" "${1#*=}"
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      die 2 "unknown argument: $1"
      ;;
    esac
  done
  ((${#TASK_TOPICS[@]})) || TASK_TOPICS=(taskTopic)
  [[ "$PARTITIONS" =~ ^[1-9][0-9]*$ ]] || die 2 "partitions must be a positive number, got '$PARTITIONS'"
  [[ "$REPLICATION" =~ ^[1-9][0-9]*$ ]] || die 2 "replication factor must be a positive number, got '$REPLICATION'"
  [[ -n "$BOOTSTRAP" ]] || die 2 "the bootstrap server must not be empty"
}

set_option() {
  case "$1" in
  --bootstrap-server | --brokers) BOOTSTRAP=$2 ;;
  --topic) TASK_TOPICS+=("$2") ;;
  --partitions) PARTITIONS=$2 ;;
  --replication-factor) REPLICATION=$2 ;;
  esac
}

# TOPICS and POLICIES: the topics to make, in order, without duplicates.
TOPICS=()
POLICIES=()
add_topic() {
  local existing
  for existing in "${TOPICS[@]}"; do [[ "$existing" == "$1" ]] && return 0; done
  # Kafka's own rule; checked here so a typo fails before any topic is made.
  [[ "$1" =~ ^[A-Za-z0-9._-]{1,249}$ && "$1" != . && "$1" != .. ]] ||
    die 2 "illegal topic name '$1': use 1-249 of [A-Za-z0-9._-]"
  TOPICS+=("$1")
  POLICIES+=("$2")
}

plan_topics() {
  local topic
  for topic in "${TASK_TOPICS[@]}"; do
    add_topic "$topic" delete
    add_topic "$topic.dlq" delete
  done
  add_topic taskmanager.events delete
  # The scheduler's last-fired times: only the latest record per key matters, and it must never expire.
  add_topic taskmanager.scheduler-state compact
  # Runtime control (taskscheduler trigger/pause/resume/status) and the answers of the scheduler instances.
  add_topic taskmanager.commands delete
  # Task definitions created over HTTP (taskapi): the latest definition per task id; a tombstone deletes.
  add_topic taskmanager.tasks compact
  # Users and API tokens of taskapi (password and token hashes only); a tombstone removes or revokes.
  add_topic taskmanager.users compact
}

# ---------------------------------------------------------------------------------------------------------------
# finding Kafka's tools

TOPICS_CMD=() # runs TopicCommand (kafka-topics.sh or java)
CLASSPATH_JARS="" # Kafka's jars, when known: enables the single-JVM path

find_tools() {
  local script lib
  if [[ -n "${KAFKA_HOME:-}" ]]; then
    [[ -x "$KAFKA_HOME/bin/kafka-topics.sh" ]] || die 1 "KAFKA_HOME=$KAFKA_HOME has no bin/kafka-topics.sh"
    TOPICS_CMD=("$KAFKA_HOME/bin/kafka-topics.sh")
    [[ -d "$KAFKA_HOME/libs" ]] && CLASSPATH_JARS="$KAFKA_HOME/libs/*"
    return 0
  fi
  if script=$(command -v kafka-topics.sh 2>/dev/null); then
    TOPICS_CMD=("$script")
    lib="$(dirname -- "$(realpath -- "$script")")/../libs"
    [[ -d "$lib" ]] && CLASSPATH_JARS="$(realpath -- "$lib")/*"
    return 0
  fi
  local version="${KAFKA_VERSION:-4.3.1}"
  lib="${KAFKA_LOCAL_HOME:-$ROOT/.kafka-local}/$version/lib"
  if [[ "$(cat "$lib/../installed" 2>/dev/null)" == "$version" ]] && command -v java >/dev/null 2>&1; then
    CLASSPATH_JARS="$lib/*"
    TOPICS_CMD=(java "${TOOL_JVM_OPTS[@]}" -cp "$CLASSPATH_JARS" "${QUIET_LOGGING[@]}" org.apache.kafka.tools.TopicCommand)
    return 0
  fi
  die 1 "no Kafka tools found: set KAFKA_HOME to a Kafka distribution, put kafka-topics.sh on PATH, or run scripts/kafka-local install"
}

# The single-JVM path compiles a small Java program on the fly, which needs a JDK (the java launcher's source mode),
# not only a JRE such as the one in the apache/kafka image.
can_run_single_jvm() {
  [[ "${CREATE_TOPICS_SINGLE_JVM:-1}" != 0 && -n "$CLASSPATH_JARS" ]] || return 1
  local java
  java=$(command -v java 2>/dev/null) || return 1
  [[ -x "$(dirname -- "$(realpath -- "$java")")/javac" ]]
}

# ---------------------------------------------------------------------------------------------------------------
# single JVM: the admin client creates every topic in one request, then reports what is there

readonly CREATE_TOPICS_JAVA='
import java.util.*;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TopicExistsException;

/** Arguments: bootstrap partitions replication name=cleanupPolicy... Exit 0 when every topic is as required. */
public class CreateTopics {
  public static void main(String[] args) throws Exception {
    int partitions = Integer.parseInt(args[1]);
    short replication = Short.parseShort(args[2]);
    Map<String, String> wanted = new LinkedHashMap<>();
    for (int i = 3; i < args.length; i++) {
      String[] nameAndPolicy = args[i].split("=", 2);
      wanted.put(nameAndPolicy[0], nameAndPolicy[1]);
    }
    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    props.put(AdminClientConfig.CLIENT_ID_CONFIG, "create-topics");
    props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
    props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
    int problems = 0;
    try (Admin admin = Admin.create(props)) {
      List<NewTopic> newTopics = new ArrayList<>();
      wanted.forEach((name, policy) -> newTopics.add(
          new NewTopic(name, Optional.of(partitions), Optional.of(replication)).configs(
              policy.equals("compact")
                  // Roll and compact hourly: a takeover reads the partition from its start.
                  ? Map.of("cleanup.policy", policy, "segment.ms", "3600000", "min.cleanable.dirty.ratio", "0.1")
                  : Map.of("cleanup.policy", policy))));
      Map<String, KafkaFuture<Void>> results = admin.createTopics(newTopics).values();
      Set<String> created = new HashSet<>();
      List<String> present = new ArrayList<>();
      for (String name : wanted.keySet()) {
        try {
          results.get(name).get();
          created.add(name);
          present.add(name);
        } catch (ExecutionException e) {
          if (e.getCause() instanceof TopicExistsException) {
            present.add(name);
          } else {
            String hint = e.getCause() instanceof org.apache.kafka.common.errors.TimeoutException
                ? " (is a broker reachable at " + args[0] + "?)" : "";
            System.err.println("create-topics: creating " + name + " failed: " + e.getCause().getMessage() + hint);
            problems++;
          }
        }
      }
      if (present.isEmpty()) System.exit(1);
      Map<String, TopicDescription> descriptions = admin.describeTopics(present).allTopicNames().get();
      List<ConfigResource> resources = new ArrayList<>();
      for (String name : present) resources.add(new ConfigResource(ConfigResource.Type.TOPIC, name));
      Map<ConfigResource, Config> configs = admin.describeConfigs(resources).all().get();
      for (String name : present) {
        TopicDescription d = descriptions.get(name);
        int count = d.partitions().size();
        int replicas = d.partitions().get(0).replicas().size();
        String policy = configs.get(new ConfigResource(ConfigResource.Type.TOPIC, name)).get("cleanup.policy").value();
        System.out.printf("%-8s %s (%d partitions, replication %d, cleanup.policy=%s)%n",
            created.contains(name) ? "created" : "exists", name, count, replicas, policy);
        String want = wanted.get(name);
        if (!Arrays.asList(policy.split(",")).contains(want)) {
          System.err.printf("create-topics: %s has cleanup.policy=%s but needs %s: fix with kafka-configs.sh --bootstrap-server %s --alter --entity-type topics --entity-name %s --add-config cleanup.policy=%s%n",
              name, policy, want, args[0], name, want);
          problems++;
        } else if (count < partitions) {
          System.err.printf("create-topics: warning: %s has %d partitions, fewer than %d: at most %d consumers of a group share it (kafka-topics.sh --alter --partitions raises it)%n",
              name, count, partitions, count);
        }
      }
    }
    System.exit(problems == 0 ? 0 : 1);
  }
}
'

create_single_jvm() {
  local args=() i
  for i in "${!TOPICS[@]}"; do args+=("${TOPICS[$i]}=${POLICIES[$i]}"); done
  printf '%s' "$CREATE_TOPICS_JAVA" >"$WORK/CreateTopics.java"
  java "${TOOL_JVM_OPTS[@]}" -cp "$CLASSPATH_JARS" "${QUIET_LOGGING[@]}" "$WORK/CreateTopics.java" \
    "$BOOTSTRAP" "$PARTITIONS" "$REPLICATION" "${args[@]}"
}

# ---------------------------------------------------------------------------------------------------------------
# one TopicCommand per topic: works with nothing but kafka-topics.sh; the JVMs run side by side to save time

create_per_topic() {
  local i pids=() outcome=() failed=0 out
  # kafka-run-class.sh tunes its JVM for a server; these tools live a second, so start fast instead.
  export KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:-${TOOL_JVM_OPTS[*]}}"
  for i in "${!TOPICS[@]}"; do
    local extra=()
    # Roll and compact hourly: a takeover reads the partition from its start.
    [[ "${POLICIES[$i]}" == compact ]] && extra=(--config segment.ms=3600000 --config min.cleanable.dirty.ratio=0.1)
    "${TOPICS_CMD[@]}" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "${TOPICS[$i]}" \
      --partitions "$PARTITIONS" --replication-factor "$REPLICATION" --config "cleanup.policy=${POLICIES[$i]}" \
      "${extra[@]}" >"$WORK/$i.out" 2>&1 &
    pids+=($!)
  done
  for i in "${!TOPICS[@]}"; do
    out="$WORK/$i.out"
    if ! wait "${pids[$i]}"; then
      grep -v "^WARNING: Due to limitations in metric names" "$out" >&2 || true
      warn "creating ${TOPICS[$i]} failed (output above)"
      failed=1
    elif grep -q "^Created topic" "$out"; then
      outcome[i]=created
    else
      outcome[i]=exists # --if-not-exists says nothing about a topic that was there already
    fi
  done
  ((failed == 0)) || return 1
  if [[ " ${outcome[*]} " != *" exists "* ]]; then
    # All made just now with the settings above: nothing to verify, so save the JVM a describe would cost.
    for i in "${!TOPICS[@]}"; do
      printf '%-8s %s (%s partitions, replication %s, cleanup.policy=%s)\n' created "${TOPICS[$i]}" \
        "$PARTITIONS" "$REPLICATION" "${POLICIES[$i]}"
    done
    return 0
  fi
  report_per_topic "${outcome[@]}"
}

# Prints what is there and checks the cleanup policy. An existing topic may have been made by hand with the wrong
# one; a compacted topic turned "delete" would lose the scheduler's state after the retention time, so that is an
# error, not a note.
report_per_topic() {
  local outcome=("$@") i regex="" description header count replicas policy problems=0
  for i in "${!TOPICS[@]}"; do regex+="${regex:+|}${TOPICS[$i]//./\\.}"; done
  description=$("${TOPICS_CMD[@]}" --bootstrap-server "$BOOTSTRAP" --describe --topic "^($regex)\$" 2>&1) || {
    printf '%s\n' "$description" >&2
    die 1 "describing the topics failed (output above)"
  }
  for i in "${!TOPICS[@]}"; do
    # The summary line of a topic; its partition lines start with a tab.
    header=$(printf '%s\n' "$description" | grep -E "^Topic: ${TOPICS[$i]//./\\.}[[:space:]]" | head -n 1 || true)
    count=$(sed -n 's/.*PartitionCount: *\([0-9]*\).*/\1/p' <<<"$header")
    replicas=$(sed -n 's/.*ReplicationFactor: *\([0-9]*\).*/\1/p' <<<"$header")
    # Describe lists only non-default configs: no cleanup.policy there means the broker default, delete.
    policy=$(grep -o 'cleanup\.policy=[a-z,]*' <<<"$header" | head -n 1 | cut -d= -f2 || true)
    policy=${policy:-delete}
    printf '%-8s %s (%s partitions, replication %s, cleanup.policy=%s)\n' "${outcome[$i]}" "${TOPICS[$i]}" \
      "${count:-?}" "${replicas:-?}" "$policy"
    if [[ ",$policy," != *",${POLICIES[$i]},"* ]]; then
      warn "${TOPICS[$i]} has cleanup.policy=$policy but needs ${POLICIES[$i]}: fix with kafka-configs.sh --bootstrap-server $BOOTSTRAP --alter --entity-type topics --entity-name ${TOPICS[$i]} --add-config cleanup.policy=${POLICIES[$i]}"
      problems=1
    elif [[ -n "$count" ]] && ((count < PARTITIONS)); then
      warn "warning: ${TOPICS[$i]} has $count partitions, fewer than $PARTITIONS: at most $count consumers of a group share it (kafka-topics.sh --alter --partitions raises it)"
    fi
  done
  ((problems == 0))
}

# ---------------------------------------------------------------------------------------------------------------

main() {
  parse_args "$@"
  plan_topics
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  # The tool JVMs log only errors; Kafka 4 uses log4j2, Kafka 3 reload4j, each ignores the other's setting.
  printf 'rootLogger.level = error\nappender.err.type = Console\nappender.err.name = STDERR\nappender.err.target = SYSTEM_ERR\nappender.err.layout.type = PatternLayout\nappender.err.layout.pattern = %%p %%m%%n\nrootLogger.appenderRef.err.ref = STDERR\n' >"$WORK/log4j2.properties"
  printf 'log4j.rootLogger=ERROR, stderr\nlog4j.appender.stderr=org.apache.log4j.ConsoleAppender\nlog4j.appender.stderr.Target=System.err\nlog4j.appender.stderr.layout=org.apache.log4j.PatternLayout\nlog4j.appender.stderr.layout.ConversionPattern=%%p %%m%%n\n' >"$WORK/log4j.properties"
  QUIET_LOGGING=("-Dlog4j2.configurationFile=$WORK/log4j2.properties" "-Dlog4j.configuration=file:$WORK/log4j.properties")
  find_tools

  local t0 status=0
  t0=$(now_us)
  printf 'Creating %d topics on %s (%s partitions, replication %s) if missing\n' "${#TOPICS[@]}" "$BOOTSTRAP" \
    "$PARTITIONS" "$REPLICATION"
  if can_run_single_jvm; then
    create_single_jvm || status=$?
  else
    create_per_topic || status=$?
  fi
  if ((status == 0)); then
    printf 'Topics ready on %s in %s s\n' "$BOOTSTRAP" "$(elapsed_s "$t0")"
  else
    warn "some topics are not as required (see above)"
    exit 1
  fi
}

main "$@"
