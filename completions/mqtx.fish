# fish completion for mqtx(1).
#
# One block per command, between "# cmd: NAME" and "# end: NAME" (the docs
# test checks each block against `mqtx NAME --help`): a line for the command
# itself and one per option, each guarded by __mqtx_using NAME. To add a
# command: add it to __mqtx_commands and add one block.

set -g __mqtx_commands init relay check txpub redeliver dedupe-audit config

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
complete -c mqtx -s q -l quiet -d 'only warnings and errors on stderr'
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
complete -c mqtx -n '__mqtx_using init' -l partition-by -x -a 'hour day' -d 'range-partition a new outbox by created_at, per hour or day'
complete -c mqtx -n '__mqtx_using init' -l mode -x -a 'status tail' -d 'outbox.mode: tail also creates the txid column and checkpoint tables'
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

# cmd: check
complete -c mqtx -n __mqtx_no_command -a check -d 'report the health of the outbox, relays and broker, or explain one message'
complete -c mqtx -n '__mqtx_using check' -s f -l format -x -a 'text json prometheus' -d 'output format'
complete -c mqtx -n '__mqtx_using check' -s e -l explain -x -d 'tell the story of one message (outbox id or idempotency key)'
complete -c mqtx -n '__mqtx_using check' -l warn-age -x -a '1m 5m 10m 30m' -d 'pending rows older than this: WARNING'
complete -c mqtx -n '__mqtx_using check' -l crit-age -x -a '10m 30m 1h 2h' -d 'pending rows older than this: CRITICAL'
complete -c mqtx -n '__mqtx_using check' -l warn-attempts -x -d 'pending rows that failed N times: WARNING'
complete -c mqtx -n '__mqtx_using check' -l max-dead -x -d 'more than N dead rows: CRITICAL'
complete -c mqtx -n '__mqtx_using check' -l relay-stale -x -a '1m 2m 5m 10m' -d 'a running relay silent this long is stale'
complete -c mqtx -n '__mqtx_using check' -s b -l broker -d 'also ask the broker about destinations and queues'
complete -c mqtx -n '__mqtx_using check' -l queues -x -d '--broker: comma-separated queues to report'
complete -c mqtx -n '__mqtx_using check' -l completion -d 'report sent messages no consumer has completed'
complete -c mqtx -n '__mqtx_using check' -l resolve -d 'first resolve in-doubt txpub items (the only write)'
complete -c mqtx -n '__mqtx_using check' -l schema -x -d 'schema of the outbox table'
complete -c mqtx -n '__mqtx_using check' -s t -l table -x -d 'outbox table name'
# end: check

# cmd: txpub
complete -c mqtx -n __mqtx_no_command -a txpub -d 'publish from scripts with a clear answer: published, not published, or unknown'
complete -c mqtx -n '__mqtx_using txpub' -s d -l destination -x -d 'exchange (AMQP), topic (Kafka) or subject (NATS) of the messages'
complete -c mqtx -n '__mqtx_using txpub' -s r -l routing-key -x -d 'routing key (AMQP), record key (Kafka) or subject suffix (NATS)'
complete -c mqtx -n '__mqtx_using txpub' -s H -l header -x -d 'a message header: NAME=VALUE'
complete -c mqtx -n '__mqtx_using txpub' -s k -l key -x -d 'idempotency key of the one message'
complete -c mqtx -n '__mqtx_using txpub' -l ordering-key -x -d 'ordering key'
complete -c mqtx -n '__mqtx_using txpub' -l content-type -x -d 'MIME type of the payloads'
complete -c mqtx -n '__mqtx_using txpub' -s p -l payload -x -d 'a message with payload TEXT'
complete -c mqtx -n '__mqtx_using txpub' -s F -l payload-file -r -F -d 'a message with the bytes of FILE'
complete -c mqtx -n '__mqtx_using txpub' -s f -l format -x -a 'lines jsonl raw' -d 'stdin format'
complete -c mqtx -n '__mqtx_using txpub' -s 0 -l null -d 'stdin records end with NUL bytes'
complete -c mqtx -n '__mqtx_using txpub' -s m -l mode -x -a 'auto tx confirm kafka-tx' -d 'how to publish'
complete -c mqtx -n '__mqtx_using txpub' -l confirm -x -a 'sync batch async' -d '--mode confirm: how to wait for confirms'
complete -c mqtx -n '__mqtx_using txpub' -s b -l batch -x -d 'messages per transaction or confirm batch'
complete -c mqtx -n '__mqtx_using txpub' -l report -r -F -d 'write a JSON report'
complete -c mqtx -n '__mqtx_using txpub' -l prepare -d 'store half messages and print their keys'
complete -c mqtx -n '__mqtx_using txpub' -l commit -d 'commit the half messages KEY...'
complete -c mqtx -n '__mqtx_using txpub' -l rollback -d 'roll back the half messages KEY...'
complete -c mqtx -n '__mqtx_using txpub' -l sql -r -F -d 'run FILE in a transaction, PREPARE it, publish, COMMIT PREPARED'
complete -c mqtx -n '__mqtx_using txpub' -l schema -x -d 'schema of the outbox table'
complete -c mqtx -n '__mqtx_using txpub' -s t -l table -x -d 'outbox table name'
# end: txpub

# cmd: redeliver
complete -c mqtx -n __mqtx_no_command -a redeliver -d 're-send chosen outbox rows with their own keys, revive dead rows, collect consumer acks'
complete -c mqtx -n '__mqtx_using redeliver' -l id -x -d 'select by outbox id: 1,5,9 or 100-200'
complete -c mqtx -n '__mqtx_using redeliver' -s k -l key -x -d 'select by idempotency key'
complete -c mqtx -n '__mqtx_using redeliver' -l ordering-key -x -d 'select by ordering key'
complete -c mqtx -n '__mqtx_using redeliver' -s d -l destination -x -d 'select by destination, exchange or topic'
complete -c mqtx -n '__mqtx_using redeliver' -s s -l status -x -a 'sent dead' -d 'select by status'
complete -c mqtx -n '__mqtx_using redeliver' -l since -x -a '1h 2h 6h 1d' -d 'select rows at or after TIME (a timestamp, or a duration ago)'
complete -c mqtx -n '__mqtx_using redeliver' -l until -x -a '10m 30m 1h' -d 'select rows before TIME (a timestamp, or a duration ago)'
complete -c mqtx -n '__mqtx_using redeliver' -l time-column -x -a 'created sent' -d 'what --since/--until compare'
complete -c mqtx -n '__mqtx_using redeliver' -s w -l where -x -d 'select by column OP value [AND ...] on whitelisted columns'
complete -c mqtx -n '__mqtx_using redeliver' -l unacked-after -x -a '10m 30m 1h' -d 'select sent messages not completed DURATION after they were last sent'
complete -c mqtx -n '__mqtx_using redeliver' -l max-redeliveries -x -d '--unacked-after: skip messages re-sent N times'
complete -c mqtx -n '__mqtx_using redeliver' -l requeue -d 'set the selected dead rows back to pending for the relay'
complete -c mqtx -n '__mqtx_using redeliver' -l collect-acks -d 'first move consumer acks from the ack queue or topic into mqtx_completions'
complete -c mqtx -n '__mqtx_using redeliver' -l ack-source -x -d 'queue (RabbitMQ) or topic (Kafka) consumers publish acks to'
complete -c mqtx -n '__mqtx_using redeliver' -l ack-group -x -d 'Kafka consumer group that reads the ack topic'
complete -c mqtx -n '__mqtx_using redeliver' -s r -l rate -x -a '10/s 100/s 1000/s 60/m' -d 'send at most RATE messages'
complete -c mqtx -n '__mqtx_using redeliver' -s n -l limit -x -d 'handle at most N of the selected rows'
complete -c mqtx -n '__mqtx_using redeliver' -s b -l batch -x -d 'rows per transaction'
complete -c mqtx -n '__mqtx_using redeliver' -l dry-run -d 'show how many rows are selected and the first ones; change nothing'
complete -c mqtx -n '__mqtx_using redeliver' -s y -l yes -d 'act (re-send, requeue, collect acks); without it a dry run'
complete -c mqtx -n '__mqtx_using redeliver' -l sample -x -d 'dry run: how many rows to show'
complete -c mqtx -n '__mqtx_using redeliver' -l schema -x -d 'schema of the outbox table'
complete -c mqtx -n '__mqtx_using redeliver' -s t -l table -x -d 'outbox table name'
# end: redeliver

# cmd: dedupe-audit
complete -c mqtx -n __mqtx_no_command -a dedupe-audit -d 'count duplicates, losses, strangers and reordering a source really saw'
complete -c mqtx -n '__mqtx_using dedupe-audit' -s s -l source -r -F -a '- inbox: kafka:// amqp:// nats:// tls://' -d 'deliveries to check: kafka://, amqp://, nats://, tls://, inbox:, postgresql://, a JSONL file or -'
complete -c mqtx -n '__mqtx_using dedupe-audit' -l from -x -a 'first 0 1h 2h 1d' -d 'Kafka topic, RabbitMQ or JetStream stream: start at first, an offset, a time or a duration ago'
complete -c mqtx -n '__mqtx_using dedupe-audit' -l to -x -d 'Kafka topic, RabbitMQ or JetStream stream: stop before this offset or sequence (or time)'
complete -c mqtx -n '__mqtx_using dedupe-audit' -l since -x -a '1h 2h 6h 1d' -d 'expect rows sent at or after TIME'
complete -c mqtx -n '__mqtx_using dedupe-audit' -l until -x -a '5m 10m 1h' -d 'expect rows sent before TIME'
complete -c mqtx -n '__mqtx_using dedupe-audit' -s d -l destination -x -d 'outbox destination the source receives'
complete -c mqtx -n '__mqtx_using dedupe-audit' -l destructive -d 'allow consuming, and so emptying, a classic or quorum RabbitMQ queue'
complete -c mqtx -n '__mqtx_using dedupe-audit' -s f -l format -x -a 'text json csv' -d 'report format'
complete -c mqtx -n '__mqtx_using dedupe-audit' -l max-details -x -d 'most detail lines per finding'
complete -c mqtx -n '__mqtx_using dedupe-audit' -l max-duplicates -x -d 'duplicated keys tolerated, not counting redeliveries'
complete -c mqtx -n '__mqtx_using dedupe-audit' -l max-missing -x -d 'missing messages tolerated'
complete -c mqtx -n '__mqtx_using dedupe-audit' -l idle-timeout -x -a '1s 2s 5s 10s' -d 'a stream or queue is at its end after this long without a message'
complete -c mqtx -n '__mqtx_using dedupe-audit' -l schema -x -d 'schema of the outbox table'
complete -c mqtx -n '__mqtx_using dedupe-audit' -s t -l table -x -d 'outbox table name'
# end: dedupe-audit

# cmd: config
complete -c mqtx -n __mqtx_no_command -a config -d 'show the effective configuration and where each value came from'
complete -c mqtx -n '__mqtx_using config' -l keys -d 'list every key with its type, default and environment variable'
# end: config
