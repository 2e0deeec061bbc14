#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, one combined broker+controller node, 127.0.0.1 only) for
# the integration tests: a mock cannot show what a rebalance, a compacted topic or a broker
# killed mid-write really does. The jars come from Maven Central into a cache outside the tree.
#
# usage: scripts/kafka.sh fetch                     resolve the jars (once), print the libs dir
#        scripts/kafka.sh start DIR [PORT]          format DIR (first time only), start, print HOST:PORT
#        scripts/kafka.sh stop DIR                  SIGTERM, SIGKILL after 20 s
#        scripts/kafka.sh kill DIR                  SIGKILL at once (chaos tests)
#        scripts/kafka.sh topic DIR NAME PARTITIONS [compact]
#        scripts/kafka.sh tool DIR CLASS [ARGS...]  run a Kafka tools class against DIR's broker
# A second `start` on a DIR that was stopped or killed keeps its ports, topics and offsets.
# Env: KAFKA_VERSION (default 4.4.0: its broker runs on Java 17), JAVA (default java),
# KAFKA_LOG_LEVEL (default warn; info to see why a broker misbehaves), LIBER_HOME (default
# ~/.cache/liber; jars in $LIBER_HOME/kafka/VERSION/libs).
set -euo pipefail

version="${KAFKA_VERSION:-4.4.0}"
java="${JAVA:-java}"
libs="${LIBER_HOME:-$HOME/.cache/liber}/kafka/$version/libs"
# Quiet logs: warnings only, plus the one line that says the broker is up. C1 only and the
# serial GC: a test broker lives seconds to minutes on 2 cores, so startup CPU matters most.
jvm=(-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.showDateTime=true
     -Dorg.slf4j.simpleLogger.defaultLogLevel="${KAFKA_LOG_LEVEL:-warn}"
     -Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info)

die() { echo "kafka.sh: $*" >&2; exit 1; }

fetch() {
  [[ -f "$libs/.complete" ]] && return 0   # the marker is written last: its presence means all jars
  local tmp; tmp="$(mktemp -d)"
  # kafka-tools pulls in Kafka Connect's runtime (Jetty, Jersey: half the jars), which the
  # topic and console tools never load. slf4j 2 + slf4j-simple: Kafka's pom names no binding.
  dep() { echo "<dependency><groupId>$1</groupId><artifactId>$2</artifactId><version>$3</version>${4:-}</dependency>"; }
  cat >"$tmp/pom.xml" <<EOF
<project><modelVersion>4.0.0</modelVersion><groupId>liber</groupId><artifactId>kafka-jars</artifactId>
<version>1</version><dependencies>
$(dep org.apache.kafka kafka_2.13 "$version")
$(dep org.apache.kafka kafka-tools "$version" '<exclusions><exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion></exclusions>')
$(dep org.slf4j slf4j-api 2.0.17)
$(dep org.slf4j slf4j-simple 2.0.17)
</dependencies></project>
EOF
  (cd "$tmp" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/libs") \
    >"$tmp/mvn.log" 2>&1 && [[ -f "$tmp/libs/kafka_2.13-$version.jar" ]] \
    || { cat "$tmp/mvn.log" >&2; rm -rf "$tmp"; die "mvn could not resolve Kafka $version"; }
  mkdir -p "$(dirname "$libs")" && rm -rf "$libs" && mv "$tmp/libs" "$libs" && rm -rf "$tmp"
  touch "$libs/.complete"
}

# Two distinct free ports at once (both sockets open together, so they cannot collide).
free_ports() { python3 -c 'import socket; s=[socket.socket() for _ in "ab"]
[x.bind(("127.0.0.1", 0)) for x in s]; print(*[x.getsockname()[1] for x in s])'; }

# The broker's pid, only if that process is still the broker started on this DIR
# (a stale pid file after a reboot or SIGKILL may name an unrelated process).
broker_pid() {
  local pid; pid="$(cat "$1/pid" 2>/dev/null)" || return 1
  [[ -n "$pid" ]] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF "kafka.Kafka $1/server.properties" \
    && echo "$pid"
}

# Not kill -0: a dead broker lingers as a zombie until its parent (or the reaper) waits.
alive() { [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" =~ ^[^ZX]$ ]]; }

address() { sed -n 's|^advertised.listeners=PLAINTEXT://||p' "$1/server.properties"; }

start() {
  local dir="$1" port cport
  broker_pid "$dir" >/dev/null && die "a broker already runs on $dir ($(address "$dir"))"
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    read -r port cport < <(free_ports)
    port="${2:-$port}"
    # Static voters (controller.quorum.voters): one fixed node needs no dynamic quorum.
    # One partition for the internal topics: their default 50 costs seconds on 2 cores.
    # A short broker session: after SIGKILL the restarted controller refuses the broker's new
    # registration until the old one's session expires (default 9 s, so 11 s per restart).
    cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
EOF
    # A cluster id as `kafka-storage random-uuid` makes one (16 random bytes, base64url, no
    # padding, no leading '-'), in python3 to spare a JVM start.
    local id; id="$(python3 -c 'import base64,os
while (s:=base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")).startswith("-"): pass
print(s)')"
    "$java" -Xmx256m "${jvm[@]}" -cp "$libs/*" kafka.tools.StorageTool format \
      -t "$id" -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
      || { cat "$dir/format.log" >&2; die "formatting $dir failed"; }
  elif [[ -n "${2:-}" && "$2" != "$(address "$dir" | sed 's/.*://')" ]]; then
    die "$dir was formatted for another port: $(address "$dir")"
  fi
  [[ -f "$dir/broker.log" ]] && mv "$dir/broker.log" "$dir/broker.log.prev"
  port="$(address "$dir")"; port="${port##*:}"
  local t0=$SECONDS
  "$java" -Xms256m -Xmx512m "${jvm[@]}" -cp "$libs/*" kafka.Kafka "$dir/server.properties" \
    </dev/null >"$dir/broker.log" 2>&1 &
  echo $! >"$dir/pid"
  # Ready = the port accepts AND the broker logged that it started (the socket opens before
  # the metadata is loaded). Idle, that takes 2-5 s; 60 s leaves room for a busy machine.
  until grep -qs 'Kafka Server started' "$dir/broker.log" && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    alive "$(cat "$dir/pid")" || { tail -20 "$dir/broker.log" >&2; die "the broker exited"; }
    (( SECONDS - t0 < 60 )) || { stop "$dir"; tail -20 "$dir/broker.log" >&2; die "not ready after 60 s"; }
    sleep 0.2
  done
  echo "127.0.0.1:$port"
}

# SIGNAL DIR [SECONDS]: signal the broker, wait until it is gone.
signal() {
  local pid; pid="$(broker_pid "$2")" || { rm -f "$2/pid"; return 0; }
  kill "-$1" "$pid"
  for _ in $(seq $((${3:-600} * 10))); do alive "$pid" || { rm -f "$2/pid"; return 0; }; sleep 0.1; done
  return 1
}

stop() { signal TERM "$1" 20 || { echo "kafka.sh: SIGKILL after 20 s" >&2; signal KILL "$1"; }; }

tool() {   # tools are short-lived JVMs: small heap, same quiet logging
  local dir="$1" class="$2"; shift 2
  [[ -f "$dir/server.properties" ]] || die "no broker in $dir"
  "$java" -Xmx256m "${jvm[@]}" -cp "$libs/*" "$class" --bootstrap-server "$(address "$dir")" "$@"
}

cmd="${1:-}"; shift || true
# Absolute DIR: it is how broker_pid recognises the broker's command line.
if [[ "$cmd" =~ ^(start|stop|kill|topic|tool)$ && $# -ge 1 ]]; then
  [[ "$cmd" == start ]] && mkdir -p "$1"
  [[ -d "$1" ]] || { [[ "$cmd" =~ ^(stop|kill)$ ]] && exit 0; die "no such directory: $1"; }
  set -- "$(cd "$1" && pwd)" "${@:2}"
fi
case "$cmd" in
  fetch) fetch; echo "$libs" ;;
  start) [[ $# -ge 1 ]] || die "usage: start DIR [PORT]"; fetch; start "$@" ;;
  stop)  [[ $# -eq 1 ]] || die "usage: stop DIR"; stop "$1" ;;
  kill)  [[ $# -eq 1 ]] || die "usage: kill DIR"; signal KILL "$1" ;;
  topic) [[ $# -ge 3 ]] || die "usage: topic DIR NAME PARTITIONS [compact]"
         extra=(); [[ "${4:-}" == compact ]] && extra=(--config cleanup.policy=compact)
         tool "$1" org.apache.kafka.tools.TopicCommand --create --topic "$2" \
           --partitions "$3" --replication-factor 1 "${extra[@]}" ;;
  tool)  [[ $# -ge 2 ]] || die "usage: tool DIR CLASS [ARGS...]"; tool "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
