# kill -9 -1 reaches every process but PID 1 and the caller (this shell,
# whose builtin kill sends it): the SSH server and the session running this
# script die with everything else. The guest's init must survive, reap the
# orphans and restart the SSH server, so the harness can still fetch what
# the script wrote before.
repro-kit emit metric before_kill 1
echo "killing every process"
kill -9 -1
sleep 5
repro-kit emit outcome not-reproduced "survived kill -9 -1"
