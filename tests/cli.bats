#!/usr/bin/env bats
# Command line and configuration: bad input gets a clear one-line error
# naming what and where, and the documented exit code.

load test_helper

setup() {
	cd "$BATS_TEST_TMPDIR" || exit 1
	unset MQTX_CONFIG MQTX_DATABASE_URL MQTX_BROKER_URL
	export HOME=$BATS_TEST_TMPDIR XDG_CONFIG_HOME=$BATS_TEST_TMPDIR/xdg
}

@test "cli: --help works without any server or config, for every command" {
	run_mqtx 0 --help
	assert_output --partial "commands:"
	for c in init relay config; do
		MQTX_CONFIG=/nonexistent run_mqtx 0 "$c" --help
		assert_output --partial "usage: mqtx $c"
		assert_output --partial "exit status:"
	done
	run_mqtx 0 --version
	assert_output --regexp '^mqtx [0-9]+\.[0-9]+\.[0-9]+( \(test build: failpoints enabled\))?$'
}

@test "cli: unknown command, unknown option and a missing value are usage errors (exit 2)" {
	run_mqtx 2 frobnicate
	stderr_has "unknown command 'frobnicate'"
	run_mqtx 2 relay --frob
	stderr_has "unknown option '--frob'"
	run_mqtx 2 relay --batch
	stderr_has "option '--batch' needs a value"
	run_mqtx 2 relay --batch lots
	stderr_has "option --batch: expected a whole number, got 'lots'"
	run_mqtx 2 relay --max-time 10
	stderr_has "invalid duration '10'"
	run_mqtx 2 relay extra
	stderr_has "unexpected argument 'extra'"
	run_mqtx 2
}

# bats test_tags=valgrind
@test "cli: config errors name file, line, column and key, with a suggestion (exit 3)" {
	printf 'relay:\n  batch_szie: 10\n' >bad.yaml
	run_mqtx 3 --config bad.yaml config
	stderr_has "bad.yaml:2:3: relay.batch_szie: unknown key (did you mean 'batch_size'?)"
	printf 'relay:\n  batch_size: ten\n' >bad.yaml
	run_mqtx 3 --config bad.yaml config
	stderr_has "bad.yaml:2:15: relay.batch_size: expected a whole number, got 'ten'"
	printf 'relay:\n  max_attempts: 0\n' >bad.yaml
	run_mqtx 3 --config bad.yaml config
	stderr_has "relay.max_attempts: 0 is out of range (1 to 1000000)"
	printf 'relay: [1, 2]\n' >bad.yaml
	run_mqtx 3 --config bad.yaml config
	stderr_has "bad.yaml:1:8: relay: expected a mapping of keys, got a list"
	printf 'relay:\n  batch_size: 1\n  batch_size: 2\n' >bad.yaml
	run_mqtx 3 --config bad.yaml config
	stderr_has "relay.batch_size: key given twice"
	printf 'database:\n  url: ${NO_SUCH_VAR_MQTX}\n' >bad.yaml
	run_mqtx 3 --config bad.yaml config
	stderr_has "bad.yaml:2:8: database.url: environment variable 'NO_SUCH_VAR_MQTX' is not set"
}

# bats test_tags=valgrind
@test "cli: malformed files: truncated, binary, huge, missing, a directory (exit 3, nothing else happens)" {
	printf 'relay:\n  batch_size: [1\n' >t.yaml
	run_mqtx 3 --config t.yaml config
	stderr_has "t.yaml:"
	head -c 300 /dev/urandom >bin.yaml
	printf '\0' >>bin.yaml
	run_mqtx 3 --config bin.yaml config
	stderr_has "bin.yaml:"
	yes '# padding line for a config file that is far too large' | head -c 10485760 >huge.yaml
	run_mqtx 3 --config huge.yaml config
	stderr_has "config file 'huge.yaml' is larger than 1 MiB"
	run_mqtx 3 --config missing.yaml config
	stderr_has "cannot open config file 'missing.yaml'"
	mkdir dir.yaml
	run_mqtx 3 --config dir.yaml config
	stderr_has "is a directory"
	[[ ${#stderr_lines[@]} -le 2 ]]
}

# bats test_tags=valgrind
@test "cli: precedence is flag > env > file > default, and config shows where each value came from" {
	printf 'relay:\n  batch_size: 11\n  max_attempts: 4\n' >mqtx.yaml
	run_mqtx 0 config
	assert_line "relay.batch_size = 11	# mqtx.yaml:2:15"
	assert_line "relay.poll_interval = 1s	# default"
	MQTX_RELAY_BATCH_SIZE=22 run_mqtx 0 config
	assert_line "relay.batch_size = 22	# env MQTX_RELAY_BATCH_SIZE"
	assert_line "relay.max_attempts = 4	# mqtx.yaml:3:17"
	MQTX_RELAY_BATCH_SIZE=22 run_mqtx 0 relay --help
	MQTX_RELAY_BATCH_SIZE=bad run_mqtx 3 config
	stderr_has "environment variable MQTX_RELAY_BATCH_SIZE (relay.batch_size): expected a whole number, got 'bad'"
	mkdir -p xdg/mqtx && printf 'relay:\n  batch_size: 33\n' >xdg/mqtx/config.yaml && rm mqtx.yaml
	run_mqtx 0 config
	assert_line "relay.batch_size = 33	# $BATS_TEST_TMPDIR/xdg/mqtx/config.yaml:2:15"
	printf 'relay:\n  batch_size: 44\n' >other.yaml
	MQTX_CONFIG=other.yaml run_mqtx 0 config
	assert_line "relay.batch_size = 44	# other.yaml:2:15"
}

@test "cli: secrets are redacted in config output and errors, and scrubbed from the process list" {
	printf 'database:\n  url: postgresql://u:hunter2@127.0.0.1:1/x\nbroker:\n  kafka:\n    sasl.password: hunter3\n' >mqtx.yaml
	chmod 600 mqtx.yaml
	run_mqtx 0 config
	refute_output --partial hunter2
	refute_output --partial hunter3
	assert_line --partial "database.url = postgresql://u:***@127.0.0.1:1/x"
	chmod 644 mqtx.yaml
	run_mqtx 0 config
	stderr_has "contains a password and is readable by others"
	rm mqtx.yaml
	mqtx_bg relay --loop --database-url "postgresql://u:hunter4@127.0.0.1:1/x" --broker-url "amqp://g:hunter5@127.0.0.1:1/"
	# both URLs are scrubbed before the first connection attempt fails
	wait_until 30 grep -q "cannot connect" "$MQTX_BG_ERR"
	cmdline=$(tr '\0' ' ' </proc/"$MQTX_BG_PID"/cmdline)
	mqtx_bg_stop TERM 10
	# Under valgrind, /proc/PID/cmdline is valgrind's own copy of argv,
	# which mqtx cannot reach; the scrubbing is checked in the other passes.
	if [[ -z ${VALGRIND_TARGET:-} ]]; then
		[[ $cmdline != *hunter4* && $cmdline != *hunter5* ]] || fail "password visible in /proc/PID/cmdline: $cmdline"
	fi
	! grep -q hunter "$MQTX_BG_ERR" || fail "password in stderr: $(cat "$MQTX_BG_ERR")"
	grep -q "a password was given on the command line" "$MQTX_BG_ERR"
}

@test "cli: a password file is used and never shown" {
	printf 'hunter6\n' >pw
	printf 'database:\n  url: postgresql://u@127.0.0.1:1/x\n  password_file: pw\n' >mqtx.yaml
	run_mqtx 4 init
	stderr_lacks hunter6
	printf 'database:\n  url: postgresql://u@127.0.0.1:1/x\n  password_file: nope\n' >mqtx.yaml
	run_mqtx 3 init
	stderr_has "cannot open password file 'nope'"
}

# bats test_tags=valgrind
@test "cli: no database or broker URL is a config error naming the settings" {
	run_mqtx 3 init
	stderr_has "no database URL (set --database-url, MQTX_DATABASE_URL or database.url)"
	MQTX_DATABASE_URL=postgresql://127.0.0.1:1/x run_mqtx 3 relay
	stderr_has "no broker URL (set --broker-url, MQTX_BROKER_URL or broker.url)"
	MQTX_DATABASE_URL=postgresql://127.0.0.1:1/x MQTX_BROKER_URL=ftp://u:pw@x run_mqtx 3 relay
	stderr_has "unsupported broker URL scheme 'ftp'"
	MQTX_DATABASE_URL=postgresql://127.0.0.1:1/x MQTX_BROKER_URL=localhost:5672 run_mqtx 3 relay
	stderr_has "has no scheme"
	MQTX_BROKER_URL=amqp://127.0.0.1:1/ run_mqtx 3 relay
	stderr_has "no database URL"
}

@test "cli: stdout write errors are reported" {
	[[ -w /dev/full ]] || skip "no /dev/full"
	run bash -c '"$MQTX" config --keys >/dev/full'
	assert_failure 7
	[[ $output == *"cannot write to standard output"* ]]
}

@test "cli: with --log-format json (or MQTX_LOG_FORMAT=json) usage and configuration errors are JSON lines too" {
	local args
	for args in "--log-format json frobnicate" "--log-format json" "relay --log-format json --frob" \
		"relay --log-format=json --batch lots" "redeliver --log-format json"; do
		# shellcheck disable=SC2086 # split on purpose
		run_mqtx 2 $args
		[[ -n $stderr ]] || fail "no error for: mqtx $args"
		while IFS= read -r line; do
			jq -e '.level == "error" and (.msg | type) == "string"' <<<"$line" >/dev/null 2>&1 ||
				fail "mqtx $args: not a JSON log line: $line"
		done <<<"$stderr"
	done
	MQTX_LOG_FORMAT=json run_mqtx 2 relay --frob
	jq -e '.msg | contains("unknown option")' <<<"$stderr" >/dev/null || fail "not JSON: $stderr"
	printf 'relay:\n  batch_szie: 10\n' >bad.yaml
	MQTX_LOG_FORMAT=json run_mqtx 3 --config bad.yaml config
	jq -e '.msg | contains("batch_szie")' <<<"$stderr" >/dev/null || fail "not JSON: $stderr"
	run_mqtx 2 relay --frob
	stderr_has "Try 'mqtx relay --help'."
}
