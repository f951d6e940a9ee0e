#!/usr/bin/env bash
# layout.sh - the include-direction test: lib/'s layers depend one way.
#
#   base -> config -> db ----------.
#              \                    >-> engines -> render -> cmd
#               `--> broker -------'
#
# engines are relay, txpub, redeliver, check and audit; an engine may use
# another engine's public header (check resolves txpub's in-doubt items),
# never render or cmd. Private headers stay private: broker/internal.h
# inside lib/broker, audit/source.h inside lib/audit. Every file under
# lib/ lives in a known layer folder. Prints each violation as
# FILE:LINE: reason, then a summary line; exit 1 when there is any.
# Also: client libraries (libpq, rabbitmq-c, librdkafka, libnats) only in
# their own folder, and no printing in lib/ outside lib/render and the log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

engines="relay txpub redeliver check audit"
declare -A allowed=(
	[base]="base"
	[config]="base config"
	[db]="base config db"
	[broker]="base config broker"
	[render]="base config $engines render broker"
)
for e in $engines; do allowed[$e]="base config db broker $engines"; done

bad=0 files=0
violation() {
	printf '%s\n' "$1"
	bad=$((bad + 1))
}

while IFS= read -r f; do
	files=$((files + 1))
	rel=${f#lib/}
	layer=${rel%%/*}
	if [[ $rel != */* || -z ${allowed[$layer]+x} ]]; then
		violation "$f:1: not in a layer folder (lib/{base,config,db,broker,relay,txpub,redeliver,check,audit,render}/)"
		continue
	fi
	n=0
	while IFS= read -r line; do
		n=$((n + 1))
		[[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]+\"([^\"]+)\" ]] || continue
		inc=${BASH_REMATCH[1]}
		[[ $inc == */* ]] || continue # a header of the same folder
		to=${inc%%/*}
		case $inc in
		broker/internal.h) [[ $layer == broker ]] || violation "$f:$n: includes $inc, private to lib/broker (use broker/broker.h)" ;;
		audit/source.h) [[ $layer == audit ]] || violation "$f:$n: includes $inc, private to lib/audit" ;;
		esac
		[[ " ${allowed[$layer]} " == *" $to "* ]] ||
			violation "$f:$n: $layer/ must not include $inc (a $layer file may include: ${allowed[$layer]})"
	done <"$f"
done < <(find lib -type f \( -name '*.c' -o -name '*.h' \) | sort)

# Client libraries stay in their layer: libpq in lib/db, each broker's
# library in its own folder (cmd/ included: it reaches them through lib/).
while IFS= read -r hit; do
	f=${hit%%:*}
	rest=${hit#*:}
	n=${rest%%:*}
	inc=$(sed -n "${n}p" "$f")
	case $inc in
	*libpq-fe.h*) [[ $f == lib/db/* ]] || violation "$f:$n: includes libpq outside lib/db (use db/pg.h's types and functions)" ;;
	*amqp*.h* | *rabbitmq-c/*) [[ $f == lib/broker/amqp/* ]] || violation "$f:$n: includes rabbitmq-c outside lib/broker/amqp" ;;
	*librdkafka/*) [[ $f == lib/broker/kafka/* ]] || violation "$f:$n: includes librdkafka outside lib/broker/kafka" ;;
	*nats/nats.h*) [[ $f == lib/broker/nats/* ]] || violation "$f:$n: includes libnats outside lib/broker/nats" ;;
	esac
done < <(grep -nE '#[[:space:]]*include[[:space:]]*<(libpq-fe\.h|amqp[a-z_]*\.h|rabbitmq-c/|librdkafka/|nats/nats\.h)' -r lib cmd | sort)

# lib/ never prints: output is lib/render's, messages go through lib/base/log.
while IFS=: read -r f n _; do
	violation "$f:$n: prints from lib/ (return an error, log through base/log.h, or render in lib/render)"
done < <(grep -nE '\b(printf|puts|putchar|perror)[[:space:]]*\(|\bf(printf|puts|write)[[:space:]]*\([[:space:]]*std(out|err)' -r lib |
	grep -vE '^lib/(render/|base/log\.c:)' || true)

# cmd/ may include anything of lib/, and lib/ nothing of cmd/ (checked
# above: "cmd" is in no layer's list); cmd/ must not reach private headers
# (unit tests may: they test the private parts).
while IFS=: read -r f n _; do
	violation "$f:$n: includes a header private to lib/ (broker/internal.h or audit/source.h)"
done < <(grep -nE '#[[:space:]]*include[[:space:]]+"(broker/internal|audit/source)\.h"' cmd/*.c cmd/*.h 2>/dev/null || true)

if ((bad > 0)); then
	printf 'layout: %d violation(s) of the layer rules in %d files\n' "$bad" "$files"
	exit 1
fi
printf 'layout: %d files, includes follow the layer order\n' "$files"
