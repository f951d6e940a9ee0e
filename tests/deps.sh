#!/bin/sh
# Installs the Debian packages mqtx needs to build and test, when missing,
# then the Apache Kafka broker the tests and bench run (its jars, through
# Maven, from tests/kafka/pom.xml into ~/.cache/mqtx: tests/helpers/kafka.sh
# fetch). As root: apt-get install. Otherwise: print the exact command and fail.
set -eu
PKGS="gcc make pkg-config libpq-dev librabbitmq-dev librdkafka-dev libnats-dev libyaml-dev libssl-dev
postgresql-15 postgresql-client-15 rabbitmq-server amqp-tools kcat nats-server
bats bats-assert bats-support scdoc jq clang clang-format libclang-rt-14-dev valgrind procps python3 time openssl"
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
# Java 17 and Maven only start the Kafka broker in tests; a JDK installed
# otherwise (not from Debian) is fine.
command -v java >/dev/null 2>&1 || missing="$missing openjdk-17-jre-headless"
command -v mvn >/dev/null 2>&1 || missing="$missing maven"
fetch_kafka() {
	bash "$(dirname "$0")/helpers/kafka.sh" fetch
}
[ -z "$missing" ] && {
	fetch_kafka
	exit 0
}
if [ "$(id -u)" -eq 0 ]; then
	echo "deps: installing:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >&2
else
	echo "deps: missing Debian packages; run:" >&2
	echo "  sudo apt-get install -y$missing" >&2
	exit 1
fi
fetch_kafka
