# bash completion for mqtx(1).                                 -*- shell-script -*-
#
# One block per command, between "# cmd: NAME" and "# end: NAME" (the docs
# test checks each block against `mqtx NAME --help`):
#   _mqtx_opts[NAME]  every option of the command
#   _mqtx_args[NAME]  the options among them that take a value
# To add a command: add its name to _mqtx_commands and one block.

_mqtx_commands="init relay check txpub redeliver dedupe-audit config"

declare -gA _mqtx_opts _mqtx_args

# cmd: common
_mqtx_opts[common]="-c --config --database-url --broker-url -v --verbose -q --quiet --log-format -h --help"
_mqtx_args[common]="-c --config --database-url --broker-url --log-format"
# end: common

# cmd: init
_mqtx_opts[init]="-p --print --schema -t --table --grant --partition-by --mode"
_mqtx_args[init]="--schema -t --table --grant --partition-by --mode"
# end: init

# cmd: relay
_mqtx_opts[relay]="-l --loop -b --batch -n --max-messages --max-time --poll-interval --dry-run --transactional --schema -t --table"
_mqtx_args[relay]="-b --batch -n --max-messages --max-time --poll-interval --schema -t --table"
# end: relay

# cmd: check
_mqtx_opts[check]="-f --format -e --explain --warn-age --crit-age --warn-attempts --max-dead --relay-stale -b --broker --queues --completion --resolve --schema -t --table"
_mqtx_args[check]="-f --format -e --explain --warn-age --crit-age --warn-attempts --max-dead --relay-stale --queues --schema -t --table"
# end: check

# cmd: txpub
_mqtx_opts[txpub]="-d --destination -r --routing-key -H --header -k --key --ordering-key --content-type -p --payload -F --payload-file -f --format -0 --null -m --mode --confirm -b --batch --report --prepare --commit --rollback --sql --schema -t --table"
_mqtx_args[txpub]="-d --destination -r --routing-key -H --header -k --key --ordering-key --content-type -p --payload -F --payload-file -f --format -m --mode --confirm -b --batch --report --sql --schema -t --table"
# end: txpub

# cmd: redeliver
_mqtx_opts[redeliver]="--id -k --key --ordering-key -d --destination -s --status --since --until --time-column -w --where --unacked-after --max-redeliveries --requeue --collect-acks --ack-source --ack-group -r --rate -n --limit -b --batch --dry-run -y --yes --sample --schema -t --table"
_mqtx_args[redeliver]="--id -k --key --ordering-key -d --destination -s --status --since --until --time-column -w --where --unacked-after --max-redeliveries --ack-source --ack-group -r --rate -n --limit -b --batch --sample --schema -t --table"
# end: redeliver

# cmd: dedupe-audit
_mqtx_opts[dedupe-audit]="-s --source --from --to --since --until -d --destination --destructive -f --format --max-details --max-duplicates --max-missing --idle-timeout --schema -t --table"
_mqtx_args[dedupe-audit]="-s --source --from --to --since --until -d --destination -f --format --max-details --max-duplicates --max-missing --idle-timeout --schema -t --table"
# end: dedupe-audit

# cmd: config
_mqtx_opts[config]="--keys"
_mqtx_args[config]=""
# end: config

# Is $1 one of the words in $2?
_mqtx_in() {
	local w
	for w in $2; do
		[[ $w == "$1" ]] && return 0
	done
	return 1
}

# Completes the value of option $1 (the value typed so far is $2).
_mqtx_value() {
	# $cmd is the command being completed (set by _mqtx)
	if [[ ${cmd-} == redeliver ]]; then
		case $1 in
		-s | --status) mapfile -t COMPREPLY < <(compgen -W "sent dead" -- "$2") && return ;;
		--time-column) mapfile -t COMPREPLY < <(compgen -W "created sent" -- "$2") && return ;;
		-r | --rate) mapfile -t COMPREPLY < <(compgen -W "10/s 100/s 1000/s 60/m" -- "$2") && return ;;
		--since | --until | --unacked-after) mapfile -t COMPREPLY < <(compgen -W "10m 30m 1h 2h 6h 1d" -- "$2") && return ;;
		esac
	fi
	if [[ ${cmd-} == dedupe-audit ]]; then
		case $1 in
		-s | --source) compopt -o filenames 2>/dev/null && mapfile -t COMPREPLY < <(compgen -f -W "- inbox: kafka:// amqp:// nats:// tls://" -- "$2") && return ;;
		-f | --format) mapfile -t COMPREPLY < <(compgen -W "text json csv" -- "$2") && return ;;
		--from | --to) mapfile -t COMPREPLY < <(compgen -W "first 0 1h 2h 1d" -- "$2") && return ;;
		--since | --until) mapfile -t COMPREPLY < <(compgen -W "5m 10m 1h 2h 1d" -- "$2") && return ;;
		--idle-timeout) mapfile -t COMPREPLY < <(compgen -W "500ms 1s 2s 5s 10s" -- "$2") && return ;;
		esac
	fi
	case $1 in
	-c | --config)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$2")
		;;
	--log-format)
		mapfile -t COMPREPLY < <(compgen -W "text json" -- "$2")
		;;
	-f | --format)
		# $cmd is the command being completed (set by _mqtx)
		if [[ ${cmd-} == txpub ]]; then
			mapfile -t COMPREPLY < <(compgen -W "lines jsonl raw" -- "$2")
		else
			mapfile -t COMPREPLY < <(compgen -W "text json prometheus" -- "$2")
		fi
		;;
	-m | --mode)
		if [[ ${cmd-} == init ]]; then
			mapfile -t COMPREPLY < <(compgen -W "status tail" -- "$2")
		else
			mapfile -t COMPREPLY < <(compgen -W "auto tx confirm kafka-tx" -- "$2")
		fi
		;;
	--confirm)
		mapfile -t COMPREPLY < <(compgen -W "sync batch async" -- "$2")
		;;
	--partition-by)
		mapfile -t COMPREPLY < <(compgen -W "hour day" -- "$2")
		;;
	-F | --payload-file | --sql | --report)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$2")
		;;
	--warn-age | --crit-age | --relay-stale)
		mapfile -t COMPREPLY < <(compgen -W "1m 2m 5m 10m 30m 1h" -- "$2")
		;;
	--max-time | --poll-interval)
		mapfile -t COMPREPLY < <(compgen -W "500ms 1s 10s 30s 50s 1m 5m" -- "$2")
		;;
	*)
		COMPREPLY=()
		;;
	esac
}

_mqtx() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	local prev=""
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	local cmd="" i w

	# The command is the first word that is neither an option nor the
	# value of a common option that takes one.
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if _mqtx_in "$w" "${_mqtx_args[common]}"; then
			# bash splits "--config=FILE" into "--config" "=" "FILE"
			[[ ${COMP_WORDS[i + 1]-} == "=" ]] && ((i++))
			((i++))
			continue
		fi
		[[ $w == -* ]] && continue
		cmd=$w
		break
	done

	local opts=${_mqtx_opts[common]} args=${_mqtx_args[common]}
	if [[ -n $cmd ]]; then
		if ! _mqtx_in "$cmd" "$_mqtx_commands"; then
			COMPREPLY=()
			return 0
		fi
		opts+=" ${_mqtx_opts[$cmd]}"
		args+=" ${_mqtx_args[$cmd]}"
	fi

	# --option=value: one word, or three when COMP_WORDBREAKS has "="
	if [[ $cur == --*=* ]]; then
		_mqtx_value "${cur%%=*}" "${cur#*=}"
		return 0
	fi
	if [[ $cur == "=" ]] && _mqtx_in "$prev" "$args"; then
		_mqtx_value "$prev" ""
		return 0
	fi
	if [[ $prev == "=" ]] && ((COMP_CWORD > 1)) && _mqtx_in "${COMP_WORDS[COMP_CWORD - 2]}" "$args"; then
		_mqtx_value "${COMP_WORDS[COMP_CWORD - 2]}" "$cur"
		return 0
	fi
	if [[ -n $prev ]] && _mqtx_in "$prev" "$args"; then
		_mqtx_value "$prev" "$cur"
		return 0
	fi

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "$opts -V --version" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "$_mqtx_commands" -- "$cur")
		fi
		return 0
	fi
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
	fi
	return 0
}

complete -F _mqtx mqtx
