# shellcheck shell=bash
# Shared by the scripts that run Kafka's own tools (create-topics.sh, create-acls.sh): messages and timing (also
# used by schemathesis.sh), quiet tool JVMs, finding the tools, and what the --command-config file says (never a
# secret). Sourced; the sourcing script sets PROG and ROOT first.

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

# Fast start-up for the short-lived tool JVMs.
readonly TOOL_JVM_OPTS=(-Xshare:auto -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xms32m)
QUIET_LOGGING=() # set by quiet_logging
WORK=""          # a temp dir, removed at exit (set by quiet_logging)

# Makes $WORK and the logging settings under which the tool JVMs print only errors (Kafka 4 uses log4j2, Kafka 3
# reload4j; each ignores the other's setting), plus *-off.properties that silence them.
quiet_logging() {
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  printf 'rootLogger.level = error\nappender.err.type = Console\nappender.err.name = STDERR\nappender.err.target = SYSTEM_ERR\nappender.err.layout.type = PatternLayout\nappender.err.layout.pattern = %%p %%m%%n\nrootLogger.appenderRef.err.ref = STDERR\n' >"$WORK/log4j2.properties"
  printf 'log4j.rootLogger=ERROR, stderr\nlog4j.appender.stderr=org.apache.log4j.ConsoleAppender\nlog4j.appender.stderr.Target=System.err\nlog4j.appender.stderr.layout=org.apache.log4j.PatternLayout\nlog4j.appender.stderr.layout.ConversionPattern=%%p %%m%%n\n' >"$WORK/log4j.properties"
  printf 'rootLogger.level = off\n' >"$WORK/log4j2-off.properties"
  printf 'log4j.rootLogger=OFF\n' >"$WORK/log4j-off.properties"
  QUIET_LOGGING=("-Dlog4j2.configurationFile=$WORK/log4j2.properties" "-Dlog4j.configuration=file:$WORK/log4j.properties")
}

TOOLS_BIN=""      # the bin/ folder of a Kafka distribution, when one is used
CLASSPATH_JARS="" # Kafka's jars, when known: enables the single-JVM paths
KAFKA_3=0         # 1 when those jars are Kafka 3.x (some tools were in core, under kafka.admin)

# Finds Kafka's tools, first found: $KAFKA_HOME/bin/$1, $1 on PATH, the jars installed by scripts/kafka-local.
find_kafka() {
  local script=$1 found lib=''
  if [[ -n "${KAFKA_HOME:-}" ]]; then
    [[ -x "$KAFKA_HOME/bin/$script" ]] || die 1 "KAFKA_HOME=$KAFKA_HOME has no bin/$script"
    TOOLS_BIN="$KAFKA_HOME/bin"
    lib="$KAFKA_HOME/libs"
  elif found=$(command -v "$script" 2>/dev/null); then
    TOOLS_BIN=$(dirname -- "$found")
    lib="$(dirname -- "$(realpath -- "$found")")/../libs"
  else
    local version="${KAFKA_VERSION:-4.3.1}"
    lib="${KAFKA_LOCAL_HOME:-$ROOT/.kafka-local}/$version/lib"
    if [[ "$(cat "$lib/../installed" 2>/dev/null)" != "$version" ]] || ! command -v java >/dev/null 2>&1; then
      die 1 "no Kafka tools found: set KAFKA_HOME to a Kafka distribution, put $script on PATH, or run scripts/kafka-local install"
    fi
    [[ "$version" == [0-3].* ]] && KAFKA_3=1
  fi
  if [[ -d "$lib" ]]; then
    CLASSPATH_JARS="$(realpath -- "$lib")/*"
    [[ -n "$(compgen -G "$lib/kafka_*-[0-3].*.jar")" ]] && KAFKA_3=1
  fi
  return 0
}

# Sets TOOL (an array) to run one of Kafka's tools: bin/$1 of the distribution, else java with class $2 (Kafka 4)
# or $3 (Kafka 3).
# shellcheck disable=SC2034 # TOOL is read by the sourcing script
kafka_tool() {
  if [[ -n "$TOOLS_BIN" ]]; then
    TOOL=("$TOOLS_BIN/$1")
  else
    local class=$2
    ((KAFKA_3)) && class=$3
    TOOL=(java "${TOOL_JVM_OPTS[@]}" -cp "$CLASSPATH_JARS" "${QUIET_LOGGING[@]}" "$class")
  fi
}

# The single-JVM paths compile a small Java program on the fly, which needs a JDK (the java launcher's source mode),
# not only a JRE such as the one in the apache/kafka image. $1: the variable that turns them off when 0.
can_run_single_jvm() {
  [[ "${!1:-1}" != 0 && -n "$CLASSPATH_JARS" ]] || return 1
  local java
  java=$(command -v java 2>/dev/null) || return 1
  [[ -x "$(dirname -- "$(realpath -- "$java")")/javac" ]]
}

# What the --command-config file ($COMMAND_CONFIG, set by the sourcing script) says: the last value of property $1.
config_value() {
  [[ -n "$COMMAND_CONFIG" ]] || return 0
  sed -n "s/^[[:space:]]*${1//./\\.}[[:space:]]*[=:][[:space:]]*//p" "$COMMAND_CONFIG" | tail -n 1 | tr -d '\r'
}

security_protocol() {
  local protocol
  protocol=$(config_value security.protocol)
  protocol=${protocol:-PLAINTEXT}
  printf '%s' "${protocol^^}"
}

# The user named by sasl.jaas.config (username="..." or principal="..."), never its password.
jaas_user() {
  [[ -n "$COMMAND_CONFIG" ]] || return 0
  grep -oE '(username|principal)[[:space:]]*=[[:space:]]*"[^"]*"' "$COMMAND_CONFIG" | head -n 1 | sed 's/^[^"]*"//; s/"$//' || true
}

principal_hint() {
  local protocol user
  protocol=$(security_protocol)
  case "$protocol" in
  SASL_*)
    user=$(jaas_user)
    if [[ -n "$user" ]]; then printf 'User:%s' "$user"; else printf 'the SASL principal of sasl.jaas.config'; fi
    ;;
  SSL)
    if [[ -n "$(config_value ssl.keystore.location)$(config_value ssl.keystore.certificate.chain)" ]]; then
      printf 'the principal of the client certificate (by default User:<its distinguished name>)'
    else
      printf 'User:ANONYMOUS (TLS without a client certificate)'
    fi
    ;;
  *) printf 'User:ANONYMOUS (a PLAINTEXT connection has no identity; use --command-config)' ;;
  esac
}
