# fish completion for mqtx(1).
#
# One block per command, between "# cmd: NAME" and "# end: NAME" (the docs
# test checks each block against `mqtx NAME --help`): a line for the command
# itself and one per option, each guarded by __mqtx_using NAME. To add a
# command: add it to __mqtx_commands and add one block.

set -g __mqtx_commands init relay config

# True when the command line has no command yet.
function __mqtx_no_command
    not __fish_seen_subcommand_from $__mqtx_commands
end

# True when the command on the command line is $argv[1].
function __mqtx_using
    __fish_seen_subcommand_from $argv[1]
end

complete -c mqtx -f

# cmd: common
complete -c mqtx -s c -l config -r -F -d 'configuration file'
complete -c mqtx -l database-url -x -d 'PostgreSQL URL or conninfo (prefer MQTX_DATABASE_URL)'
complete -c mqtx -l broker-url -x -d 'broker URL (prefer MQTX_BROKER_URL)'
complete -c mqtx -s v -l verbose -d 'debug diagnostics'
complete -c mqtx -s q -l quiet -d 'only errors on stderr'
complete -c mqtx -l log-format -x -a 'text json' -d 'diagnostics format'
complete -c mqtx -s h -l help -d 'show the help and exit'
complete -c mqtx -n __mqtx_no_command -s V -l version -d 'print the version and exit'
# end: common

# cmd: init
complete -c mqtx -n __mqtx_no_command -a init -d 'create the outbox table, indexes, triggers and heartbeat table'
complete -c mqtx -n '__mqtx_using init' -s p -l print -d 'print the SQL instead of running it'
complete -c mqtx -n '__mqtx_using init' -l schema -x -d 'schema of the outbox table'
complete -c mqtx -n '__mqtx_using init' -s t -l table -x -d 'outbox table name'
complete -c mqtx -n '__mqtx_using init' -l grant -x -d 'also grant ROLE the privileges mqtx commands need'
# end: init

# cmd: relay
complete -c mqtx -n __mqtx_no_command -a relay -d 'move pending outbox rows to the broker'
complete -c mqtx -n '__mqtx_using relay' -s l -l loop -d 'keep running: wake on NOTIFY, poll every --poll-interval'
complete -c mqtx -n '__mqtx_using relay' -s b -l batch -x -d 'rows per batch'
complete -c mqtx -n '__mqtx_using relay' -s n -l max-messages -x -d 'stop after N rows'
complete -c mqtx -n '__mqtx_using relay' -l max-time -x -a '30s 50s 5m 1h' -d 'stop claiming after DURATION'
complete -c mqtx -n '__mqtx_using relay' -l poll-interval -x -a '500ms 1s 5s 30s' -d '--loop: look for work this often without NOTIFY'
complete -c mqtx -n '__mqtx_using relay' -l dry-run -d 'show the rows that would be sent now; change nothing'
complete -c mqtx -n '__mqtx_using relay' -l transactional -d 'Kafka: each batch is one producer transaction'
complete -c mqtx -n '__mqtx_using relay' -l schema -x -d 'schema of the outbox table'
complete -c mqtx -n '__mqtx_using relay' -s t -l table -x -d 'outbox table name'
# end: relay

# cmd: config
complete -c mqtx -n __mqtx_no_command -a config -d 'show the effective configuration and where each value came from'
complete -c mqtx -n '__mqtx_using config' -l keys -d 'list every key with its type, default and environment variable'
# end: config
