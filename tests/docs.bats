#!/usr/bin/env bats
# docs.bats - fails when the documentation drifts from the CLI.
#
# The CLI is the source of truth: the commands in `mqtx --help`, the options
# in `mqtx CMD --help` and the keys in `mqtx config --keys`. Every check
# loops over those lists, so a new command, option or key needs no new test
# code, only documentation. Checked: man/*.scd, completions/ (bash, zsh,
# fish), config.example.yaml and README.md. Needs the mqtx binary and scdoc;
# no database or broker.
#
# Completion files keep one block per command between the lines
# "# cmd: NAME" and "# end: NAME" (NAME "common" for the common options).

load test_helper

ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
COMPLETIONS=(bash:completions/mqtx.bash zsh:completions/_mqtx fish:completions/mqtx.fish)

setup() {
	case $MQTX in
	/*) ;;
	*) MQTX=$PWD/$MQTX ;;
	esac
	[[ -x $MQTX ]] || fail "mqtx binary not found or not executable: $MQTX (run 'make mqtx' or set MQTX)"
	cd "$ROOT" || fail "cannot cd to $ROOT"
}

# ---------------------------------------------------------------- helpers

# Runs mqtx without the caller's MQTX_* environment and without any
# configuration file it might find (./mqtx.yaml, ~/.config, /etc).
mqtx_clean() {
	local dir=${BATS_TEST_TMPDIR:-$BATS_FILE_TMPDIR}
	# VALGRIND_TARGET: the binary tests/helpers/valgrind-run runs (MQTX)
	(cd "$dir" && env -i PATH="$PATH" HOME="$dir" LC_ALL=C ${VALGRIND_TARGET:+VALGRIND_TARGET="$VALGRIND_TARGET"} "$MQTX" "$@")
}

# `mqtx [CMD] --help`, run once per file and kept in BATS_FILE_TMPDIR
# (the completion checks ask for the same help texts hundreds of times).
help_text() {
	local f=$BATS_FILE_TMPDIR/help-${1:-top}
	[[ -f $f ]] || mqtx_clean ${1:+"$1"} --help >"$f"
	cat "$f"
}

# The commands listed under "commands:" in `mqtx --help`.
mqtx_commands() {
	help_text | awk '/^commands:$/ { f = 1; next } f && /^$/ { exit } f { print $1 }'
}

# Options (-x and --long, one per line) of the help section whose header
# starts with $2, in the help text on stdin.
help_options() {
	awk -v want="$1" '
		index($0, want) == 1 && /:$/ { f = 1; next }
		/^$/ { f = 0; next }
		f && match($0, /^ +(-[A-Za-z0-9], )?--[A-Za-z0-9][A-Za-z0-9-]*/) {
			n = split(substr($0, RSTART, RLENGTH), w, /[ ,]+/)
			for (i = 1; i <= n; i++) if (w[i] != "") print w[i]
		}'
}

# A command's own options, and the common options, from `mqtx CMD --help`.
cmd_options() { help_text "$1" | help_options "options:"; }
common_options() { help_text "$1" | help_options "common options"; }
# Options of `mqtx --help`: the common ones plus -V/--version.
top_options() { help_text | help_options "common options"; }

# has_word WORD [TEXT]: does TEXT (or stdin) contain WORD (an option) as a
# whole word? Matched in bash, without a process per question.
has_word() {
	local text re="(^|[^A-Za-z0-9_-])${1//./\\.}([^A-Za-z0-9_-]|\$)"
	if (($# > 1)); then text=$2; else text=$(cat); fi
	[[ $text =~ $re ]]
}

# Option terms of a man page: the bold lines that open an option entry.
man_terms() { grep -E '^\*-' "$1"; }

# Lines between "# cmd: $2" and "# end: $2" in file $1.
comp_block() { sed -n "/^# cmd: $2\$/,/^# end: $2\$/p" "$1"; }

# load_blocks FILE: BLOCK[NAME] = the text of every "# cmd: NAME" ...
# "# end: NAME" block of FILE (what comp_block prints), read in one pass.
declare -gA BLOCK
load_blocks() {
	local line name=""
	BLOCK=()
	while IFS= read -r line; do
		if [[ -z $name && $line =~ ^#\ cmd:\ (.+)$ ]]; then
			name=${BASH_REMATCH[1]}
		fi
		[[ -n $name ]] || continue
		BLOCK[$name]+=$line$'\n'
		[[ $line != "# end: $name" ]] || name=""
	done <"$1"
}

# comp_has_opt FORMAT OPT [TEXT]: does completion text (TEXT, or stdin) in
# FORMAT offer option OPT? Matched in bash: the callers ask thousands of times.
comp_has_opt() {
	local format=$1 opt=$2 text re
	if (($# > 2)); then text=$3; else text=$(cat); fi
	if [[ $format == fish && $opt == --* ]]; then
		re="(^|[[:space:]])-l ${opt#--}([[:space:]]|\$)"
	elif [[ $format == fish ]]; then
		re="(^|[[:space:]])-s ${opt#-}([[:space:]]|\$)"
	else
		has_word "$opt" "$text"
		return
	fi
	[[ $text =~ $re ]]
}

# Options offered by completion text on stdin (format $1), one per line.
comp_opts() {
	if [[ $1 == fish ]]; then
		grep -oE -- '(^|[[:space:]])-[sl] [A-Za-z0-9][A-Za-z0-9-]*' |
			sed -E 's/^[[:space:]]*-s /-/; s/^[[:space:]]*-l /--/'
	else
		grep -oE -- "(^|[^A-Za-z0-9_-])--?[A-Za-z0-9][A-Za-z0-9-]*" | sed -E 's/^[^-]//'
	fi
}

# Is the command $2 offered at the top level by completion file $3 (format $1)?
comp_has_command() {
	case $1 in
	bash) grep -qE "^_mqtx_commands=\"([^\"]* )?$2( [^\"]*)?\"" "$3" ;;
	zsh) grep -qE "^[[:space:]]*'$2:" "$3" ;;
	fish) comp_block "$3" "$2" | grep -qE -- "-a $2([[:space:]]|\$)" ;;
	esac
}

# Configuration keys, one per line.
config_keys() { mqtx_clean --config /dev/null config --keys | cut -f1; }

# Dotted paths of the keys in a YAML file written like config.example.yaml:
# set ("key: value") or commented out ("# key: value", the "#" in the key's
# column). Sections come out too ("broker", "broker.tls").
example_paths() {
	awk '
		match($0, /^ *(# )?[a-z_]+:( |$)/) {
			line = $0
			indent = match(line, /[^ ]/) - 1
			sub(/^ *(# )?/, "", line)
			key = substr(line, 1, index(line, ":") - 1)
			while (depth > 0 && ind[depth] >= indent) depth--
			depth++
			ind[depth] = indent
			name[depth] = key
			path = name[1]
			for (i = 2; i <= depth; i++) path = path "." name[i]
			print path
		}' "$1"
}

# Collects problems; report_problems fails with all of them at once.
problems=()
problem() { problems+=("$*"); }
report_problems() {
	if ((${#problems[@]})); then
		printf '%s\n' "${problems[@]}" >&2
		fail "${#problems[@]} documentation problem(s), listed above"
	fi
}

# ------------------------------------------------------------------ tests

@test "docs: the command list, option lists and keys can be read from mqtx" {
	local cmd
	run mqtx_commands
	assert_success
	[[ -n $output ]] || fail "no commands found under 'commands:' in 'mqtx --help'"
	for cmd in $(mqtx_commands); do
		run mqtx_clean "$cmd" --help
		assert_success
		run common_options "$cmd"
		assert_line --help
	done
	run top_options
	assert_line --version
	run config_keys
	assert_success
	[[ ${#lines[@]} -gt 10 ]] || fail "'mqtx config --keys' listed only ${#lines[@]} key(s)"
}

@test "docs: every command listed by mqtx --help has a man page and is in mqtx(1)" {
	local cmd
	for cmd in $(mqtx_commands); do
		[[ -f man/mqtx-$cmd.1.scd ]] || problem "$cmd: no man page man/mqtx-$cmd.1.scd"
		grep -qxF "*$cmd*" man/mqtx.1.scd || problem "$cmd: not in COMMANDS of man/mqtx.1.scd (a line '*$cmd*')"
		grep -qF "*mqtx-$cmd*(1)" man/mqtx.1.scd || problem "$cmd: mqtx-$cmd(1) not referenced in man/mqtx.1.scd"
	done
	report_problems
}

@test "docs: every option of every command is in the command's man page" {
	local cmd opt page terms text
	for cmd in $(mqtx_commands); do
		page=man/mqtx-$cmd.1.scd
		[[ -f $page ]] || { problem "$cmd: no man page $page"; continue; }
		terms=$(man_terms "$page") text=$(<"$page")
		# the command's own options open an entry under OPTIONS
		for opt in $(cmd_options "$cmd"); do
			has_word "$opt" "$terms" || problem "$page: no option entry (a line '*$opt ...*') for $opt"
		done
		for opt in $(common_options "$cmd"); do
			has_word "$opt" "$text" || problem "$page: common option $opt is not mentioned"
		done
	done
	report_problems
}

@test "docs: man pages document no option their command lacks" {
	local cmd opt page known
	for cmd in $(mqtx_commands); do
		page=man/mqtx-$cmd.1.scd
		[[ -f $page ]] || continue
		known=" $(cmd_options "$cmd" | tr '\n' ' ') $(common_options "$cmd" | tr '\n' ' ') "
		for opt in $(man_terms "$page" | grep -oE -- '(^|[^A-Za-z0-9_-])--?[A-Za-z0-9][A-Za-z0-9-]*' | sed -E 's/^[^-]//' | sort -u); do
			[[ $known == *" $opt "* ]] || problem "$page: documents $opt, which 'mqtx $cmd --help' does not list"
		done
	done
	report_problems
}

@test "docs: mqtx(1) documents every top-level option" {
	local opt
	for opt in $(top_options); do
		man_terms man/mqtx.1.scd | has_word "$opt" || problem "man/mqtx.1.scd: no option entry for $opt"
	done
	report_problems
}

@test "docs: every command and option is in the bash, zsh and fish completions" {
	local entry format file cmd opt whole
	for entry in "${COMPLETIONS[@]}"; do
		format=${entry%%:*} file=${entry#*:}
		[[ -f $file ]] || { problem "$file: missing"; continue; }
		load_blocks "$file"
		whole=$(<"$file")
		[[ -n ${BLOCK[common]:-} ]] || problem "$file: no block '# cmd: common' ... '# end: common'"
		for opt in $(top_options); do
			case $opt in
			-V | --version) comp_has_opt "$format" "$opt" "$whole" ;;
			*) comp_has_opt "$format" "$opt" "${BLOCK[common]:-}" ;;
			esac || problem "$file: top-level option $opt is not offered"
		done
		for cmd in $(mqtx_commands); do
			if [[ -z ${BLOCK[$cmd]:-} ]]; then
				problem "$file: no block '# cmd: $cmd' ... '# end: $cmd'"
				continue
			fi
			comp_has_command "$format" "$cmd" "$file" || problem "$file: command $cmd is not offered"
			for opt in $(cmd_options "$cmd"); do
				comp_has_opt "$format" "$opt" "${BLOCK[$cmd]}" || problem "$file: $cmd option $opt is not in the '$cmd' block"
			done
			for opt in $(common_options "$cmd"); do
				comp_has_opt "$format" "$opt" "${BLOCK[common]:-}" || problem "$file: common option $opt (of $cmd) is not in the 'common' block"
			done
		done
	done
	report_problems
}

@test "docs: completions offer no option a command lacks" {
	local entry format file cmd opt known
	for entry in "${COMPLETIONS[@]}"; do
		format=${entry%%:*} file=${entry#*:}
		[[ -f $file ]] || continue
		for cmd in common $(mqtx_commands); do
			if [[ $cmd == common ]]; then
				known=" $(top_options | tr '\n' ' ') "
			else
				known=" $(cmd_options "$cmd" | tr '\n' ' ') $(common_options "$cmd" | tr '\n' ' ') "
			fi
			# leave out comments and shell declarations ("local -a")
			for opt in $(comp_block "$file" "$cmd" | grep -vE '^[[:space:]]*(#|local |typeset |declare )' |
				comp_opts "$format" | sort -u); do
				[[ $known == *" $opt "* ]] || problem "$file: the '$cmd' block offers $opt, which mqtx does not have"
			done
		done
	done
	report_problems
}

@test "docs: every config key is in mqtx.yaml(5)" {
	local key
	for key in $(config_keys); do
		grep -q "^\*${key//./\\.}\*" man/mqtx.yaml.5.scd || problem "man/mqtx.yaml.5.scd: no entry (a line '*$key* ...') for $key"
	done
	report_problems
}

@test "docs: mqtx.yaml(5) documents no unknown key" {
	local keys key
	keys=" $(config_keys | tr '\n' ' ') "
	# key entries look like "*relay.batch_size* (integer, ..."
	for key in $(grep -oE '^\*[a-z_]+(\.[a-z_]+)+\* \(' man/mqtx.yaml.5.scd | tr -d '*( '); do
		[[ $keys == *" $key "* ]] || problem "man/mqtx.yaml.5.scd: documents $key, which 'mqtx config --keys' does not list"
	done
	report_problems
}

@test "docs: every config key is in config.example.yaml, set or commented out" {
	local paths key
	paths=" $(example_paths config.example.yaml | tr '\n' ' ') "
	for key in $(config_keys); do
		[[ $paths == *" $key "* ]] || problem "config.example.yaml: no '$key' (write it in its section, or as '# ${key##*.}: ...')"
	done
	report_problems
}

@test "docs: config.example.yaml names no unknown key" {
	local keys path
	keys=" $(config_keys | tr '\n' ' ') "
	for path in $(example_paths config.example.yaml); do
		[[ $path == broker.kafka.* ]] && continue # librdkafka properties
		[[ $keys == *" $path "* || $keys == *" $path."* ]] || problem "config.example.yaml: '$path' is not a configuration key"
	done
	report_problems
}

@test "docs: config.example.yaml loads without a warning" {
	run --separate-stderr mqtx_clean --config "$ROOT/config.example.yaml" config
	assert_success
	[[ -z $stderr ]] || fail "mqtx printed on stderr: $stderr"
}

@test "docs: config.example.yaml shows the default of every key" {
	local line key value def
	local -A shown
	# "key = value<TAB># origin"
	while IFS= read -r line; do
		key=${line%% = *}
		value=${line#* = }
		shown[$key]=${value%%$'\t'#*}
	done < <(mqtx_clean --config "$ROOT/config.example.yaml" config)
	# "key<TAB>type<TAB>default<TAB>env<TAB>help"; the default may be empty
	while IFS= read -r line; do
		key=${line%%$'\t'*}
		def=${line#*$'\t'}
		def=${def#*$'\t'}
		def=${def%%$'\t'*}
		[[ ${shown[$key]-} == "$def" ]] || problem "config.example.yaml: $key is '${shown[$key]-}', the default is '$def'"
	done < <(mqtx_clean --config /dev/null config --keys)
	report_problems
}

@test "docs: config.example.yaml still loads with its commented-out examples enabled" {
	# "# key: value" -> "key: value"; "#   prop: value" under a commented-out
	# mapping (broker.kafka) -> "  prop: value"
	sed -E 's/^( *)# ([a-z_]+:( |$))/\1\2/; s/^( *)# ( +[^ #][^:]*:( |$))/\1\2/' \
		config.example.yaml >"$BATS_TEST_TMPDIR/all.yaml"
	# give every ${VAR} it uses a value
	local -a vars=()
	local v
	for v in $(grep -oE '\$\{[A-Za-z_][A-Za-z0-9_]*\}' config.example.yaml | tr -d '${}' | sort -u); do
		vars+=("$v=example")
	done
	cd "$BATS_TEST_TMPDIR" || fail "cannot cd to $BATS_TEST_TMPDIR"
	run env -i PATH="$PATH" HOME="$BATS_TEST_TMPDIR" LC_ALL=C ${VALGRIND_TARGET:+VALGRIND_TARGET="$VALGRIND_TARGET"} "${vars[@]}" "$MQTX" --config all.yaml config
	assert_success
	# more keys are set than in the plain file
	local plain all
	plain=$(mqtx_clean --config "$ROOT/config.example.yaml" config | grep -vc '# default$')
	all=$(printf '%s\n' "$output" | grep -vc '# default$')
	((all > plain)) || fail "no commented-out example was enabled ($all keys set, $plain without them)"
}

@test "docs: every man page builds with scdoc without warnings" {
	command -v scdoc >/dev/null || skip "scdoc is not installed (apt-get install scdoc)"
	local f err
	for f in man/*.scd; do
		err=$(scdoc <"$f" 2>&1 >"$BATS_TEST_TMPDIR/page") || { problem "$f: scdoc failed: $err"; continue; }
		[[ -z $err ]] || problem "$f: scdoc: $err"
		[[ -s $BATS_TEST_TMPDIR/page ]] || problem "$f: scdoc produced nothing"
	done
	report_problems
}

@test "docs: every man page renders with man without warnings" {
	command -v scdoc >/dev/null || skip "scdoc is not installed (apt-get install scdoc)"
	command -v man >/dev/null || skip "man is not installed"
	local f err page
	for f in man/*.scd; do
		page=$BATS_TEST_TMPDIR/$(basename "${f%.scd}")
		scdoc <"$f" >"$page" 2>/dev/null || continue # reported by the scdoc test
		err=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
		[[ -z $err ]] || problem "$f: man: $err"
	done
	report_problems
}

@test "docs: README.md has a section per command" {
	[[ -f README.md ]] || skip "README.md does not exist yet (it is written separately)"
	local cmd
	for cmd in $(mqtx_commands); do
		grep -qE "^#{1,6} .*mqtx $cmd([^A-Za-z0-9_-]|\$)" README.md || problem "README.md: no heading with 'mqtx $cmd' (e.g. '## mqtx $cmd')"
	done
	report_problems
}
