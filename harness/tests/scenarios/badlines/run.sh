# A truncated record, a line that is not JSON, an outcome reserved for the
# harness, then a valid metric: the attempt is an error, the metric kept.
echo '{"metric":"half","val' >> "$REPRO_RESULT"
echo 'this is not json' >> "$REPRO_RESULT"
echo '{"outcome":"crashed","reason":"a script cannot say this"}' >> "$REPRO_RESULT"
echo '{"metric":"after","value":42,"unit":"things"}' >> "$REPRO_RESULT"
