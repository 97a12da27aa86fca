#!/usr/bin/env bash
# create-topics.sh: creates the Kafka topics taskmanager needs (docs/messages-and-topics.md#topics) on any cluster.
# Idempotent: existing topics are left as they are and reported, so it is safe to run before every deployment.
set -euo pipefail

readonly PROG=create-topics
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
# shellcheck source=scripts/lib/kafka-tools.sh
source "$ROOT/scripts/lib/kafka-tools.sh"

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
  taskmanager.cancels           cleanup.policy=delete
  taskmanager.audit             cleanup.policy=delete
  taskmanager.calendars         cleanup.policy=compact
  taskmanager.logs              cleanup.policy=delete

Options (environment in brackets):
  --bootstrap-server HOST:PORT  brokers [KAFKA_BROKERS] (default 127.0.0.1:9092)
  --command-config FILE         client properties for a secured cluster, as Kafka's own tools take them
                                (security.protocol, sasl.*, ssl.*; ${env:NAME} resolves through config.providers
                                when the file declares them) [KAFKA_CONFIG]. Its contents are never printed.
  --topic NAME                  a task topic; repeat for several (default taskTopic)
  --partitions N                partitions of new topics [TOPIC_PARTITIONS] (default 12)
  --replication-factor N        replicas of new topics [TOPIC_REPLICATION_FACTOR]
                                (default min(3, number of brokers in the cluster))
  --min-insync-replicas N       min.insync.replicas of new topics [TOPIC_MIN_INSYNC_REPLICAS]
                                (default 2 with 3 or more brokers and replicas, else the broker's default)
  -h, --help                    this text

Topics that exist already are left as they are (a warning says when one has fewer replicas than chosen).

Kafka tools, first found: $KAFKA_HOME/bin/kafka-topics.sh, kafka-topics.sh on PATH, the jars installed by
scripts/kafka-local (KAFKA_LOCAL_HOME, KAFKA_VERSION). When the jars and a JDK are at hand, all topics are created
by one JVM (under 2 s); otherwise one kafka-topics.sh per topic, run side by side (and, to count the brokers,
kafka-broker-api-versions.sh). CREATE_TOPICS_SINGLE_JVM=0 forces the latter.

Exit codes: 0 all topics exist as required, 1 a topic could not be created or exists with the wrong cleanup.policy,
2 bad usage (also: an unreadable --command-config, a replication factor above the number of brokers),
3 the cluster could not be reached or refused the connection (unreachable, TLS or SASL failure, protocol mismatch),
4 not authorized (the principal may not create or describe the topics).
EOF
}

BOOTSTRAP=${KAFKA_BROKERS:-127.0.0.1:9092}
COMMAND_CONFIG=${KAFKA_CONFIG:-}
PARTITIONS=${TOPIC_PARTITIONS:-12}
# "auto": chosen from the number of brokers once the cluster answers.
REPLICATION=${TOPIC_REPLICATION_FACTOR:-auto}
MIN_INSYNC=${TOPIC_MIN_INSYNC_REPLICAS:-auto}
TASK_TOPICS=()

parse_args() {
  while (($#)); do
    case "$1" in
    --bootstrap-server | --brokers | --command-config | --topic | --partitions | --replication-factor | \
      --min-insync-replicas)
      (($# >= 2)) || die 2 "$1 needs a value"
      set_option "$1" "$2"
      shift 2
      ;;
    --bootstrap-server=* | --brokers=* | --command-config=* | --topic=* | --partitions=* | --replication-factor=* | \
      --min-insync-replicas=*)
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
  [[ "$REPLICATION" == auto || "$REPLICATION" =~ ^[1-9][0-9]*$ ]] ||
    die 2 "replication factor must be a positive number, got '$REPLICATION'"
  [[ "$MIN_INSYNC" == auto || "$MIN_INSYNC" =~ ^[1-9][0-9]*$ ]] ||
    die 2 "min.insync.replicas must be a positive number, got '$MIN_INSYNC'"
  if [[ "$REPLICATION" != auto && "$MIN_INSYNC" != auto ]] && ((MIN_INSYNC > REPLICATION)); then
    die 2 "min.insync.replicas $MIN_INSYNC is more than the replication factor $REPLICATION: every acks=all write would fail"
  fi
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
  --topic) TASK_TOPICS+=("$2") ;;
  --partitions) PARTITIONS=$2 ;;
  --replication-factor) REPLICATION=$2 ;;
  --min-insync-replicas) MIN_INSYNC=$2 ;;
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
  # Requests to cancel a task (taskapi, taskconsumer cancel), read by every task consumer from the start: kept as
  # long as the task topics keep the tasks they name (both use the broker's default retention).
  add_topic taskmanager.cancels delete
  # Who created, changed, deleted, triggered or cancelled what through taskapi.
  add_topic taskmanager.audit delete
  # Exclusion calendars of taskapi (/api/v1/calendars): the latest dates per calendar name; a tombstone deletes.
  add_topic taskmanager.calendars compact
  # Run logs (what processors log, command and webhook output), keyed by taskId: bounded per run by the consumer,
  # kept like the events (the broker's default retention).
  add_topic taskmanager.logs delete
}

# ---------------------------------------------------------------------------------------------------------------
# finding Kafka's tools

TOPICS_CMD=()  # runs TopicCommand (kafka-topics.sh or java)
BROKERS_CMD=() # runs BrokerApiVersionsCommand: lists the brokers (kafka-broker-api-versions.sh or java)

find_tools() {
  find_kafka kafka-topics.sh
  kafka_tool kafka-topics.sh org.apache.kafka.tools.TopicCommand org.apache.kafka.tools.TopicCommand
  TOPICS_CMD=("${TOOL[@]}")
  # Kafka 4 moved the tool from core (Scala) to tools.
  kafka_tool kafka-broker-api-versions.sh org.apache.kafka.tools.BrokerApiVersionsCommand kafka.admin.BrokerApiVersionsCommand
  BROKERS_CMD=("${TOOL[@]}")
}

# ---------------------------------------------------------------------------------------------------------------
# single JVM: the admin client creates every topic in one request, then reports what is there

readonly CREATE_TOPICS_JAVA='
import java.io.IOException;
import java.io.InputStream;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.cert.X509Certificate;
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.*;

/**
 * Arguments: bootstrap configFile-or-empty partitions replication-or-auto minInsync-or-auto name=cleanupPolicy...
 * Exit 0 when every topic is as required, 1 when one is not, 2 bad settings, 3 the cluster cannot be reached or
 * refused the connection, 4 not authorized. A failure to talk to the cluster is one line on stderr.
 */
public class CreateTopics {
  static String bootstrap;
  static String configFile;
  static final Properties props = new Properties();
  /** Values never to print: passwords of the config file, should a message of the client quote one. */
  static final List<String> secrets = new ArrayList<>();
  /** The brokers as the cluster advertises them (host:port), once known. */
  static String advertised = "";

  public static void main(String[] args) throws Exception {
    bootstrap = args[0];
    configFile = args[1];
    int partitions = Integer.parseInt(args[2]);
    Map<String, String> wanted = new LinkedHashMap<>();
    for (int i = 5; i < args.length; i++) {
      String[] nameAndPolicy = args[i].split("=", 2);
      wanted.put(nameAndPolicy[0], nameAndPolicy[1]);
    }
    if (!configFile.isEmpty()) {
      try (InputStream in = Files.newInputStream(Paths.get(configFile))) {
        props.load(in);
      }
      for (String key : props.stringPropertyNames()) {
        String v = props.getProperty(key);
        if ((key.contains("password") || key.contains("secret")) && v.length() > 2) secrets.add(v);
      }
      Matcher m = Pattern.compile("password\\s*=\\s*\"([^\"]+)\"").matcher(props.getProperty("sasl.jaas.config", ""));
      while (m.find()) secrets.add(m.group(1));
    }
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(AdminClientConfig.CLIENT_ID_CONFIG, "create-topics");
    props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
    props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
    Admin admin = null;
    try {
      admin = Admin.create(props);
    } catch (KafkaException e) {
      fail(2, "the client settings" + (configFile.isEmpty() ? "" : " of " + configFile) + " were refused: " + chain(e));
    }
    int problems = 0;
    try {
      int brokers = brokerCount(admin);
      short replication = args[3].equals("auto") ? (short) Math.min(3, brokers) : Short.parseShort(args[3]);
      String minInsync = args[4].equals("auto") ? (brokers >= 3 && replication >= 3 ? "2" : null) : args[4];
      if (replication > brokers)
        fail(2, "replication factor " + replication + " is more than the " + brokers + " broker(s) of the cluster at "
            + bootstrap + ": lower --replication-factor");
      if (minInsync != null && Integer.parseInt(minInsync) > replication)
        fail(2, "min.insync.replicas " + minInsync + " is more than the replication factor " + replication
            + ": every acks=all write would fail");
      System.out.printf("Creating %d topics on %s if missing: %d partitions, replication factor %d (%s), %s%n",
          wanted.size(), bootstrap, partitions, replication,
          (args[3].equals("auto") ? "min(3, brokers): " : "as given; ") + brokers + (brokers == 1 ? " broker" : " brokers"),
          minInsync == null ? "min.insync.replicas: the broker default"
              : "min.insync.replicas=" + minInsync + (args[4].equals("auto") ? " (3 or more replicas)" : " (as given)"));
      List<NewTopic> newTopics = new ArrayList<>();
      for (Map.Entry<String, String> w : wanted.entrySet()) {
        Map<String, String> configs = new HashMap<>();
        configs.put("cleanup.policy", w.getValue());
        if (w.getValue().equals("compact")) {
          // Roll and compact hourly: a takeover reads the partition from its start.
          configs.put("segment.ms", "3600000");
          configs.put("min.cleanable.dirty.ratio", "0.1");
        }
        if (minInsync != null) configs.put("min.insync.replicas", minInsync);
        newTopics.add(new NewTopic(w.getKey(), Optional.of(partitions), Optional.of(replication)).configs(configs));
      }
      Map<String, KafkaFuture<Void>> results = admin.createTopics(newTopics).values();
      Set<String> created = new HashSet<>();
      List<String> present = new ArrayList<>();
      List<String> denied = new ArrayList<>();
      for (String name : wanted.keySet()) {
        try {
          results.get(name).get();
          created.add(name);
          present.add(name);
        } catch (ExecutionException e) {
          Throwable cause = e.getCause();
          if (cause instanceof TopicExistsException) {
            present.add(name);
          } else if (cause instanceof AuthorizationException) {
            denied.add(name);
          } else if (isConnectionProblem(cause)) {
            explainAndExit(cause, "creating the topics");
          } else {
            System.err.println("create-topics: creating " + name + " failed: " + clean(cause.getMessage()));
            problems++;
          }
        }
      }
      if (!denied.isEmpty())
        fail(4, "not authorized to create " + String.join(", ", denied) + " on " + bootstrap + " as " + principalHint()
            + ": creating topics needs the Create operation on the cluster (or on each topic); run create-topics as the admin");
      if (present.isEmpty()) System.exit(1);
      Map<String, TopicDescription> descriptions;
      Map<ConfigResource, Config> configs;
      List<ConfigResource> resources = new ArrayList<>();
      for (String name : present) resources.add(new ConfigResource(ConfigResource.Type.TOPIC, name));
      // A topic just created may not have reached every broker yet ("This server does not host this
      // topic-partition" from the one asked, seen on a fresh 3-node cluster): asked again for up to 15 s.
      for (int attempt = 1; ; attempt++) {
        try {
          descriptions = admin.describeTopics(present).allTopicNames().get();
          configs = admin.describeConfigs(resources).all().get();
          break;
        } catch (ExecutionException e) {
          if (e.getCause() instanceof org.apache.kafka.common.errors.UnknownTopicOrPartitionException && attempt < 30) {
            Thread.sleep(500);
            continue;
          }
          explainAndExit(e.getCause(), "describing the topics (Describe and DescribeConfigs on them)");
          return;
        }
      }
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
              name, policy, want, bootstrap, name, want);
          problems++;
        } else if (count < partitions) {
          System.err.printf("create-topics: warning: %s has %d partitions, fewer than %d: at most %d consumers of a group share it (kafka-topics.sh --alter --partitions raises it)%n",
              name, count, partitions, count);
        }
        if (replicas < replication)
          System.err.printf("create-topics: warning: %s has %d replica(s), fewer than %d: kafka-reassign-partitions.sh adds more%n",
              name, replicas, replication);
      }
    } catch (ExecutionException e) {
      explainAndExit(e.getCause(), "asking the cluster");
    }
    admin.close();
    System.exit(problems == 0 ? 0 : 1);
  }

  /** The number of brokers; after 5 s without an answer, looks for a TLS/plaintext mismatch to say so at once. */
  static int brokerCount(Admin admin) throws ExecutionException, InterruptedException {
    KafkaFuture<Collection<Node>> nodes = admin.describeCluster().nodes();
    Collection<Node> found;
    try {
      found = nodes.get(5, TimeUnit.SECONDS);
    } catch (java.util.concurrent.TimeoutException slow) {
      String mismatch = protocolMismatch();
      if (mismatch != null) fail(3, mismatch);
      found = nodes.get();
    }
    List<String> hosts = new ArrayList<>();
    for (Node n : found) hosts.add(n.host() + ":" + n.port());
    Collections.sort(hosts);
    advertised = String.join(",", hosts);
    return found.size();
  }

  static boolean isConnectionProblem(Throwable t) {
    return t instanceof AuthenticationException || t instanceof TimeoutException
        || t instanceof DisconnectException;
  }

  /** One line saying why the cluster refused or did not answer, then the exit code of that kind of failure. */
  static void explainAndExit(Throwable t, String doing) {
    String protocol = protocol();
    if (t instanceof SaslAuthenticationException || t instanceof UnsupportedSaslMechanismException
        || t instanceof IllegalSaslStateException) {
      String user = jaasUser();
      fail(3, "SASL authentication failed at " + bootstrap + " for " + (user == null ? "the principal of sasl.jaas.config" : "user " + user)
          + " (mechanism " + props.getProperty("sasl.mechanism", "GSSAPI") + ", " + protocol + "): " + clean(t.getMessage())
          + (configFile.isEmpty() ? "" : "; check sasl.jaas.config and sasl.mechanism in " + configFile));
    }
    if (t instanceof SslAuthenticationException) fail(3, "TLS handshake with the broker(s) at " + bootstrap + " failed: " + tlsReason(t));
    if (t instanceof AuthenticationException) fail(3, "authentication failed at " + bootstrap + ": " + clean(t.getMessage()));
    if (t instanceof AuthorizationException) {
      String what = t instanceof TopicAuthorizationException && !((TopicAuthorizationException) t).unauthorizedTopics().isEmpty()
          ? " (topics " + String.join(", ", ((TopicAuthorizationException) t).unauthorizedTopics()) + ")" : "";
      fail(4, "not authorized " + doing + what + " on " + bootstrap + " as " + principalHint() + ": " + clean(t.getMessage()));
    }
    if (t instanceof TimeoutException || t instanceof DisconnectException) {
      String mismatch = protocolMismatch();
      if (mismatch != null) fail(3, mismatch);
      String where = probeAll();
      if (!advertised.isEmpty() && where.contains("answers"))
        fail(3, "timed out " + doing + ": the broker at " + bootstrap + " answered, but the brokers it advertises ("
            + advertised + ") did not: are they reachable from here? (" + clean(t.getMessage()) + ")");
      fail(3, "no broker answered at " + bootstrap + " (" + where + ") while " + doing + ": " + clean(t.getMessage())
          + (protocol.startsWith("SASL") || !where.contains("answers") ? ""
              : "; if its listener wants SASL, set security.protocol=SASL_" + (protocol.equals("SSL") ? "SSL" : "PLAINTEXT")
                  + " in the --command-config file"));
    }
    fail(1, doing + " failed: " + chain(t));
  }

  static String protocol() {
    return props.getProperty("security.protocol", "PLAINTEXT").trim().toUpperCase(Locale.ROOT);
  }

  /** A client speaking plaintext to a TLS listener (or the reverse) only sees time-outs: say what is wrong. */
  static String protocolMismatch() {
    boolean wantTls = protocol().endsWith("SSL");
    for (String address : bootstrap.split(",")) {
      String kind = probe(address.trim());
      if (!wantTls && kind.equals("tls"))
        return "the broker at " + address.trim() + " speaks TLS: set security.protocol=SSL or SASL_SSL in the --command-config file (with ssl.truststore.* trusting its certificate)";
      if (wantTls && kind.equals("plain"))
        return "the broker at " + address.trim() + " does not speak TLS but security.protocol is " + protocol()
            + ": use its TLS port, or set security.protocol=" + (protocol().startsWith("SASL") ? "SASL_PLAINTEXT" : "PLAINTEXT");
    }
    return null;
  }

  static String probeAll() {
    List<String> out = new ArrayList<>();
    for (String address : bootstrap.split(",")) {
      String kind = probe(address.trim());
      out.add(address.trim() + ": " + (kind.equals("tls") ? "answers TLS" : kind.equals("plain") ? "answers plaintext" : kind));
    }
    return String.join("; ", out);
  }

  /**
   * What listens at host:port: "tls" (completes a TLS handshake, or answers it with a TLS alert), "plain" (a
   * plaintext Kafka listener closes the connection on a ClientHello), or why nothing answers.
   */
  static String probe(String address) {
    int colon = address.lastIndexOf(":");
    if (colon < 0) return "no port";
    String host = address.substring(0, colon).replace("[", "").replace("]", "");
    int port;
    try {
      port = Integer.parseInt(address.substring(colon + 1));
    } catch (NumberFormatException e) {
      return "bad port";
    }
    try (Socket raw = new Socket()) {
      raw.connect(new InetSocketAddress(host, port), 3000);
      raw.setSoTimeout(3000);
      SSLContext context = SSLContext.getInstance("TLS");
      context.init(null, new TrustManager[] {new X509TrustManager() {
        public void checkClientTrusted(X509Certificate[] chain, String authType) {}
        public void checkServerTrusted(X509Certificate[] chain, String authType) {}
        public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
      }}, null);
      try (SSLSocket tls = (SSLSocket) context.getSocketFactory().createSocket(raw, host, port, false)) {
        tls.startHandshake();
        return "tls";
      } catch (SSLHandshakeException e) {
        return String.valueOf(e.getMessage()).contains("alert") ? "tls" : "plain";
      } catch (SocketTimeoutException e) {
        return "connected, but no answer";
      } catch (IOException e) {
        return "plain";
      }
    } catch (UnknownHostException e) {
      return "unknown host";
    } catch (ConnectException e) {
      return "connection refused";
    } catch (SocketTimeoutException e) {
      return "no answer to a TCP connect within 3 s";
    } catch (Exception e) {
      return "cannot connect (" + e.getMessage() + ")";
    }
  }

  static String tlsReason(Throwable t) {
    String all = chain(t);
    Throwable root = t;
    while (root.getCause() != null && root.getCause() != root) root = root.getCause();
    String why = clean(String.valueOf(root.getMessage()));
    if (all.contains("PKIX") || all.contains("unable to find valid certification path") || all.contains("signature check failed"))
      return "its certificate is not trusted: add the CA that signed it to ssl.truststore.location (or ssl.truststore.certificates) in the --command-config file (" + why + ")";
    if (all.contains("No subject alternative") || all.contains("No name matching"))
      return "its certificate does not name the host it was reached by (" + why + "): connect with a name or address the certificate lists, or reissue it with that one as a subjectAltName";
    if (all.contains("expired") || all.contains("NotAfter"))
      return "a certificate has expired (" + why + ")";
    if (all.contains("bad_certificate") || all.contains("certificate_required") || all.contains("certificate_unknown"))
      return "the broker refused our client certificate (" + why + "): check ssl.keystore.* in the --command-config file";
    return why;
  }

  static String jaasUser() {
    Matcher m = Pattern.compile("(?:username|principal)\\s*=\\s*\"([^\"]*)\"").matcher(props.getProperty("sasl.jaas.config", ""));
    return m.find() ? m.group(1) : null;
  }

  static String principalHint() {
    String protocol = protocol();
    if (protocol.startsWith("SASL")) {
      String user = jaasUser();
      return user == null ? "the SASL principal of sasl.jaas.config" : "User:" + user;
    }
    if (protocol.equals("SSL"))
      return props.getProperty("ssl.keystore.location") == null && props.getProperty("ssl.keystore.certificate.chain") == null
          ? "User:ANONYMOUS (TLS without a client certificate)"
          : "the principal of the client certificate (by default User:<its distinguished name>)";
    return "User:ANONYMOUS (a PLAINTEXT connection has no identity; use --command-config)";
  }

  /** The messages of an exception and its causes, without the passwords of the config file. */
  static String chain(Throwable t) {
    StringBuilder b = new StringBuilder();
    for (Throwable c = t; c != null; c = c.getCause() == c ? null : c.getCause()) {
      if (c.getMessage() == null || b.indexOf(c.getMessage()) >= 0) continue;
      if (b.length() > 0) b.append(": ");
      b.append(c.getMessage());
    }
    return clean(b.length() == 0 ? t.getClass().getSimpleName() : b.toString());
  }

  static String clean(String message) {
    String m = String.valueOf(message).replaceAll("password\\s*=\\s*\"[^\"]*\"", "password=\"[hidden]\"");
    for (String secret : secrets) m = m.replace(secret, "[hidden]");
    return m;
  }

  static void fail(int code, String line) {
    System.err.println("create-topics: " + line);
    System.exit(code);
  }
}
'

create_single_jvm() {
  local args=() i
  for i in "${!TOPICS[@]}"; do args+=("${TOPICS[$i]}=${POLICIES[$i]}"); done
  printf '%s' "$CREATE_TOPICS_JAVA" >"$WORK/CreateTopics.java"
  # The client logs nothing: the program says in one line what went wrong.
  java "${TOOL_JVM_OPTS[@]}" -cp "$CLASSPATH_JARS" "-Dlog4j2.configurationFile=$WORK/log4j2-off.properties" \
    "-Dlog4j.configuration=file:$WORK/log4j-off.properties" "$WORK/CreateTopics.java" \
    "$BOOTSTRAP" "$COMMAND_CONFIG" "$PARTITIONS" "$REPLICATION" "$MIN_INSYNC" "${args[@]}"
}

# ---------------------------------------------------------------------------------------------------------------
# Kafka's tools only: one TopicCommand per topic, the JVMs side by side to save time; their failures are read to say
# in one line what went wrong

CONFIG_ARGS=() # --command-config FILE for Kafka's tools, when given
BROKER_COUNT=""

# A setting of the --command-config file, for messages (the file itself is never printed).
# The first message of a Java exception in a tool's output, without a password should one be quoted.
exception_message() {
  grep -oE "$1: .*" <<<"$2" | head -n 1 | cut -d' ' -f2- | sed 's/password[[:space:]]*=[[:space:]]*"[^"]*"/password="[hidden]"/g' || true
}

# What listens at HOST:PORT: "tls" (its TLS handshake answers), "plain" (takes a connection, no TLS), or why none.
probe() {
  local out
  command -v openssl >/dev/null 2>&1 || {
    printf 'not probed (no openssl)'
    return 0
  }
  out=$(timeout 5 openssl s_client -connect "$1" </dev/null 2>&1) || true
  if [[ "$out" =~ SSL\ handshake\ has\ read\ ([0-9]+)\ bytes ]] && ((BASH_REMATCH[1] > 0)); then
    printf 'tls'
  elif grep -q 'Connection refused' <<<"$out"; then
    printf 'connection refused'
  elif grep -qiE 'Name or service not known|nodename nor servname|gethostbyname|getaddrinfo' <<<"$out"; then
    printf 'unknown host'
  elif grep -q '^CONNECTED' <<<"$out"; then
    printf 'plain'
  else
    printf 'no answer'
  fi
}

# Dies with one line when the output of a failed tool shows that the cluster refused us or could not be reached;
# returns 1 when it shows something else.
diagnose() {
  local out=$1 doing=$2 protocol address kind where="" user mechanism reason
  protocol=$(security_protocol)
  if grep -qE 'SaslAuthenticationException|UnsupportedSaslMechanismException|IllegalSaslStateException' <<<"$out"; then
    user=$(jaas_user)
    mechanism=$(config_value sasl.mechanism)
    reason=$(exception_message '(Sasl[A-Za-z]*|UnsupportedSaslMechanism|IllegalSaslState)Exception' "$out")
    if [[ -n "$user" ]]; then user="user $user"; else user="the principal of sasl.jaas.config"; fi
    die 3 "SASL authentication failed at $BOOTSTRAP for $user (mechanism ${mechanism:-GSSAPI}, $protocol): $reason${COMMAND_CONFIG:+; check sasl.jaas.config and sasl.mechanism in $COMMAND_CONFIG}"
  fi
  if grep -qE 'SslAuthenticationException|SSLHandshakeException' <<<"$out"; then
    reason=$(exception_message '(SSLHandshake|SslAuthentication|CertPathBuilder|CertificateException|SSL)[A-Za-z]*' "$out" | tail -n 1)
    if grep -qE 'PKIX|unable to find valid certification path|signature check failed' <<<"$out"; then
      reason="its certificate is not trusted: add the CA that signed it to ssl.truststore.location (or ssl.truststore.certificates) in the --command-config file ($(exception_message 'CertPathBuilderException|SunCertPathBuilderException' "$out"))"
    elif grep -qE 'No subject alternative|No name matching' <<<"$out"; then
      reason="its certificate does not name the host it was reached by ($(exception_message 'CertificateException' "$out")): connect with a name or address the certificate lists, or reissue it with that one as a subjectAltName"
    elif grep -qE 'bad_certificate|certificate_required|certificate_unknown' <<<"$out"; then
      reason="the broker refused our client certificate: check ssl.keystore.* in the --command-config file"
    fi
    die 3 "TLS handshake with the broker(s) at $BOOTSTRAP failed: $reason"
  fi
  if grep -qE 'AuthorizationException' <<<"$out"; then
    die 4 "not authorized $doing on $BOOTSTRAP as $(principal_hint): $(exception_message '[A-Za-z]*AuthorizationException' "$out")"
  fi
  if grep -qE 'TimeoutException|Timed out waiting|failed on brokers|DisconnectException' <<<"$out"; then
    for address in ${BOOTSTRAP//,/ }; do
      kind=$(probe "$address")
      if [[ "$kind" == tls && "$protocol" != *SSL ]]; then
        die 3 "the broker at $address speaks TLS: set security.protocol=SSL or SASL_SSL in the --command-config file (with ssl.truststore.* trusting its certificate)"
      elif [[ "$kind" == plain && "$protocol" == *SSL ]]; then
        die 3 "the broker at $address does not speak TLS but security.protocol is $protocol: use its TLS port, or set security.protocol=${protocol%SSL}PLAINTEXT"
      fi
      case "$kind" in
      tls) kind="answers TLS" ;;
      plain) kind="answers plaintext" ;;
      esac
      where+="${where:+; }$address: $kind"
    done
    die 3 "no broker answered at $BOOTSTRAP ($where) while $doing"
  fi
  return 1
}

# Counts the brokers of the cluster (kafka-broker-api-versions.sh lists each with its id).
count_brokers() {
  local out
  if ! out=$("${BROKERS_CMD[@]}" --bootstrap-server "$BOOTSTRAP" "${CONFIG_ARGS[@]}" 2>&1); then
    diagnose "$out" "listing the brokers" ||
      die 3 "listing the brokers at $BOOTSTRAP failed: $(exception_message '[A-Za-z.]*Exception' "$out")"
  fi
  BROKER_COUNT=$(grep -cE '^[^[:space:]]+ \(id: -?[0-9]+ rack: ' <<<"$out" || true)
  ((BROKER_COUNT > 0)) || die 3 "kafka-broker-api-versions.sh listed no broker at $BOOTSTRAP"
}

# Replication factor min(3, brokers) and min.insync.replicas 2 with 3 or more replicas, unless given; prints them.
choose_replication() {
  local rf_note="as given" isr_note
  if [[ "$REPLICATION" == auto ]]; then
    count_brokers
    REPLICATION=$((BROKER_COUNT < 3 ? BROKER_COUNT : 3))
    rf_note="min(3, brokers): $BROKER_COUNT broker$( ((BROKER_COUNT == 1)) || printf s)"
  fi
  if [[ "$MIN_INSYNC" == auto ]]; then
    MIN_INSYNC=""
    isr_note="min.insync.replicas: the broker default"
    ((REPLICATION >= 3)) && MIN_INSYNC=2 isr_note="min.insync.replicas=2 (3 or more replicas)"
  else
    ((MIN_INSYNC <= REPLICATION)) ||
      die 2 "min.insync.replicas $MIN_INSYNC is more than the replication factor $REPLICATION: every acks=all write would fail"
    isr_note="min.insync.replicas=$MIN_INSYNC (as given)"
  fi
  printf 'Creating %d topics on %s if missing: %s partitions, replication factor %s (%s), %s\n' "${#TOPICS[@]}" \
    "$BOOTSTRAP" "$PARTITIONS" "$REPLICATION" "$rf_note" "$isr_note"
}

create_per_topic() {
  local i pids=() outcome=() failed=() out
  # kafka-run-class.sh tunes its JVM for a server; these tools live a second, so start fast instead.
  export KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:-${TOOL_JVM_OPTS[*]}}"
  for i in "${!TOPICS[@]}"; do
    local extra=()
    # Roll and compact hourly: a takeover reads the partition from its start.
    [[ "${POLICIES[$i]}" == compact ]] && extra=(--config segment.ms=3600000 --config min.cleanable.dirty.ratio=0.1)
    [[ -n "$MIN_INSYNC" ]] && extra+=(--config "min.insync.replicas=$MIN_INSYNC")
    "${TOPICS_CMD[@]}" --bootstrap-server "$BOOTSTRAP" "${CONFIG_ARGS[@]}" --create --if-not-exists \
      --topic "${TOPICS[$i]}" --partitions "$PARTITIONS" --replication-factor "$REPLICATION" \
      --config "cleanup.policy=${POLICIES[$i]}" "${extra[@]}" >"$WORK/$i.out" 2>&1 &
    pids+=($!)
  done
  for i in "${!TOPICS[@]}"; do
    if ! wait "${pids[$i]}"; then
      failed+=("$i")
    elif grep -q "^Created topic" "$WORK/$i.out"; then
      outcome[i]=created
    else
      outcome[i]=exists # --if-not-exists says nothing about a topic that was there already
    fi
  done
  if ((${#failed[@]})); then
    local names=() all=""
    for i in "${failed[@]}"; do
      names+=("${TOPICS[$i]}")
      all+=$(<"$WORK/$i.out")$'\n'
    done
    # Refused or unreachable: the same cause for every topic, said once.
    diagnose "$all" "creating ${names[*]} (needs Create on the cluster or the topics)" || true
    for i in "${failed[@]}"; do
      out="$WORK/$i.out"
      grep -v "^WARNING: Due to limitations in metric names" "$out" >&2 || true
      warn "creating ${TOPICS[$i]} failed (output above)"
    done
    return 1
  fi
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
  description=$("${TOPICS_CMD[@]}" --bootstrap-server "$BOOTSTRAP" "${CONFIG_ARGS[@]}" --describe \
    --topic "^($regex)\$" 2>&1) || {
    diagnose "$description" "describing the topics (needs Describe and DescribeConfigs on them)" || true
    printf '%s\n' "$description" >&2
    die 1 "describing the topics failed (output above)"
  }
  for i in "${!TOPICS[@]}"; do
    # The summary line of a topic; its partition lines start with a tab.
    header=$(printf '%s\n' "$description" | grep -E "^Topic: ${TOPICS[$i]//./\\.}[[:space:]]" | head -n 1 || true)
    count=$(sed -n 's/.*PartitionCount: *\([0-9]*\).*/\1/p' <<<"$header")
    replicas=$(sed -n 's/.*ReplicationFactor: *\([0-9]*\).*/\1/p' <<<"$header")
    # Describe lists only non-default configs: no cleanup.policy there means the broker default, delete.
    # (Configs is one comma-separated list: cleanup.policy=compact,min.cleanable.dirty.ratio=0.1,…)
    policy=$(grep -oE 'cleanup\.policy=(compact|delete)(,(compact|delete))*' <<<"$header" | head -n 1 | cut -d= -f2 || true)
    policy=${policy:-delete}
    printf '%-8s %s (%s partitions, replication %s, cleanup.policy=%s)\n' "${outcome[$i]}" "${TOPICS[$i]}" \
      "${count:-?}" "${replicas:-?}" "$policy"
    if [[ ",$policy," != *",${POLICIES[$i]},"* ]]; then
      warn "${TOPICS[$i]} has cleanup.policy=$policy but needs ${POLICIES[$i]}: fix with kafka-configs.sh --bootstrap-server $BOOTSTRAP --alter --entity-type topics --entity-name ${TOPICS[$i]} --add-config cleanup.policy=${POLICIES[$i]}"
      problems=1
    elif [[ -n "$count" ]] && ((count < PARTITIONS)); then
      warn "warning: ${TOPICS[$i]} has $count partitions, fewer than $PARTITIONS: at most $count consumers of a group share it (kafka-topics.sh --alter --partitions raises it)"
    fi
    if [[ -n "$replicas" ]] && ((replicas < REPLICATION)); then
      warn "warning: ${TOPICS[$i]} has $replicas replica(s), fewer than $REPLICATION: kafka-reassign-partitions.sh adds more"
    fi
  done
  ((problems == 0))
}

# ---------------------------------------------------------------------------------------------------------------

main() {
  parse_args "$@"
  plan_topics
  quiet_logging
  find_tools
  [[ -z "$COMMAND_CONFIG" ]] || CONFIG_ARGS=(--command-config "$COMMAND_CONFIG")

  local t0 status=0
  t0=$(now_us)
  if can_run_single_jvm CREATE_TOPICS_SINGLE_JVM; then
    # Prints the replication it chose once it knows the number of brokers.
    create_single_jvm || status=$?
  else
    choose_replication
    create_per_topic || status=$?
  fi
  case "$status" in
  0) printf 'Topics ready on %s in %s s\n' "$BOOTSTRAP" "$(elapsed_s "$t0")" ;;
  2 | 3 | 4) exit "$status" ;; # said in one line already
  *)
    warn "some topics are not as required (see above)"
    exit 1
    ;;
  esac
}

main "$@"
