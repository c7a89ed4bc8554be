echo "slow start"
sleep 500
echo "{\"outcome\":\"not-reproduced\",\"reason\":\"slept\"}" >> "$REPRO_RESULT"
