#!/usr/bin/env bash
# create-acls.sh: grants each taskmanager program the ACLs it needs and no more (docs/acls.md), one principal per
# program, on any cluster with an authorizer. Idempotent: an ACL that exists already is left as it is, so it is safe to
# run before every deployment. Run it with an admin's --command-config; topics are made by create-topics.sh.
set -euo pipefail

readonly PROG=create-acls
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
# Fast start-up for the short-lived tool JVMs.
# shellcheck source=scripts/lib/kafka-tools.sh
source "$ROOT/scripts/lib/kafka-tools.sh"

usage() {
  cat <<'EOF'
Usage: scripts/create-acls.sh [options]

Grants the minimal ACLs of each program whose principal is given (docs/acls.md has the table and the reasons):
  --scheduler-principal P   taskscheduler (run): fires tasks in transactions, answers commands
  --consumer-principal P    taskconsumer (run): reads task topics, writes DLQs and events
  --api-principal P         taskapi (run, and `taskapi users`): tasks, users, dashboard, DLQ routes
  --operator-principal P    an operator's CLI: taskscheduler trigger/pause/resume/status/backfill, taskconsumer status/dlq
A principal is TYPE:NAME, e.g. User:taskscheduler. Only the given ones are granted; nobody may create topics.

Options (environment in brackets):
  --bootstrap-server HOST:PORT  brokers [KAFKA_BROKERS] (default 127.0.0.1:9092)
  --command-config FILE         an admin's client properties (security.protocol, sasl.*, ssl.*), as Kafka's tools
                                take them [KAFKA_CONFIG]. Its contents are never printed.
  --task-topic NAME             a task topic; repeat for several (default taskTopic); its DLQ is NAME.dlq
  --consumer-group NAME         taskconsumer's group; repeat for several (default taskConsumer)
  --scheduler-group-prefix P    prefix of the scheduler groups and their transactional ids (default taskscheduler-):
                                every scheduler --group must start with it (the defaults taskscheduler-<schedule>
                                and taskscheduler-api do)
  --no-api-commands             do not let taskapi write taskmanager.commands: its dashboard then shows no scheduler
                                instances, and its trigger/pause/resume of schedule-file entries and backfills
                                answer 503
  --dry-run                     print the ACLs and the kafka-acls.sh commands, change nothing
  -h, --help                    this text

Kafka tools, first found: $KAFKA_HOME/bin/kafka-acls.sh, kafka-acls.sh on PATH, the jars installed by
scripts/kafka-local (KAFKA_LOCAL_HOME, KAFKA_VERSION). With the jars and a JDK at hand, every kafka-acls.sh command
runs in one JVM (AclCommand called in turn); otherwise one kafka-acls.sh per command. CREATE_ACLS_SINGLE_JVM=0 forces
the latter.

Exit codes: 0 all ACLs are in place (or printed, with --dry-run), 1 an ACL could not be added, 2 bad usage,
3 the cluster could not be reached or refused the connection (TLS, SASL), 4 not authorized to add ACLs.
EOF
}

BOOTSTRAP=${KAFKA_BROKERS:-127.0.0.1:9092}
COMMAND_CONFIG=${KAFKA_CONFIG:-}
SCHEDULER="" CONSUMER="" API="" OPERATOR=""
TASK_TOPICS=()
CONSUMER_GROUPS=()
SCHEDULER_PREFIX=taskscheduler-
API_COMMANDS=1
DRY_RUN=0

parse_args() {
  while (($#)); do
    case "$1" in
    --bootstrap-server | --brokers | --command-config | --scheduler-principal | --consumer-principal | \
      --api-principal | --operator-principal | --task-topic | --consumer-group | --scheduler-group-prefix)
      (($# >= 2)) || die 2 "$1 needs a value"
      set_option "$1" "$2"
      shift 2
      ;;
    --bootstrap-server=* | --brokers=* | --command-config=* | --scheduler-principal=* | --consumer-principal=* | \
      --api-principal=* | --operator-principal=* | --task-topic=* | --consumer-group=* | --scheduler-group-prefix=*)
      set_option "${1%%=*}" "${1#*=}"
      shift
      ;;
    --no-api-commands)
      API_COMMANDS=0
      shift
      ;;
    --dry-run)
      DRY_RUN=1
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
  ((${#CONSUMER_GROUPS[@]})) || CONSUMER_GROUPS=(taskConsumer)
  [[ -n "$SCHEDULER$CONSUMER$API$OPERATOR" ]] ||
    die 2 "no principal given: name at least one of --scheduler-principal, --consumer-principal, --api-principal, --operator-principal"
  local p t
  for p in "$SCHEDULER" "$CONSUMER" "$API" "$OPERATOR"; do
    [[ -z "$p" || "$p" =~ ^[A-Za-z]+:.+$ ]] || die 2 "a principal is TYPE:NAME such as User:taskapi, got '$p'"
  done
  for t in "${TASK_TOPICS[@]}"; do
    [[ "$t" =~ ^[A-Za-z0-9._-]{1,245}$ && "$t" != . && "$t" != .. ]] ||
      die 2 "illegal topic name '$t': use 1-245 of [A-Za-z0-9._-] (its DLQ adds .dlq)"
    [[ "$t" != taskmanager.* && "$t" != __* && "$t" != *.dlq ]] ||
      die 2 "$t is an internal topic (taskmanager.*, __*, *.dlq), not a task topic"
  done
  [[ -n "$SCHEDULER_PREFIX" ]] || die 2 "the scheduler group prefix must not be empty: it would grant every group"
  [[ -n "$BOOTSTRAP" ]] || die 2 "the bootstrap server must not be empty"
  if [[ -n "$COMMAND_CONFIG" ]]; then
    [[ -f "$COMMAND_CONFIG" && -r "$COMMAND_CONFIG" ]] || die 2 "cannot read the --command-config file $COMMAND_CONFIG"
    COMMAND_CONFIG=$(realpath -- "$COMMAND_CONFIG")
  fi
}

set_option() {
  case "$1" in
  --bootstrap-server | --brokers) BOOTSTRAP=$2 ;;
  --command-config) COMMAND_CONFIG=$2 ;;
  --scheduler-principal) SCHEDULER=$2 ;;
  --consumer-principal) CONSUMER=$2 ;;
  --api-principal) API=$2 ;;
  --operator-principal) OPERATOR=$2 ;;
  --task-topic) TASK_TOPICS+=("$2") ;;
  --consumer-group) CONSUMER_GROUPS+=("$2") ;;
  --scheduler-group-prefix) SCHEDULER_PREFIX=$2 ;;
  esac
}

# ---------------------------------------------------------------------------------------------------------------
# the ACLs, derived from what each program does (src/; docs/acls.md explains each)

readonly EVENTS=taskmanager.events STATE=taskmanager.scheduler-state COMMANDS=taskmanager.commands
readonly TASKS=taskmanager.tasks USERS=taskmanager.users CANCELS=taskmanager.cancels AUDIT=taskmanager.audit
readonly CALENDARS=taskmanager.calendars LOGS=taskmanager.logs
# Throw-away groups of src/shared/kafka: follow.ts (taskmanager-follower-<uuid>) and read-to-end.ts
# (taskmanager-reader-<uuid>); each is deleted when done.
readonly FOLLOWER_GROUPS=taskmanager-follower- READER_GROUPS=taskmanager-reader-
# src/shared/dlq-replay.ts: taskmanager-dlq-replay-<task topic>.dlq
readonly REPLAY_TXN=taskmanager-dlq-replay-

# One ACL per line: principal TAB resource type TAB pattern type TAB name TAB operations (comma-separated) TAB why.
ACLS=()
acl() {
  local principal=$1 type=$2 pattern=$3 ops=$4 why=$5 name
  shift 5
  for name in "$@"; do ACLS+=("$principal"$'\t'"$type"$'\t'"$pattern"$'\t'"$name"$'\t'"$ops"$'\t'"$why"); done
}

plan_acls() {
  local tasks=("${TASK_TOPICS[@]}") dlqs=() replays=() t
  for t in "${TASK_TOPICS[@]}"; do
    dlqs+=("$t.dlq")
    replays+=("$REPLAY_TXN$t.dlq")
  done
  if [[ -n "$SCHEDULER" ]]; then
    local s=$SCHEDULER
    acl "$s" Topic LITERAL Read,Write "its group reads its state partitions at takeover; its transactions write the new fire state" "$STATE"
    acl "$s" Topic LITERAL Read,Write "fires task messages (in transactions); a backfill reads which instants have one" "${tasks[@]}"
    acl "$s" Topic LITERAL Read,Write "SCHEDULED and ALERT events, in the same transactions; follows the status events of runs with a deadline pending" "$EVENTS"
    acl "$s" Topic LITERAL Read,Write "follows trigger/pause/resume/status/backfill commands and writes its answers" "$COMMANDS"
    acl "$s" Topic LITERAL Read,DescribeConfigs "follows the tasks created over HTTP (forgets deleted ids after its delete.retention.ms)" "$TASKS"
    acl "$s" Topic LITERAL Read "follows the exclusion calendars those tasks name" "$CALENDARS"
    acl "$s" Group PREFIXED Read "its scheduler group (taskscheduler-<schedule>, taskscheduler-api): joins, commits offsets" "$SCHEDULER_PREFIX"
    acl "$s" Group PREFIXED Read,Delete "throw-away groups following commands, tasks and events, deleted at stop" "$FOLLOWER_GROUPS"
    acl "$s" Group PREFIXED Read,Delete "throw-away groups of a backfill reading a task topic partition, deleted after" "$READER_GROUPS"
    acl "$s" TransactionalId PREFIXED Write "<group>/state-<partition>: one transactional producer per state partition" "$SCHEDULER_PREFIX"
  fi
  if [[ -n "$CONSUMER" ]]; then
    local c=$CONSUMER
    acl "$c" Topic LITERAL Read,Write "consumes task messages; writes the tasks that deliver its alerts (failed, skipped, overrun)" "${tasks[@]}"
    acl "$c" Group LITERAL Read "its consumer group: joins, commits offsets" "${CONSUMER_GROUPS[@]}"
    acl "$c" Topic LITERAL Write "dead-letters tasks that failed for good" "${dlqs[@]}"
    acl "$c" Topic LITERAL Write "EXECUTING/FINISHED/FAILED/CANCELLED events" "$EVENTS"
    acl "$c" Topic LITERAL Read "follows the cancel requests from their start" "$CANCELS"
    acl "$c" Topic LITERAL Write "run logs: what processors log and their output" "$LOGS"
    acl "$c" Group PREFIXED Read,Delete "throw-away group following the cancel requests, deleted at stop" "$FOLLOWER_GROUPS"
  fi
  if [[ -n "$API" ]]; then
    local a=$API
    acl "$a" Topic LITERAL Read,Write,DescribeConfigs "task definitions: read from its store's checkpoint on (delete.retention.ms bounds its age), written by the HTTP API" "$TASKS"
    acl "$a" Topic LITERAL Read,Write "users and API tokens (taskapi run and taskapi users)" "$USERS"
    acl "$a" Topic LITERAL Read,Write "exclusion calendars (/api/v1/calendars)" "$CALENDARS"
    acl "$a" Topic LITERAL Read,Write "run history (read); manual-fire events (written)" "$EVENTS"
    acl "$a" Topic LITERAL Read,Write "audit events of the changes made through it; read back for GET /api/v1/audit" "$AUDIT"
    acl "$a" Topic LITERAL Read "run logs, followed from --history back (GET …/runs/{taskId}/logs)" "$LOGS"
    if ((API_COMMANDS)); then
      acl "$a" Topic LITERAL Read,Write "dashboard: status of the scheduler instances; trigger/pause/resume of schedules; backfills" "$COMMANDS"
    fi
    acl "$a" Topic LITERAL Describe "partition count of the scheduler state (which instance owns a schedule)" "$STATE"
    acl "$a" Topic LITERAL Write "POST /tasks/{id}/trigger and DLQ replays publish task messages" "${tasks[@]}"
    acl "$a" Topic LITERAL Read,Write "DLQ routes: list, and replay markers" "${dlqs[@]}"
    acl "$a" Topic LITERAL Write "POST /tasks/{id}/runs/{taskId}/cancel" "$CANCELS"
    acl "$a" TransactionalId LITERAL Write "DLQ replay transactions" "${replays[@]}"
    acl "$a" Group LITERAL Describe "dashboard: members and lag of the consumer group" "${CONSUMER_GROUPS[@]}"
    acl "$a" Group PREFIXED Describe "dashboard: finds the scheduler groups (ListGroups shows only groups one may describe)" "$SCHEDULER_PREFIX"
    acl "$a" Group PREFIXED Read,Delete "throw-away groups following tasks, events, users, commands and run logs, deleted at stop" "$FOLLOWER_GROUPS"
    acl "$a" Group PREFIXED Read,Delete "throw-away groups reading a DLQ to its end, deleted after" "$READER_GROUPS"
  fi
  if [[ -n "$OPERATOR" ]]; then
    local o=$OPERATOR
    acl "$o" Topic LITERAL Read,Write "taskscheduler trigger/pause/resume/status/backfill: sends commands, reads the answers" "$COMMANDS"
    acl "$o" Topic LITERAL Describe "partition count of the scheduler state (which instance owns an entry)" "$STATE"
    acl "$o" Topic LITERAL Read,Write "taskscheduler status reads the last outcomes; dlq replay writes REPLAYED events" "$EVENTS"
    acl "$o" Topic LITERAL Read,Write "taskconsumer dlq list reads; dlq replay writes markers" "${dlqs[@]}"
    acl "$o" Topic LITERAL Write "taskconsumer dlq replay re-publishes; status reads end offsets (Describe)" "${tasks[@]}"
    acl "$o" TransactionalId LITERAL Write "taskconsumer dlq replay transactions" "${replays[@]}"
    acl "$o" Topic LITERAL Write "taskconsumer cancel" "$CANCELS"
    acl "$o" Topic LITERAL Read "taskconsumer logs (--follow)" "$LOGS"
    acl "$o" Group LITERAL Describe "taskconsumer status: members and committed offsets" "${CONSUMER_GROUPS[@]}"
    acl "$o" Group PREFIXED Read,Delete "throw-away groups following the command answers and run logs (logs --follow), deleted at stop" "$FOLLOWER_GROUPS"
    acl "$o" Group PREFIXED Read,Delete "throw-away groups reading events, a DLQ or a run log partition to its end, deleted after" "$READER_GROUPS"
  fi
}

print_acls() {
  local line principal type pattern name ops why
  printf '%-22s %-16s %-9s %-38s %-11s %s\n' PRINCIPAL RESOURCE PATTERN NAME OPERATIONS WHY
  for line in "${ACLS[@]}"; do
    IFS=$'\t' read -r principal type pattern name ops why <<<"$line"
    printf '%-22s %-16s %-9s %-38s %-11s %s\n' "$principal" "$type" "$pattern" "$name" "$ops" "$why"
  done
}

# ---------------------------------------------------------------------------------------------------------------
# AclCommand invocations: one per principal, pattern type and set of operations, naming every resource they cover

COMMANDS_PLANNED=() # each: the arguments of one AclCommand, tab-separated
plan_commands() {
  local line principal type pattern name ops why key keys=() i found
  local -A resources=()
  for line in "${ACLS[@]}"; do
    IFS=$'\t' read -r principal type pattern name ops why <<<"$line"
    key="$principal"$'\t'"$pattern"$'\t'"$ops"
    found=0
    for i in "${keys[@]}"; do [[ "$i" == "$key" ]] && found=1; done
    ((found)) || keys+=("$key")
    case "$type" in
    Topic) resources[$key]+=$'\t'"--topic"$'\t'"$name" ;;
    Group) resources[$key]+=$'\t'"--group"$'\t'"$name" ;;
    TransactionalId) resources[$key]+=$'\t'"--transactional-id"$'\t'"$name" ;;
    esac
  done
  for key in "${keys[@]}"; do
    IFS=$'\t' read -r principal pattern ops <<<"$key"
    local args="--add"$'\t'"--allow-principal"$'\t'"$principal"$'\t'"--resource-pattern-type"$'\t'"${pattern,,}" op
    for op in ${ops//,/ }; do args+=$'\t'"--operation"$'\t'"$op"; done
    COMMANDS_PLANNED+=("$args${resources[$key]}")
  done
}

# Shell-quoted, for --dry-run.
print_commands() {
  local cmd word
  local -a words
  for cmd in "${COMMANDS_PLANNED[@]}"; do
    IFS=$'\t' read -r -a words <<<"$cmd"
    printf 'kafka-acls.sh --bootstrap-server %q' "$BOOTSTRAP"
    [[ -z "$COMMAND_CONFIG" ]] || printf ' --command-config %q' "$COMMAND_CONFIG"
    for word in "${words[@]}"; do printf ' %q' "$word"; done
    printf '\n'
  done
}

# ---------------------------------------------------------------------------------------------------------------
# finding Kafka's tools (as create-topics.sh)

ACLS_CMD=() # runs AclCommand (kafka-acls.sh or java)
ACL_CLASS=org.apache.kafka.tools.AclCommand

find_tools() {
  find_kafka kafka-acls.sh
  # Kafka 4 moved the tool from core (Scala) to tools.
  ((KAFKA_3)) && ACL_CLASS=kafka.admin.AclCommand
  kafka_tool kafka-acls.sh "$ACL_CLASS" "$ACL_CLASS"
  ACLS_CMD=("${TOOL[@]}")
}

# Calls AclCommand.main once per line of the file (tab-separated arguments) in this JVM: Kafka's own tool without a
# JVM start per command. AclCommand ends a failure with Exit.exit, made here to throw, so the next one still runs.
readonly RUN_ACL_COMMANDS_JAVA='
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.List;
import org.apache.kafka.common.utils.Exit;

/** Arguments: AclCommand class, file of commands. Exit 0 when every command succeeded. */
public class RunAclCommands {
  static class Exited extends RuntimeException {
    Exited(int code) { super("exit " + code); }
  }

  public static void main(String[] args) throws Exception {
    Method main = Class.forName(args[0]).getMethod("main", String[].class);
    List<String> commands = Files.readAllLines(Paths.get(args[1]), StandardCharsets.UTF_8);
    Exit.setExitProcedure((code, message) -> { throw new Exited(code); });
    PrintStream out = System.out;
    int failed = 0;
    for (String command : commands) {
      if (command.isEmpty()) continue;
      ByteArrayOutputStream captured = new ByteArrayOutputStream();
      System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
      boolean ok = true;
      try {
        main.invoke(null, (Object) command.split("\t"));
      } catch (InvocationTargetException e) {
        ok = false;
      } finally {
        System.setOut(out);
      }
      if (!ok) {
        failed++;
        String error = "";
        for (String line : captured.toString(StandardCharsets.UTF_8).split("\n"))
          if (error.isEmpty() && (line.startsWith("Error") || line.contains("Exception"))) error = line;
        error = error.replaceFirst("^Error while executing ACL command: ", "").replaceFirst("^java[.a-z]*ExecutionException: ", "");
        // Refused or unreachable: every other command would fail the same way.
        if (error.contains("AuthorizationException")) stop(4, error);
        if (error.contains("AuthenticationException") || error.contains("TimeoutException")) stop(3, error);
        System.err.println("create-acls: failed: kafka-acls.sh " + command.replace("\t", " "));
        System.err.println("  " + error);
      }
    }
    System.exit(failed == 0 ? 0 : 1);
  }

  static void stop(int code, String error) {
    System.err.println("create-acls: " + error.replaceAll("Request Request\\(.*\\) needs", "needs"));
    System.exit(code);
  }
}
'

run_single_jvm() {
  local cmd prefix=()
  prefix=(--bootstrap-server "$BOOTSTRAP")
  [[ -z "$COMMAND_CONFIG" ]] || prefix+=(--command-config "$COMMAND_CONFIG")
  : >"$WORK/commands"
  for cmd in "${COMMANDS_PLANNED[@]}"; do
    (
      IFS=$'\t'
      printf '%s\t%s\n' "${prefix[*]}" "$cmd"
    ) >>"$WORK/commands"
  done
  printf '%s' "$RUN_ACL_COMMANDS_JAVA" >"$WORK/RunAclCommands.java"
  # The client logs nothing: a failure is said in one line.
  java "${TOOL_JVM_OPTS[@]}" -cp "$CLASSPATH_JARS" "-Dlog4j2.configurationFile=$WORK/log4j2-off.properties" \
    "-Dlog4j.configuration=file:$WORK/log4j-off.properties" "$WORK/RunAclCommands.java" "$ACL_CLASS" "$WORK/commands"
}

run_per_command() {
  local cmd i=0 failed=0 error
  local -a words
  export KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:-${TOOL_JVM_OPTS[*]}}"
  for cmd in "${COMMANDS_PLANNED[@]}"; do
    IFS=$'\t' read -r -a words <<<"$cmd"
    local config=()
    [[ -z "$COMMAND_CONFIG" ]] || config=(--command-config "$COMMAND_CONFIG")
    i=$((i + 1))
    if ! "${ACLS_CMD[@]}" --bootstrap-server "$BOOTSTRAP" "${config[@]}" "${words[@]}" >"$WORK/$i.out" 2>&1; then
      error=$(grep -E '^Error|Exception' "$WORK/$i.out" | head -n 1 | sed 's/^Error while executing ACL command: //; s/Request Request(.*) needs/needs/' || true)
      # Refused or unreachable: every other command would fail the same way.
      case "$error" in
      *AuthorizationException*)
        warn "$error"
        return 4
        ;;
      *AuthenticationException* | *TimeoutException*)
        warn "$error"
        return 3
        ;;
      esac
      warn "failed: kafka-acls.sh ${words[*]}"
      warn "  $error"
      failed=1
    fi
  done
  ((failed == 0))
}

# Who we are to the cluster, for messages (from the --command-config file, never printing its secrets).
# ---------------------------------------------------------------------------------------------------------------

main() {
  parse_args "$@"
  plan_acls
  plan_commands
  if ((DRY_RUN)); then
    printf '%d ACLs (dry run: nothing changed on %s)\n' "${#ACLS[@]}" "$BOOTSTRAP"
    print_acls
    printf '\nThe same as kafka-acls.sh commands (each adds its operations on every resource it names):\n'
    print_commands
    return 0
  fi
  quiet_logging
  find_tools

  local t0 status=0
  t0=$(now_us)
  printf 'Granting %d ACLs on %s (%d kafka-acls.sh commands; existing ACLs are kept)\n' "${#ACLS[@]}" "$BOOTSTRAP" \
    "${#COMMANDS_PLANNED[@]}"
  if can_run_single_jvm CREATE_ACLS_SINGLE_JVM; then
    run_single_jvm || status=$?
  else
    run_per_command || status=$?
  fi
  case "$status" in
  0) ;;
  3) die 3 "the cluster at $BOOTSTRAP could not be reached or refused the connection (above); scripts/create-topics.sh with the same --command-config says why in more detail" ;;
  4) die 4 "not authorized as $(principal_hint): adding ACLs needs Alter on the cluster (and listing them Describe): run create-acls with the admin's --command-config" ;;
  *) die 1 "some ACLs could not be added (see above)" ;;
  esac
  print_acls
  printf 'ACLs in place on %s in %s s\n' "$BOOTSTRAP" "$(elapsed_s "$t0")"
}

main "$@"
